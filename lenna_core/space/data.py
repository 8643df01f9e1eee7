"""Datasets for the search: train/val/test splits of small image-classification tasks.

Two tasks are supported:

* ``"digits"``: scikit-learn's bundled 8x8 handwritten digits. It ships with scikit-learn,
  so it works offline and is small enough for tests and quick experiments.
* ``"cifar10"``: CIFAR-10 read through torchvision from a folder that already holds the
  extracted python version of the dataset (nothing is downloaded here).

The search is bi-level, as in DARTS: network weights are trained on ``train`` while the
architecture parameters are trained on ``val``; ``test`` is kept for the final evaluation.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

from lenna_core.validation import check_fraction, check_int

if TYPE_CHECKING:
    from torchvision.datasets import CIFAR10

DATASET_NAMES = ("digits", "cifar10")

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_FILES = (
    "data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5",
    "test_batch", "batches.meta",
)
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"


@dataclass(frozen=True)
class DatasetSplits:
    """Train/validation/test splits of one image-classification task."""

    name: str
    train: Dataset  # weights are trained on this during search
    val: Dataset  # architecture parameters are trained on this (bi-level search)
    test: Dataset  # held out, for the final evaluation
    num_classes: int
    in_channels: int
    image_size: int  # square images, side in pixels
    seed: int  # the seed used for the split (recorded for reproducibility)


def load_dataset(
    name: str,
    root: str | os.PathLike | None = None,
    *,
    val_fraction: float = 0.5,
    test_fraction: float = 0.2,
    seed: int = 0,
    verify_checksums: bool = True,
    limit: int | None = None,
) -> DatasetSplits:
    """Load dataset ``name`` and split it into train, val and test with a fixed seed.

    ``digits``: ``test_fraction`` of the images go to test, then ``val_fraction`` of the
    rest go to val (both splits stratified by class); ``root`` and ``verify_checksums``
    are ignored.

    ``cifar10``: ``root`` is the folder that contains ``cifar-10-batches-py``.
    ``val_fraction`` of the 50,000 training images go to val; the official test batch is
    ``test``, so ``test_fraction`` is not used. ``verify_checksums=False`` accepts files
    whose md5 differs from the official release (e.g. a hand-made miniature copy).

    ``limit`` keeps only the first ``limit`` samples of each split, for quick runs.
    """
    if name not in DATASET_NAMES:
        raise ValueError(f"name must be one of {DATASET_NAMES}, got {name!r}")
    check_fraction("val_fraction", val_fraction)
    check_fraction("test_fraction", test_fraction)
    check_int("limit", limit, optional=True)

    if name == "digits":
        splits = _load_digits(val_fraction, test_fraction, seed)
    else:
        splits = _load_cifar10(root, val_fraction, seed, verify_checksums)

    if limit is None:
        return splits
    return replace(splits, train=_first(splits.train, limit), val=_first(splits.val, limit),
                   test=_first(splits.test, limit))


def make_loader(dataset: Dataset, batch_size: int, *, shuffle: bool, seed: int = 0) -> DataLoader:
    """Return a single-process DataLoader whose shuffling order is fixed by ``seed``."""
    check_int("batch_size", batch_size)
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=0,
                      generator=generator)


def _split_size(arg: str, fraction: float, total: int, minimum: int) -> int:
    """Number of the ``total`` samples that ``fraction`` takes, keeping ``minimum`` on each side."""
    size = round(fraction * total)
    if size < minimum or total - size < minimum:
        raise ValueError(
            f"{arg}={fraction} splits {total} samples into {size} and {total - size}; "
            f"each part needs at least {minimum}, so choose {arg} in the open interval (0, 1) "
            "further from its ends"
        )
    return size


def _first(dataset: Dataset, limit: int) -> Subset:
    return Subset(dataset, range(min(limit, len(dataset))))


def _load_digits(val_fraction: float, test_fraction: float, seed: int) -> DatasetSplits:
    # scikit-learn and torchvision are imported where needed: each adds seconds to an import.
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = digits.images.astype("float32") / 16.0  # raw pixel values are 0..16
    labels = digits.target.astype("int64")
    num_classes = 10

    # Integer sizes keep the rounding ours; stratification needs every class in every split.
    n_test = _split_size("test_fraction", test_fraction, len(labels), num_classes)
    rest_x, test_x, rest_y, test_y = train_test_split(
        images, labels, test_size=n_test, stratify=labels, random_state=seed)
    n_val = _split_size("val_fraction", val_fraction, len(rest_y), num_classes)
    train_x, val_x, train_y, val_y = train_test_split(
        rest_x, rest_y, test_size=n_val, stratify=rest_y, random_state=seed)

    # Statistics of the train split only, so nothing about val/test leaks into the inputs.
    mean, std = float(train_x.mean()), float(train_x.std())

    def to_dataset(x: np.ndarray, y: np.ndarray) -> TensorDataset:
        standardised = (torch.from_numpy(x).unsqueeze(1) - mean) / std
        return TensorDataset(standardised, torch.from_numpy(y))

    return DatasetSplits(
        name="digits",
        train=to_dataset(train_x, train_y),
        val=to_dataset(val_x, val_y),
        test=to_dataset(test_x, test_y),
        num_classes=num_classes,
        in_channels=1,
        image_size=8,
        seed=seed,
    )


def _load_cifar10(root: str | os.PathLike | None, val_fraction: float, seed: int,
                  verify_checksums: bool) -> DatasetSplits:
    from torchvision import transforms

    if root is None:
        raise ValueError(
            f"root is required for cifar10: pass the folder that contains {CIFAR10_FOLDER}")
    folder = Path(root) / CIFAR10_FOLDER
    missing = [f for f in CIFAR10_FILES if not (folder / f).is_file()]
    if missing:
        raise FileNotFoundError(
            f"CIFAR-10 not found: expected the folder {folder} with the files "
            f"{', '.join(CIFAR10_FILES)} (missing: {', '.join(missing)}). "
            f"To get them, download cifar-10-python.tar.gz from {CIFAR10_URL} on a machine "
            f"with internet and extract it into {root}, or run "
            f"torchvision.datasets.CIFAR10({str(root)!r}, download=True) there."
        )

    transform = transforms.Compose([
        transforms.ToTensor(),
        transforms.Normalize(CIFAR10_MEAN, CIFAR10_STD),
    ])
    full_train = _checked_cifar10(root, True, transform, verify_checksums)
    test = _checked_cifar10(root, False, transform, verify_checksums)

    n_val = _split_size("val_fraction", val_fraction, len(full_train), 1)
    order = torch.randperm(len(full_train), generator=torch.Generator().manual_seed(seed))
    return DatasetSplits(
        name="cifar10",
        train=Subset(full_train, order[n_val:].tolist()),
        val=Subset(full_train, order[:n_val].tolist()),
        test=test,
        num_classes=10,
        in_channels=3,
        image_size=32,
        seed=seed,
    )


def _checked_cifar10(root: str | os.PathLike, train: bool, transform: Callable,
                     verify_checksums: bool) -> CIFAR10:
    """The CIFAR-10 split, its batches readable, images 32x32x3 and labels in 0..9."""
    import pickle

    folder = Path(root) / CIFAR10_FOLDER
    split = "training" if train else "test"
    try:
        dataset = _open_cifar10(root, train, transform, verify_checksums)
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, UnicodeDecodeError,
            AttributeError, IndexError) as err:
        raise ValueError(f"the CIFAR-10 {split} batches in {folder} cannot be read "
                         f"({type(err).__name__}: {err}); they are damaged: extract "
                         "cifar-10-python.tar.gz again") from None
    targets = np.asarray(dataset.targets)
    bad = (targets < 0) | (targets >= 10)
    if bad.any():
        raise ValueError(f"the CIFAR-10 {split} batches in {folder} hold label "
                         f"{int(targets[bad][0])} at image {int(bad.argmax())}; CIFAR-10 labels "
                         "are 0..9 (num_classes 10): extract cifar-10-python.tar.gz again")
    if dataset.data.shape[1:] != (32, 32, 3) or len(dataset.data) != len(targets):
        raise ValueError(f"the CIFAR-10 {split} batches in {folder} hold images of shape "
                         f"{dataset.data.shape[1:]} for {len(targets)} labels; CIFAR-10 images "
                         "are 32x32x3, one per label")
    return dataset


def _open_cifar10(root: str | os.PathLike, train: bool, transform: Callable,
                  verify_checksums: bool) -> CIFAR10:
    from torchvision.datasets import CIFAR10

    if verify_checksums:
        # The files are known to exist, so torchvision's RuntimeError means an md5 mismatch.
        try:
            return CIFAR10(root, train=train, transform=transform, download=False)
        except RuntimeError as err:
            raise ValueError(
                f"the CIFAR-10 files in {Path(root) / CIFAR10_FOLDER} differ from the official "
                "release (md5 mismatch); pass verify_checksums=False to use them as they are"
            ) from err

    class UnverifiedCIFAR10(CIFAR10):
        """CIFAR10 that only checks that its files exist, not their md5."""

        # torchvision also checks the md5 of batches.meta (in _load_meta); None means "exists".
        meta = {**CIFAR10.meta, "md5": None}

        def _check_integrity(self) -> bool:
            folder = Path(self.root) / self.base_folder
            return all((folder / f).is_file() for f, _ in self.train_list + self.test_list)

    return UnverifiedCIFAR10(root, train=train, transform=transform, download=False)
