"""Adapt a latency model to the device it is used on, from k blocks measured there.

A model fit on one device's labels predicts another device's blocks poorly: on a second VM
of the same kind about half within +-10%, with large blocks relatively slower there (a
log-log slope of 1.24). Measuring a few blocks on the new device and fitting a small map on
top of the shipped model is far cheaper than labelling thousands (HELP adapts from 10
samples; nn-Meter and LitePred label each device anew). The candidates, simplest first:

- ``none``: the source model as it is;
- ``scale``: one factor, ``s * f(x)`` (a device that is uniformly faster or slower);
- ``log_affine``: ``exp(a) * f(x) ** b`` (large blocks relatively slower or faster);
- ``recalibrated_table``: for a model that corrects a lookup table, the table's scale and
  offset refit on the k blocks under the shipped MLP correction;
- ``remeasured_table``: the same with the op table measured on the device (seconds: every op
  of every context once), so the device's own op costs order the blocks;
- ``remeasured_log_affine``: that, then a log-affine map of its output (the calibration of a
  sum is linear; the device may scale large blocks otherwise);
- ``finetune``: the log-affine map, then the source MLP trained on from its weights (small
  steps, early stopping) on the labels mapped back into the source's units;
- ``scratch``: a new plain MLP on the k blocks alone (what the labels can do without a model).

:func:`adapt` scores every candidate by k-fold cross-validation on the k labels and keeps the
one with the smallest mean absolute percentage error; the result predicts from the same
dataset columns, gives a differentiable module for a search, and saves with its provenance.
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.model_selection import KFold
from torch import nn

from lenna_core.latency.block_checks import extrapolation_expected, probability_columns
from lenna_core.latency.blocks import CellContext
from lenna_core.latency.device_identity import check_device, device_identity
from lenna_core.latency.encoder import contexts_from_frame
from lenna_core.latency.file_checks import check_schema_version, read_json, require_keys
from lenna_core.latency.lookup_table import LookupTableModel, OpLatencyTable
from lenna_core.latency.mlp_model import MLPLatency
from lenna_core.latency.mlp_training import train_step, validation_loss

METHODS = ("none", "scale", "log_affine", "recalibrated_table", "remeasured_table",
           "remeasured_log_affine", "finetune", "scratch")
#: Fewest labelled blocks each method can be fit (and cross-validated) on.
MIN_BLOCKS = {"none": 0, "scale": 1, "log_affine": 3, "recalibrated_table": 3,
              "remeasured_table": 3, "remeasured_log_affine": 5, "finetune": 5, "scratch": 10}
FORMAT_VERSION = 1


class _Adapted(nn.Module):
    """The source module's estimate through ``exp(log_scale) * estimate ** power``."""

    def __init__(self, module: nn.Module, log_scale: float, power: float) -> None:
        super().__init__()
        self.module, self.log_scale, self.power = module, log_scale, power

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        estimate = self.module(*args)
        return torch.exp(self.log_scale + self.power * torch.log(estimate))


class AdaptedLatency:
    """A latency model adapted to a device: ``exp(log_scale) * model(x) ** power``.

    ``model`` is an :class:`MLPLatency` (the source one, or one refit or fine-tuned on the
    device's blocks); ``provenance`` records the source, the device, k, the method, the
    seconds it took and every candidate's cross-validated error.
    """

    def __init__(self, model: MLPLatency, method: str, log_scale: float = 0.0,
                 power: float = 1.0, provenance: dict | None = None) -> None:
        self.model, self.method = model, method
        self.log_scale, self.power = float(log_scale), float(power)
        self.provenance = dict(provenance or {})

    @property
    def space(self):
        """The search space the model encodes."""
        return self.model.space

    @property
    def context_range_(self) -> dict | None:
        """Block sizes the source model was trained on (a search warns outside them)."""
        return self.model.context_range_

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Latency (ms) on the adapted device of every row of the dataset frame ``X``."""
        return np.exp(self.log_scale + self.power * np.log(self.model.predict(X)))

    def rescaled(self, factor: float, unit: str) -> AdaptedLatency:
        """The same model with every prediction multiplied by ``factor``, in ``unit``.

        A session timed against the reference cell reports ``ratio * reference_ms`` of the
        models' device; this model predicts ``ratio * reference_ms`` of its own device. The
        factor between the two reference cells moves one into the other's units.
        """
        if not (isinstance(factor, (int, float)) and math.isfinite(factor) and factor > 0):
            raise ValueError(f"factor={factor!r}: must be a finite number > 0")
        provenance = {**self.provenance, "rescaled": {"factor": float(factor), "unit": unit}}
        return AdaptedLatency(self.model, self.method, self.log_scale + math.log(factor),
                              self.power, provenance)

    def as_module(self, contexts: Sequence[CellContext] | None = None) -> nn.Module:
        """The frozen differentiable model (see :meth:`MLPLatency.as_module`), adapted."""
        return _Adapted(self.model.as_module(contexts), self.log_scale, self.power)

    def save(self, path: str | os.PathLike) -> None:
        """Write the model (as :meth:`MLPLatency.save`) and ``<path>.transfer.json``."""
        path = Path(path)
        self.model.save(path, labels_measured_on=getattr(self.model, "device_", None))
        provenance = {"device": device_identity("cpu"), **self.provenance}
        meta = {"format_version": FORMAT_VERSION, "method": self.method,
                "log_scale": self.log_scale, "power": self.power, **provenance}
        path.with_suffix(".transfer.json").write_text(json.dumps(meta, indent=2) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike, *, check_device_here: bool = True) -> AdaptedLatency:
        """Read a model written by :meth:`save`; warns if it was adapted to another device."""
        path = Path(path)
        meta_path = path.with_suffix(".transfer.json")
        if not meta_path.exists():
            raise ValueError(f"{meta_path} is missing: {path} is not an adapted model (load it "
                             "with MLPLatency.load, or adapt it with lenna_core.latency.transfer)")
        meta = read_json(meta_path, "adapt the model again (lenna transfer)")
        check_schema_version(meta, meta_path, FORMAT_VERSION, key="format_version",
                             remedy="Adapt the model again.")
        require_keys(meta, ("method", "log_scale", "power", "device"), meta_path,
                     "adapt the model again (lenna transfer)")
        model = MLPLatency.load(path, check_device_here=False)
        provenance = {k: v for k, v in meta.items()
                      if k not in ("format_version", "method", "log_scale", "power")}
        adapted = cls(model, meta["method"], meta["log_scale"], meta["power"], provenance)
        if check_device_here:
            check_device(meta["device"], f"the adapted latency model {path}")
        return adapted


# ---------------------------------------------------------------- the candidate methods


def _log_ratio_fit(base_ms: np.ndarray, y: np.ndarray, power: bool) -> tuple[float, float]:
    """(log_scale, power) of ``y ~ exp(log_scale) * base ** power``, least squares on logs."""
    lx, ly = np.log(base_ms), np.log(y)
    if not power or np.ptp(lx) < 1e-9:
        return float(np.mean(ly - lx)), 1.0
    b, a = np.polyfit(lx, ly, 1)
    return float(a), float(b)


def _recalibrated(source: MLPLatency, X: pd.DataFrame, y: np.ndarray,
                  table: OpLatencyTable | None = None) -> MLPLatency:
    """The source MLP's correction over ``table`` (default: its own), calibrated on (X, y)."""
    if source.prior_ is None:
        raise ValueError("methods 'recalibrated_table' and 'remeasured_table' need a model "
                         "that corrects a lookup table (MLPLatency(prior=...)); this one has "
                         "no prior")
    model = copy.copy(source)
    # The MLP's factor stays; the table under it is refit so that factor x table fits y. The
    # factor is the MLP's output over a 1 ms prior, so blocks its own table cannot price
    # (another batch size) still get one.
    factor = source.predict_features(source.encoder_.transform(X), np.ones(len(X)))
    new_table = source.prior_.table if table is None else table
    model.prior_ = LookupTableModel(new_table, calibrate=True).fit(X, y / factor)
    model.prior = new_table
    return model


def _finetune(source: MLPLatency, X: pd.DataFrame, y: np.ndarray, seed: int,
              epochs: int = 400, learning_rate: float = 3e-4, patience: int = 40) -> MLPLatency:
    """The source MLP trained further on (X, y) with full-batch AdamW, early stopping on a
    seeded fifth of the blocks (kept for training too when fewer than 10). ``y`` should be
    in the source device's units (see :func:`fit_method`): the MLP learns only what a
    log-affine map of its output cannot."""
    model = copy.deepcopy(source)
    module = model.module_
    features = torch.tensor(model.encoder_.transform(X), dtype=module.x_mean.dtype)
    xs = (features - module.x_mean) / module.x_scale
    log_y = np.log(y) - (0.0 if model.prior_ is None else np.log(model._prior_ms(X)))
    ys = torch.tensor((log_y - model.y_mean_) / model.y_scale_, dtype=xs.dtype)
    order = np.random.default_rng(seed).permutation(len(y))
    n_val = max(1, len(y) // 5)
    val = torch.tensor(order[:n_val])
    train = torch.tensor(order if len(y) < 10 else order[n_val:])
    net = module.net
    for p in net.parameters():
        p.requires_grad_(True)
    optimiser = torch.optim.AdamW(net.parameters(), lr=learning_rate, weight_decay=1e-5)
    best, best_state, since = float("inf"), copy.deepcopy(net.state_dict()), 0
    with torch.enable_grad():
        for _ in range(epochs):
            net.train()
            train_step(net, optimiser, xs[train], ys[train])
            val_loss = validation_loss(net, xs[val], ys[val])
            if val_loss < best - 1e-7:
                best, best_state, since = val_loss, copy.deepcopy(net.state_dict()), 0
            elif (since := since + 1) >= patience:
                break
    net.load_state_dict(best_state)
    for p in net.parameters():
        p.requires_grad_(False)
    return model


def _scratch(source: MLPLatency, X: pd.DataFrame, y: np.ndarray, seed: int) -> MLPLatency:
    model = MLPLatency(hidden=(64, 32), max_epochs=400, batch_size=32, patience=40,
                       validation_fraction=0.2, random_state=seed, space=source.space)
    return model.fit(X, y)


def fit_method(source: MLPLatency, method: str, X: pd.DataFrame, y: Sequence[float],
               seed: int = 0, table: OpLatencyTable | None = None) -> AdaptedLatency:
    """Fit one adaptation ``method`` (see :data:`METHODS`) of ``source`` to blocks ``X`` with
    latencies ``y`` (ms) measured on the target device; ``table`` is the op table measured
    there (the ``remeasured_*`` methods only)."""
    if method not in METHODS:
        raise ValueError(f"method={method!r}: must be one of {METHODS}")
    y = np.asarray(y, dtype=float)
    if len(y) != len(X) or not np.isfinite(y).all() or (y <= 0).any():
        raise ValueError("y must hold one positive, finite latency (ms) per row of X")
    if len(y) < MIN_BLOCKS[method]:
        raise ValueError(f"method {method!r} needs at least {MIN_BLOCKS[method]} labelled "
                         f"blocks, got {len(y)}: measure more blocks or choose another method")
    if method.startswith("remeasured") and table is None:
        raise ValueError(f"method {method!r} needs table=, the op table measured on the "
                         "device (OpLatencyTable.measure over the blocks' contexts)")
    if method == "none":
        return AdaptedLatency(source, method)
    # Every other method fits its own map onto the target device's labels, so the source's
    # calibration to one of its own labelling sessions is no part of it.
    source = source.without_session_calibration()
    if method in ("scale", "log_affine"):
        log_scale, power = _log_ratio_fit(source.predict(X), y, method == "log_affine")
        return AdaptedLatency(source, method, log_scale, power)
    if method == "remeasured_log_affine":
        model = _recalibrated(source, X, y, table)
        log_scale, power = _log_ratio_fit(model.predict(X), y, power=True)
        return AdaptedLatency(model, method, log_scale, power)
    if method == "finetune":
        # First the log-affine map, then the MLP fine-tuned on the labels mapped back into
        # the source's units: the device-wide trend costs the few labels nothing.
        log_scale, power = _log_ratio_fit(source.predict(X), y, power=len(y) >= 3)
        in_source_units = np.exp((np.log(y) - log_scale) / power)
        return AdaptedLatency(_finetune(source, X, in_source_units, seed), method, log_scale,
                              power)
    fitters: dict[str, Callable[[], MLPLatency]] = {
        "recalibrated_table": lambda: _recalibrated(source, X, y),
        "remeasured_table": lambda: _recalibrated(source, X, y, table),
        "scratch": lambda: _scratch(source, X, y, seed)}
    return AdaptedLatency(fitters[method](), method)


#: Methods that predict through the source model's own lookup-table prior: they cannot
#: price a block whose ops that table never timed (another batch size, say).
THROUGH_SOURCE_PRIOR = ("none", "scale", "log_affine", "recalibrated_table", "finetune")


def available_methods(source: MLPLatency, k: int, table: OpLatencyTable | None = None,
                      methods: Sequence[str] = METHODS, X: pd.DataFrame | None = None
                      ) -> list[str]:
    """The ``methods`` that can be fit on ``k`` blocks: enough of them, a lookup-table prior
    in ``source`` for the ``*_table`` ones, a device op ``table`` for the ``remeasured_*``;
    with the blocks ``X``, only methods whose tables price every one of them."""
    out = [m for m in methods if MIN_BLOCKS.get(m, 0) <= k
           and not (m.endswith("table") and source.prior_ is None)
           and not (m.startswith("remeasured") and (table is None or source.prior_ is None))]
    if X is not None and len(X):
        contexts = contexts_from_frame(X)
        if source.prior_ is not None and source.prior_.table.missing(contexts):
            out = [m for m in out if m not in THROUGH_SOURCE_PRIOR]
        if table is not None and table.missing(contexts):
            out = [m for m in out if not m.startswith("remeasured")]
    return out


def cross_validate(source: MLPLatency, X: pd.DataFrame, y: Sequence[float],
                   methods: Sequence[str] = METHODS, folds: int = 5, seed: int = 0,
                   table: OpLatencyTable | None = None) -> pd.DataFrame:
    """Per method: mean absolute percentage error and share within +-10% of the k blocks,
    each predicted by the method fit on the other folds (methods that need more blocks than
    a training fold holds are left out)."""
    y = np.asarray(y, dtype=float)
    if len(y) < 2:
        raise ValueError(f"{len(y)} labelled blocks: cross-validation needs at least 2")
    n_folds = min(folds, len(y))
    splits = list(KFold(n_folds, shuffle=True, random_state=seed).split(X))
    smallest_train = min(len(train) for train, _ in splits)
    rows = []
    for method in available_methods(source, smallest_train, table, methods, X):
        predicted = np.empty_like(y)
        try:
            for train, test in splits:
                fitted = fit_method(source, method, X.iloc[train], y[train], seed, table)
                with extrapolation_expected():  # "scratch" knows only its fold's range
                    predicted[test] = fitted.predict(X.iloc[test])
        except ValueError as err:
            # E.g. a table recalibrated on a fold that prices another fold's small blocks
            # at <= 0 ms: the method cannot serve these blocks, so it is scored NaN (never
            # chosen) and the reason kept.
            rows.append({"method": method, "cv_mape_pct": np.nan, "cv_within_10_pct": np.nan,
                         "failed": str(err)})
            continue
        error = np.abs(predicted - y) / y
        rows.append({"method": method, "cv_mape_pct": 100 * error.mean(),
                     "cv_within_10_pct": 100 * (error <= 0.1).mean()})
    return pd.DataFrame(rows)


def check_op_set(source: MLPLatency, X: pd.DataFrame) -> None:
    """Refuse blocks whose probability columns are not the model's op set, naming the ops."""
    ops = {c.split("_", 2)[2] for c in X.columns if c.startswith("p_")}
    expected = set(source.space.primitives)
    if ops != expected or set(probability_columns(source.space)) - set(X.columns):
        raise ValueError(f"the blocks' op set is not the model's: ops only in the blocks "
                         f"{sorted(ops - expected)}, only in the model "
                         f"{sorted(expected - ops)} (or missing edges); adapt a model fitted "
                         "on the search space these blocks were drawn from")


def adapt(source: MLPLatency, X: pd.DataFrame, y: Sequence[float], *,
          methods: Sequence[str] = METHODS, folds: int = 5, seed: int = 0,
          device: dict | None = None, source_name: str | None = None,
          profiling_seconds: float | None = None,
          table: OpLatencyTable | None = None) -> AdaptedLatency:
    """Adapt ``source`` to the device ``X``/``y`` were measured on: cross-validate every
    method, fit the best (smallest CV MAPE; the simpler one on a tie) on all blocks."""
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"methods {unknown} unknown: choose from {METHODS}")
    check_op_set(source, X)
    started = time.perf_counter()
    scores = cross_validate(source, X, y, methods, folds, seed, table)
    if scores.empty or scores["cv_mape_pct"].isna().all():
        raise ValueError(f"no method of {list(methods)} fits these {len(X)} blocks: too few "
                         f"for each (fewest needed: {MIN_BLOCKS}), or blocks the model's "
                         "table cannot price without this device's op table; measure more "
                         "blocks, or pass the device's table")
    best = scores.sort_values("cv_mape_pct", kind="stable").iloc[0]["method"]
    adapted = fit_method(source, best, X, y, seed, table)
    adapted.provenance = {
        "source": {"model": source_name, "device": getattr(source, "device_", None)},
        "device": device if device is not None else device_identity("cpu"),
        "k": int(len(X)), "seed": seed, "profiling_seconds": profiling_seconds,
        "fitting_seconds": round(time.perf_counter() - started, 2),
        "cross_validation": scores.round(3).to_dict(orient="records")}
    return adapted
