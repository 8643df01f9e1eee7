"""Tests for lenna_core.space.data: dataset splits, the CIFAR-10 reader and the seeded loader."""

from __future__ import annotations

import pickle
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from lenna_core.space.data import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    DatasetSplits,
    load_dataset,
    make_loader,
)

N_DIGITS = 1797


def tensors(dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack a whole dataset into (images, labels)."""
    images, labels = zip(*(dataset[i] for i in range(len(dataset))))
    return torch.stack(images), torch.as_tensor(labels)


# --- digits ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def digits() -> DatasetSplits:
    return load_dataset("digits", seed=0)


def test_digits_split_sizes_follow_fractions(digits):
    n_train, n_val, n_test = len(digits.train), len(digits.val), len(digits.test)
    assert n_train + n_val + n_test == N_DIGITS
    assert abs(n_test - 0.2 * N_DIGITS) <= 1
    assert abs(n_val - 0.5 * (N_DIGITS - n_test)) <= 1

    other = load_dataset("digits", val_fraction=0.25, test_fraction=0.4)
    n_test = len(other.test)
    assert abs(n_test - 0.4 * N_DIGITS) <= 1
    assert abs(len(other.val) - 0.25 * (N_DIGITS - n_test)) <= 1
    assert len(other.train) + len(other.val) + n_test == N_DIGITS


def test_digits_metadata_shapes_and_labels(digits):
    assert (digits.name, digits.num_classes, digits.in_channels, digits.image_size, digits.seed) \
        == ("digits", 10, 1, 8, 0)
    for split in (digits.train, digits.val, digits.test):
        images, labels = split.tensors
        assert images.shape[1:] == (1, 8, 8)
        assert images.dtype == torch.float32
        assert labels.dtype == torch.int64
        assert set(labels.tolist()) == set(range(10))


def test_digits_train_split_is_standardised(digits):
    train_images = digits.train.tensors[0]
    assert abs(train_images.mean().item()) < 1e-4
    assert abs(train_images.std().item() - 1.0) < 1e-3
    # val/test use the train statistics, so they are close to, but not exactly, standardised
    val_images = digits.val.tensors[0]
    assert abs(val_images.mean().item()) < 0.1
    assert val_images.mean().item() != pytest.approx(0.0, abs=1e-6)


def test_digits_splits_partition_the_dataset(digits):
    # The standardisation is one affine map with a positive scale, and raw pixels run 0..16
    # (both ends occur in train), so the train extremes map back to 0 and 16.
    lo, hi = digits.train.tensors[0].min(), digits.train.tensors[0].max()

    def raw_rows(split) -> list[bytes]:
        pixels = torch.round((split.tensors[0] - lo) / (hi - lo) * 16).to(torch.int64)
        return [row.numpy().tobytes() for row in pixels.reshape(len(pixels), -1)]

    rows = {name: raw_rows(getattr(digits, name)) for name in ("train", "val", "test")}
    assert not set(rows["train"]) & set(rows["val"])
    assert not set(rows["train"]) & set(rows["test"])
    assert not set(rows["val"]) & set(rows["test"])

    original = load_digits().images.astype(np.int64).reshape(N_DIGITS, -1)
    assert Counter(rows["train"] + rows["val"] + rows["test"]) \
        == Counter(row.tobytes() for row in original)


def test_digits_split_depends_only_on_seed(digits):
    same = load_dataset("digits", seed=0)
    other = load_dataset("digits", seed=1)
    for name in ("train", "val", "test"):
        for a, b in zip(getattr(digits, name).tensors, getattr(same, name).tensors):
            assert torch.equal(a, b)
    assert other.seed == 1
    assert not torch.equal(digits.test.tensors[1], other.test.tensors[1])
    assert not torch.equal(digits.train.tensors[1], other.train.tensors[1])


def test_limit_keeps_the_first_samples(digits):
    small = load_dataset("digits", limit=5)
    for name in ("train", "val", "test"):
        images, labels = tensors(getattr(small, name))
        assert len(images) == 5
        full_images, full_labels = getattr(digits, name).tensors
        assert torch.equal(images, full_images[:5])
        assert torch.equal(labels, full_labels[:5])
    assert len(load_dataset("digits", limit=100_000).train) == len(digits.train)


# --- cifar10 --------------------------------------------------------------------------------

TRAIN_PER_BATCH = 4  # 5 batches -> 20 training images, ids 0..19
N_TEST = 3  # ids 100..102
PIXEL = (2, 5, 7)  # (channel, row, column) of the known pixel


def pixel_value(image_id: int) -> int:
    return (37 * image_id + 11) % 256


def write_batch(path: Path, ids: list[int], rng: np.random.Generator) -> None:
    data = rng.integers(0, 256, size=(len(ids), 3072), dtype=np.uint8)
    channel, row, col = PIXEL
    for i, image_id in enumerate(ids):
        data[i, 0] = image_id  # channel 0, pixel (0, 0): which image this is
        # Rows are stored channel-major (1024 red, 1024 green, 1024 blue), each 32x32 row-major.
        data[i, channel * 1024 + row * 32 + col] = pixel_value(image_id)
    # The official files were pickled by Python 2, whose str keys read back as b"data" with
    # encoding="bytes" and as "data" with encoding="latin1" (what torchvision uses); a Python 3
    # str key reads back the same way under latin1.
    batch = {"batch_label": "fake", "data": data, "labels": [i % 10 for i in ids]}
    path.write_bytes(pickle.dumps(batch, protocol=2))


@pytest.fixture
def cifar_root(tmp_path: Path) -> Path:
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for b in range(5):
        ids = list(range(b * TRAIN_PER_BATCH, (b + 1) * TRAIN_PER_BATCH))
        write_batch(folder / f"data_batch_{b + 1}", ids, rng)
    write_batch(folder / "test_batch", list(range(100, 100 + N_TEST)), rng)
    names = ["airplane", "automobile", "bird", "cat", "deer",
             "dog", "frog", "horse", "ship", "truck"]
    meta = {"label_names": names, "num_cases_per_batch": TRAIN_PER_BATCH, "num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return tmp_path


def decode(image: torch.Tensor) -> torch.Tensor:
    """Undo Normalize and ToTensor: back to integer pixel values 0..255."""
    mean = torch.tensor(CIFAR10_MEAN).view(3, 1, 1)
    std = torch.tensor(CIFAR10_STD).view(3, 1, 1)
    return torch.round((image * std + mean) * 255).to(torch.int64)


def test_cifar10_reads_the_on_disk_format(cifar_root):
    splits = load_dataset("cifar10", root=cifar_root, verify_checksums=False, seed=3)
    assert (splits.name, splits.num_classes, splits.in_channels, splits.image_size, splits.seed) \
        == ("cifar10", 10, 3, 32, 3)

    seen = {}
    for name in ("train", "val", "test"):
        images, labels = tensors(getattr(splits, name))
        assert images.shape[1:] == (3, 32, 32)
        assert images.dtype == torch.float32
        pixels = decode(images)
        ids = pixels[:, 0, 0, 0].tolist()
        assert pixels[:, PIXEL[0], PIXEL[1], PIXEL[2]].tolist() == [pixel_value(i) for i in ids]
        assert labels.tolist() == [i % 10 for i in ids]
        seen[name] = ids

    assert seen["test"] == [100, 101, 102]  # the official test batch, in file order
    n_train = 5 * TRAIN_PER_BATCH
    assert len(seen["val"]) == n_train // 2
    assert sorted(seen["train"] + seen["val"]) == list(range(n_train))


def test_cifar10_split_follows_val_fraction_and_seed(cifar_root):
    def val_ids(**kwargs) -> list[int]:
        splits = load_dataset("cifar10", root=cifar_root, verify_checksums=False, **kwargs)
        assert len(splits.train) + len(splits.val) == 5 * TRAIN_PER_BATCH
        return [decode(image)[0, 0, 0].item() for image, _ in splits.val]

    assert len(val_ids(val_fraction=0.25)) == 5
    assert val_ids(seed=7) == val_ids(seed=7)
    assert val_ids(seed=7) != val_ids(seed=8)


def test_cifar10_checksum_mismatch_is_reported(cifar_root):
    with pytest.raises(ValueError, match="verify_checksums=False"):
        load_dataset("cifar10", root=cifar_root)


def test_cifar10_missing_files(tmp_path, cifar_root):
    with pytest.raises(FileNotFoundError, match="cifar-10-batches-py") as info:
        load_dataset("cifar10", root=tmp_path / "nowhere")
    for expected in ("data_batch_1", "data_batch_5", "test_batch", "batches.meta",
                     "cifar-10-python.tar.gz", "download=True"):
        assert expected in str(info.value)

    (cifar_root / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match="missing: data_batch_3"):
        load_dataset("cifar10", root=cifar_root, verify_checksums=False)


def test_cifar10_needs_root():
    with pytest.raises(ValueError, match="root"):
        load_dataset("cifar10")


# --- argument validation --------------------------------------------------------------------

@pytest.mark.parametrize(("kwargs", "argument"), [
    ({"name": "mnist"}, "name"),
    ({"val_fraction": 0.0}, "val_fraction"),
    ({"val_fraction": 1.0}, "val_fraction"),
    ({"val_fraction": float("nan")}, "val_fraction"),
    ({"val_fraction": 0.999}, "val_fraction"),  # in (0, 1), but leaves train empty
    ({"test_fraction": -0.1}, "test_fraction"),
    ({"test_fraction": 1.5}, "test_fraction"),
    ({"limit": 0}, "limit"),
    ({"limit": -3}, "limit"),
    ({"limit": 2.5}, "limit"),
])
def test_bad_arguments_name_the_argument(kwargs, argument):
    kwargs = {"name": "digits", **kwargs}
    with pytest.raises(ValueError, match=argument):
        load_dataset(**kwargs)


def test_unknown_name_lists_the_allowed_values():
    with pytest.raises(ValueError, match=r"name.*'digits', 'cifar10'"):
        load_dataset("imagenet")


def test_fraction_error_states_the_range():
    with pytest.raises(ValueError, match=r"val_fraction.*\(0, 1\)"):
        load_dataset("digits", val_fraction=2.0)


# --- make_loader ----------------------------------------------------------------------------

def test_make_loader_shuffles_reproducibly():
    dataset = torch.utils.data.TensorDataset(torch.arange(50))

    def order(seed: int, shuffle: bool = True) -> list[int]:
        loader = make_loader(dataset, batch_size=8, shuffle=shuffle, seed=seed)
        return [x for (batch,) in loader for x in batch.tolist()]

    assert order(0) == order(0)
    assert order(0) != order(1)
    assert sorted(order(0)) == list(range(50))
    assert order(0, shuffle=False) == list(range(50))
    assert len(make_loader(dataset, batch_size=8, shuffle=True)) == 7


@pytest.mark.parametrize("batch_size", [0, -1])
def test_make_loader_rejects_bad_batch_size(batch_size):
    with pytest.raises(ValueError, match="batch_size"):
        make_loader(torch.utils.data.TensorDataset(torch.arange(4)), batch_size, shuffle=False)
