"""The latency-aware search loop: resume, folder safety, logs, the latency pull, second order."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from lenna_core import load_dataset
from lenna_core.latency.file_checks import load_torch
from lenna_core.latency.mlp_model import MLPLatency
from lenna_core.search.estimators import FlopsEstimator, MLPEstimator, TargetConfig
from lenna_core.search.loop import LatencyAwareSearch, SearchConfig
from lenna_core.search.penalty import LinearPenalty
from lenna_core.search.step import unrolled_arch_step
from lenna_core.space.supernet import SearchNetwork

DATA = Path(__file__).resolve().parent.parent / "data"
TINY = SearchConfig(C=2, layers=3, epochs=2, batch_size=16, steps_per_epoch=3,
                    checkpoint_every=2, mode="softmax", gate_gradient="full", arch_lr=0.05)


@pytest.fixture(scope="module")
def splits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def mlp_estimator():
    return MLPEstimator(MLPLatency.load(DATA / "mlp_latency"), TargetConfig())


class Killed(Exception):
    """Stands in for a kill: raised from inside the loop, after the step's checkpoint."""


@pytest.mark.parametrize("mode", ["softmax", "binary"])
def test_interrupted_search_resumes_to_the_same_result(tmp_path, splits, mlp_estimator, mode):
    config = SearchConfig(**{**TINY.__dict__, "mode": mode,
                             "gate_gradient": "two" if mode == "binary" else "full"})
    penalty = LinearPenalty(0.5)
    whole = LatencyAwareSearch(config, tmp_path / "whole", mlp_estimator, penalty).run(
        progress=False, splits=splits)

    def kill_at_step_5(step: int) -> None:
        if step == 5:  # mid-epoch 2; the last checkpoint is from step 4
            raise Killed

    folder = tmp_path / "killed"
    with pytest.raises(Killed):
        LatencyAwareSearch(config, folder, mlp_estimator, penalty).run(
            progress=False, splits=splits, on_step=kill_at_step_5)
    assert not (folder / "result.json").exists()
    saved = load_torch(folder / "checkpoint.pt", "", weights_only=False)
    assert saved["state"]["global_step"] == 4
    resumed = LatencyAwareSearch(config, folder, mlp_estimator, penalty).run(
        progress=False, splits=splits)
    assert resumed.genotype == whole.genotype
    assert resumed.extra["alphas"] == whole.extra["alphas"]  # bit for bit
    assert resumed.log.drop(columns="seconds").equals(whole.log.drop(columns="seconds"))


def test_folder_of_another_configuration_is_refused_untouched(tmp_path, splits, mlp_estimator):
    folder = tmp_path / "run"
    LatencyAwareSearch(TINY, folder, mlp_estimator, LinearPenalty(0.5)).run(
        progress=False, splits=splits)
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    with pytest.raises(ValueError, match=r"another configuration \(differs in penalty.lam\)"):
        LatencyAwareSearch(TINY, folder, mlp_estimator, LinearPenalty(2.0)).run(
            progress=False, splits=splits)
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before
    # The same configuration again returns the stored result without searching.
    again = LatencyAwareSearch(TINY, folder, mlp_estimator, LinearPenalty(0.5)).run(
        progress=False, splits=splits)
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before
    stored = json.loads((folder / "result.json").read_text())["genotype"]
    assert json.loads(again.genotype.to_json()) == stored


def test_logs_and_genotypes_are_written_per_epoch(tmp_path, splits, mlp_estimator):
    result = LatencyAwareSearch(TINY, tmp_path, mlp_estimator, LinearPenalty(0.5)).run(
        progress=False, splits=splits)
    assert list(result.log["epoch"]) == [0, 1]
    for column in ("train_ce", "val_ce", "val_acc", "latency_term", "expected",
                   "predicted_derived", "unit"):
        assert column in result.log
    assert (result.log["latency_term"] > 0).all()
    assert sorted(p.name for p in (tmp_path / "genotypes").iterdir()) == [
        "epoch_000.json", "epoch_001.json"]
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["config"]["seed"] == 0 and config["penalty"]["lam"] == 0.5
    assert result.penalty["ref"] > 0  # set from the starting estimate and recorded


def test_latency_term_pulls_the_alphas_towards_cheaper_cells(tmp_path, splits):
    target = TargetConfig(C=8, layers=5, image_size=16)
    flops = FlopsEstimator(target)
    plain = LatencyAwareSearch(TINY, tmp_path / "plain", flops, LinearPenalty(0.0)).run(
        progress=False, splits=splits)
    pulled = LatencyAwareSearch(TINY, tmp_path / "pulled", flops, LinearPenalty(5.0)).run(
        progress=False, splits=splits)
    assert pulled.log["expected"].iloc[-1] < 0.9 * plain.log["expected"].iloc[-1]
    assert pulled.predicted < plain.predicted


def test_bad_settings(tmp_path):
    with pytest.raises(ValueError, match="needs an estimator"):
        LatencyAwareSearch(TINY, tmp_path, None, LinearPenalty(1.0))
    with pytest.raises(ValueError, match="order='second' needs mode='softmax'"):
        SearchConfig(order="second", mode="binary")
    with pytest.raises(ValueError, match="warmup_epochs=3"):
        SearchConfig(epochs=3, warmup_epochs=3)
    with pytest.raises(ValueError, match="max_skip=-1"):
        SearchConfig(max_skip=-1)
    with pytest.raises(ValueError, match="batch_size=0"):
        SearchConfig(batch_size=0)


def test_second_order_step_matches_the_exact_unrolled_gradient():
    torch.manual_seed(0)
    net = SearchNetwork(2, 3, 3, in_channels=1, mode="softmax").double()
    x, y = torch.randn(6, 1, 8, 8, dtype=torch.float64), torch.tensor([0, 1, 2, 0, 1, 2])
    xv, yv = torch.randn(6, 1, 8, 8, dtype=torch.float64), torch.tensor([2, 1, 0, 2, 1, 0])
    net.alphas_normal.data.normal_(0, 0.5)
    lr = 0.1
    w_opt = torch.optim.SGD(net.weight_parameters(), lr)  # no momentum, no decay
    a_opt = torch.optim.SGD(net.arch_parameters(), 1.0)

    arch_ids = {id(p) for p in net.arch_parameters()}
    names = [n for n, p in net.named_parameters() if id(p) not in arch_ids]
    weights = [p for p in net.parameters() if id(p) not in arch_ids]
    buffers = {n: b.clone() for n, b in net.named_buffers()}
    # Exact: differentiate through the virtual step, second derivatives included. (BatchNorm
    # over a few tiny maps makes the loss sharply curved, hence the small epsilon below.)
    train_loss = F.cross_entropy(net(x), y)
    grads = torch.autograd.grad(train_loss, weights, create_graph=True)
    unrolled = {n: w - lr * g for n, w, g in zip(names, weights, grads)}
    val_loss = F.cross_entropy(functional_call(net, {**unrolled, **buffers}, (xv,)), yv)
    exact = torch.autograd.grad(val_loss, net.arch_parameters())
    for b, saved in zip(net.buffers(), buffers.values()):
        b.copy_(saved)

    before = [p.detach().clone() for p in net.arch_parameters()]
    unrolled_arch_step(net, a_opt, w_opt, (x, y), (xv, yv), epsilon=1e-7)
    approx = [b - p.detach() for b, p in zip(before, net.arch_parameters())]  # lr 1: the grad
    for a, e in zip(approx, exact):
        assert torch.allclose(a, e, rtol=1e-3, atol=1e-7), (a - e).abs().max()
    # ...and it differs from the first-order gradient, or the test would prove nothing.
    first = torch.autograd.grad(F.cross_entropy(net(xv), yv), net.arch_parameters())
    assert not torch.allclose(first[0], exact[0], rtol=1e-2)


def test_second_order_refuses_binary_mode():
    net = SearchNetwork(2, 3, 3, in_channels=1, mode="binary")
    opt = torch.optim.SGD(net.weight_parameters(), 0.1)
    batch = (torch.randn(2, 1, 8, 8), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="second-order steps need mode='softmax'"):
        unrolled_arch_step(net, torch.optim.Adam(net.arch_parameters()), opt, batch, batch)
