"""LENNA's latency predictor: an MLP on the encoded block, with a differentiable twin.

:class:`MLPLatency` follows the scikit-learn estimator contract on dataset frames. Features
are standardised and the target is log(ms), standardised, both inside the model; training
stops early on a seeded validation split. :meth:`MLPLatency.as_module` returns a frozen
``nn.Module`` with all scaling folded in that maps architecture probabilities (and the fixed
block contexts) to milliseconds, differentiably, for the search loss.

With ``prior=`` an :class:`~lenna_core.latency.lookup_table.OpLatencyTable`, the MLP learns a
correction to the lookup table instead of the whole latency: the target is the log ratio of
the measured latency to the table's expectation with a scale and offset fitted on the
training rows. The table carries what is additive about a block (which op sits on which
edge); the MLP what is not.

:meth:`MLPLatency.calibrate_to_session` adds a
:class:`~lenna_core.latency.session_calibration.SessionCalibration` on the output: a power
fitted on blocks labelled in another session of the same machine, whose state moves every
label by such a power. It is saved with the model and applied by every prediction.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted
from torch import nn

from lenna_core.latency.block_checks import observed_range, warn_outside_known_range
from lenna_core.latency.blocks import CellContext
from lenna_core.latency.device_identity import check_device, identity_from_record
from lenna_core.latency.encoder import (
    BlockEncoder,
    context_vector,
    edge_macs,
    encode,
    feature_names,
)
from lenna_core.latency.file_checks import (
    check_schema_version,
    file_sha256,
    load_torch,
    read_json,
    require_keys,
    verify_digest,
    with_digest,
)
from lenna_core.latency.lookup_table import LookupTableModel, OpLatencyTable, linear_expectation
from lenna_core.latency.mlp_training import network, train_step, validation_loss
from lenna_core.latency.profiler import machine_fingerprint
from lenna_core.latency.session_calibration import SessionCalibration, fit_session_calibration
from lenna_core.space.search_space import DARTS_SPACE, SearchSpace
from lenna_core.validation import is_integer

FORMAT_VERSION = 3  # 2 adds the lookup-table prior, 3 the session calibration
READABLE_VERSIONS = (1, 2, 3)
#: Block properties whose training range is recorded, so a search can warn outside it.
RANGE_COLUMNS = ("C", "spatial", "batch_size")


class LatencyModule(nn.Module):
    """Frozen MLP with its scaling folded in: block features -> latency in ms.

    With ``corrects_prior``, the MLP's output is a factor on a prior latency (the calibrated
    lookup table's), which every call must then pass as ``prior_ms``; with ``session``, the
    latency is then raised to its power (:class:`SessionCalibration`).
    """

    def __init__(self, net: nn.Sequential, x_mean: torch.Tensor, x_scale: torch.Tensor,
                 y_mean: float, y_scale: float, space: SearchSpace,
                 corrects_prior: bool = False, session: SessionCalibration | None = None
                 ) -> None:
        super().__init__()
        self.net, self.space, self.corrects_prior = net, space, corrects_prior
        self.session = session
        self.register_buffer("x_mean", x_mean)
        self.register_buffer("x_scale", x_scale)
        self.y_mean, self.y_scale = y_mean, y_scale
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()

    def forward_features(self, features: torch.Tensor,
                         prior_ms: torch.Tensor | None = None) -> torch.Tensor:
        """Latency (ms) of each row of already encoded features (N, n_features)."""
        if features.dim() != 2 or features.size(1) != self.x_mean.numel():
            raise ValueError(f"features of shape {tuple(features.shape)}: this model takes "
                             f"(N, {self.x_mean.numel()}) (see lenna_core.latency.encoder)")
        z = self.net((features - self.x_mean) / self.x_scale).squeeze(1)
        factor = torch.exp(z * self.y_scale + self.y_mean)
        if not self.corrects_prior:
            return self._in_session(factor)
        if prior_ms is None or prior_ms.shape != factor.shape:
            raise ValueError("this model corrects the lookup table: pass prior_ms, the "
                             "table's calibrated expectation (ms) of each of the "
                             f"{factor.numel()} rows, or use MLPLatency.predict / as_module"
                             "(contexts), which compute it")
        return self._in_session(factor * prior_ms.to(factor.dtype))

    def _in_session(self, ms: torch.Tensor) -> torch.Tensor:
        """``ms`` with the session calibration applied (unchanged without one)."""
        if self.session is None:
            return ms
        return torch.exp(self.session.log_offset + self.session.slope * torch.log(ms))

    def forward(self, context_features: torch.Tensor, probs: torch.Tensor,
                macs: torch.Tensor, prior_ms: torch.Tensor | None = None) -> torch.Tensor:
        """Latency (ms) of N blocks from their contexts and probabilities (N, edges, ops)."""
        shape = (self.space.num_edges, self.space.num_ops)
        if probs.dim() != 3 or tuple(probs.shape[1:]) != shape:
            raise ValueError(f"probs of shape {tuple(probs.shape)}: expected (N, {shape[0]}, "
                             f"{shape[1]}) for this model's search space")
        return self.forward_features(encode(context_features, probs, macs), prior_ms)


class BlocksLatency(nn.Module):
    """Predicted latency (ms) of fixed blocks, as a function of their probabilities only."""

    def __init__(self, model: LatencyModule, contexts: Sequence[CellContext],
                 prior: LookupTableModel | None = None) -> None:
        super().__init__()
        self.model, self.contexts = model, list(contexts)
        dtype = model.x_mean.dtype
        self.register_buffer("context_features", torch.tensor(
            np.stack([context_vector(c) for c in contexts]), dtype=dtype))
        self.register_buffer("macs", torch.tensor(
            np.stack([edge_macs(c, model.space) for c in contexts]), dtype=dtype))
        self.prior = prior
        if model.corrects_prior:
            if prior is None:
                raise ValueError("this model corrects a lookup table: pass its fitted prior")
            matrices, fixed = prior.table.block_arrays(
                self.contexts, "these blocks", "measure them with OpLatencyTable.measure"
                "(contexts), merge, and refit the model")
            self.register_buffer("table_ms", torch.tensor(matrices, dtype=dtype))
            self.register_buffer("table_fixed_ms", torch.tensor(fixed, dtype=dtype))

    def forward(self, probs: torch.Tensor) -> torch.Tensor:
        """``probs`` (blocks, edges, ops) -> latency of each block (ms)."""
        if probs.dim() != 3 or probs.size(0) != len(self.contexts):
            raise ValueError(f"probs of shape {tuple(probs.shape)}: expected one (edges x ops) "
                             f"matrix for each of the {len(self.contexts)} blocks")
        probs = probs.to(self.macs.dtype)
        prior_ms = None
        if self.model.corrects_prior:
            # The calibrated table's expectation, computed as LookupTableEstimator computes it.
            prior_ms = linear_expectation(probs, self.table_ms, self.table_fixed_ms,
                                          self.prior.scale_, self.prior.offset_)
        return self.model(self.context_features, probs, self.macs, prior_ms)


class MLPLatency(RegressorMixin, BaseEstimator):
    """MLP latency predictor on dataset frames (scikit-learn contract)."""

    def __init__(self, hidden: tuple[int, ...] = (256, 128), learning_rate: float = 2e-3,
                 weight_decay: float = 1e-5, max_epochs: int = 600, batch_size: int = 128,
                 patience: int = 60, validation_fraction: float = 0.15,
                 random_state: int = 0, space: SearchSpace = DARTS_SPACE,
                 prior: OpLatencyTable | None = None) -> None:
        self.hidden = hidden
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.random_state = random_state
        self.space = space
        self.prior = prior

    def _check_params(self) -> None:
        if not 0.0 < self.validation_fraction < 1.0:
            raise ValueError(f"validation_fraction={self.validation_fraction}: must lie in (0, 1)")
        for name in ("max_epochs", "batch_size", "patience"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name}={getattr(self, name)}: must be a positive integer")
        if not self.hidden or any(not is_integer(h) or h < 1 for h in self.hidden):
            raise ValueError(f"hidden={self.hidden}: must list positive layer widths")
        if self.prior is not None:
            if not isinstance(self.prior, OpLatencyTable):
                raise ValueError(f"prior={self.prior!r}: must be None or an OpLatencyTable "
                                 "(OpLatencyTable.from_csv)")
            if self.prior.space.primitives != self.space.primitives:
                raise ValueError(f"prior: the table holds ops {list(self.prior.space.primitives)}"
                                 f", the model's space {list(self.space.primitives)}")

    def _prior_ms(self, X: pd.DataFrame) -> np.ndarray | None:
        """The calibrated lookup table's latency (ms) of every row; None without a prior."""
        if self.prior_ is None:
            return None
        base = self.prior_.predict(X)
        if (base <= 0).any():
            raise ValueError(f"the calibrated lookup table predicts a latency <= 0 ms for "
                             f"{int((base <= 0).sum())} rows; fit the MLP without prior")
        return base

    def fit(self, X: pd.DataFrame, y: Sequence[float]) -> MLPLatency:
        """Train on frame ``X`` and latencies ``y`` (ms), stopping early on a validation split."""
        self._check_params()
        self.session_calibration_: SessionCalibration | None = None
        y = np.asarray(y, dtype=float)
        if y.ndim != 1 or len(y) != len(X) or not np.isfinite(y).all() or (y <= 0).any():
            raise ValueError("y must hold one positive, finite latency (ms) per row of X")
        self.encoder_ = BlockEncoder(self.space).fit(X)
        self.prior_ = (None if self.prior is None else
                       LookupTableModel(self.prior, calibrate=True).fit(X, y))
        prior_ms = self._prior_ms(X)
        self.context_range_ = {name: [int(X[name].min()), int(X[name].max())]
                               for name in RANGE_COLUMNS}
        features = self.encoder_.transform(X)
        rng = np.random.default_rng(self.random_state)
        order = rng.permutation(len(y))
        n_val = max(1, int(round(self.validation_fraction * len(y))))
        val, train = order[:n_val], order[n_val:]
        x_mean = features[train].mean(axis=0)
        x_scale = features[train].std(axis=0)
        x_scale[x_scale < 1e-8] = 1.0  # constant features (e.g. the batch size) pass through
        log_y = np.log(y) if prior_ms is None else np.log(y) - np.log(prior_ms)
        self.y_mean_, self.y_scale_ = float(log_y[train].mean()), float(log_y[train].std())
        xs = torch.tensor((features - x_mean) / x_scale, dtype=torch.float32)
        ys = torch.tensor((log_y - self.y_mean_) / self.y_scale_, dtype=torch.float32)
        generator = torch.Generator().manual_seed(self.random_state)
        torch.manual_seed(self.random_state)  # the initial weights
        net = network(features.shape[1], self.hidden)
        optimiser = torch.optim.AdamW(net.parameters(), lr=self.learning_rate,
                                      weight_decay=self.weight_decay)
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimiser, factor=0.5,
                                                               patience=self.patience // 3)
        best, best_state, since_best = float("inf"), None, 0
        self.history_: list[dict] = []
        train_idx = torch.tensor(train)
        for epoch in range(self.max_epochs):
            net.train()
            perm = train_idx[torch.randperm(len(train_idx), generator=generator)]
            for start in range(0, len(perm), self.batch_size):
                batch = perm[start:start + self.batch_size]
                loss = train_step(net, optimiser, xs[batch], ys[batch])
            val_loss = validation_loss(net, xs[val], ys[val])
            scheduler.step(val_loss)
            self.history_.append({"epoch": epoch, "train_loss": loss.item(),
                                  "val_loss": val_loss})
            if val_loss < best - 1e-6:
                best, since_best = val_loss, 0
                best_state = {k: v.clone() for k, v in net.state_dict().items()}
            else:
                since_best += 1
                if since_best >= self.patience:
                    break
        net.load_state_dict(best_state)
        self.n_epochs_ = len(self.history_)
        self.best_val_loss_ = best
        self.module_ = LatencyModule(net, torch.tensor(x_mean, dtype=torch.float32),
                                     torch.tensor(x_scale, dtype=torch.float32),
                                     self.y_mean_, self.y_scale_, self.space,
                                     corrects_prior=self.prior_ is not None)
        self.n_features_in_ = features.shape[1]
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Latency (ms) of every row of the dataset frame ``X``."""
        check_is_fitted(self, "module_")
        features = self.encoder_.transform(X)  # checks every block first
        if getattr(self, "context_range_", None):  # older saved models record none
            warn_outside_known_range(self.context_range_, observed_range(X, RANGE_COLUMNS),
                                     "X has blocks")
        return self.predict_features(features, self._prior_ms(X))

    def calibrate_to_session(self, X: pd.DataFrame, y: Sequence[float]) -> MLPLatency:
        """Calibrate the predictions to blocks ``X`` labelled ``y`` (ms) in another session:
        the power between the uncalibrated predictions and ``y``, applied from now on."""
        raw = self.without_session_calibration().predict(X)
        return self.set_session_calibration(fit_session_calibration(raw, y))

    def set_session_calibration(self, calibration: SessionCalibration | None) -> MLPLatency:
        """Apply ``calibration`` to every prediction from now on (None: none); returns self."""
        check_is_fitted(self, "module_")
        if calibration is not None and not isinstance(calibration, SessionCalibration):
            raise ValueError(f"calibration={calibration!r}: must be None or a "
                             "SessionCalibration (fit_session_calibration)")
        module = self.module_
        self.module_ = LatencyModule(module.net, module.x_mean, module.x_scale, module.y_mean,
                                     module.y_scale, module.space, module.corrects_prior,
                                     calibration)
        self.session_calibration_ = calibration
        return self

    def without_session_calibration(self) -> MLPLatency:
        """A copy of this model that predicts without its session calibration."""
        check_is_fitted(self, "module_")
        return copy.copy(self).set_session_calibration(None)

    def predict_features(self, features: np.ndarray,
                         prior_ms: np.ndarray | None = None) -> np.ndarray:
        """Latency (ms) of already encoded feature rows (n_rows, n_features).

        A model with a prior also needs ``prior_ms``, the calibrated table's latency per row.
        """
        check_is_fitted(self, "module_")
        features = np.asarray(features, dtype=np.float32)
        if features.ndim != 2 or features.shape[1] != self.n_features_in_:
            raise ValueError(f"feature vectors of length {features.shape[-1]}: this model was "
                             f"trained on {self.n_features_in_} features "
                             f"(lenna_core.latency.encoder layout)")
        prior = None if prior_ms is None else torch.as_tensor(prior_ms, dtype=torch.float64)
        with torch.no_grad():
            out = self.module_.forward_features(torch.from_numpy(features), prior)
        return out.double().numpy()

    def as_module(self, contexts: Sequence[CellContext] | None = None) -> nn.Module:
        """The frozen differentiable model; with ``contexts``, a function of probabilities only."""
        check_is_fitted(self, "module_")
        if contexts is None:
            return self.module_
        return BlocksLatency(self.module_, contexts, self.prior_)

    # ------------------------------------------------------------------ persistence

    def save(self, path: str | os.PathLike, labels_measured_on: dict | None = None) -> None:
        """Write ``<path>.pt`` (state_dict) and ``<path>.json`` (everything needed to check it).

        ``labels_measured_on`` is the machine record of the training labels (a dataset's
        ``read_metadata(path)["machine"]``): the device whose latencies the model predicts,
        saved as ``device``. Without it, the machine fitting the model is assumed.
        """
        check_is_fitted(self, "module_")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(self.module_.net.state_dict(), path.with_suffix(".pt"))
        prior = None
        if self.prior_ is not None:
            table_path = path.with_suffix(".table.csv")
            self.prior_.table.to_csv(table_path)
            prior = {"kind": "calibrated lookup table", "table": table_path.name,
                     "scale": self.prior_.scale_, "offset_ms": self.prior_.offset_}
        from lenna_core import __version__
        meta = {
            "format_version": FORMAT_VERSION, "package_version": __version__,
            "units": {"latency": "ms", "target": "log(ms), standardised"},
            "space": self.space.to_dict(), "feature_names": feature_names(self.space),
            "params": {k: (list(v) if isinstance(v, tuple) else v)
                       for k, v in self.get_params().items() if k not in ("space", "prior")},
            "prior": prior,
            "session_calibration": (None if self.session_calibration_ is None
                                    else self.session_calibration_.to_record()),
            "x_mean": self.module_.x_mean.tolist(), "x_scale": self.module_.x_scale.tolist(),
            "y_mean": self.y_mean_, "y_scale": self.y_scale_, "n_epochs": self.n_epochs_,
            "context_range": self.context_range_,
            "device": labels_measured_on or machine_fingerprint("cpu"),
            # Where it was fitted, less the moment's load: the same fit saves the same file.
            "fitted_on": {k: v for k, v in machine_fingerprint("cpu").items()
                          if k != "load_average_1_5_15"},
            "weights_sha256": file_sha256(path.with_suffix(".pt")),
        }
        path.with_suffix(".json").write_text(json.dumps(with_digest(meta), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike, space: SearchSpace = DARTS_SPACE, *,
             check_device_here: bool = True) -> MLPLatency:
        """Read a model written by :meth:`save`, checking it fits ``space``'s feature layout
        and warning (``DeviceMismatchWarning``) if its labels were measured on another device."""
        path = Path(path)
        json_path = path.with_suffix(".json")
        remedy = "restore the model's files or retrain it (chapter 4)"
        meta = read_json(json_path, remedy)
        check_schema_version(meta, json_path, READABLE_VERSIONS, key="format_version",
                             remedy="Retrain the model (chapter 4).")
        verify_digest(meta, json_path, remedy)
        require_keys(meta, ("feature_names", "space", "params", "x_mean", "x_scale", "y_mean",
                            "y_scale", "n_epochs", "device"), json_path, remedy)
        if meta["feature_names"] != feature_names(space):
            raise ValueError(f"{path} was trained on another feature layout (search space "
                             f"{meta['space']}); it cannot score {space.to_dict()}: retrain it "
                             "on a dataset of this space")
        try:
            params = dict(meta["params"], hidden=tuple(meta["params"]["hidden"]), space=space)
            model = cls(**params)
            model._check_params()
        except (ValueError, TypeError, KeyError) as err:
            raise ValueError(f"{json_path}: params {meta['params']!r} are not a model's "
                             f"({err}); {remedy}") from None
        model.prior_ = None
        if meta.get("prior"):
            table = OpLatencyTable.from_csv(path.parent / meta["prior"]["table"])
            model.prior = table
            model.prior_ = LookupTableModel(table, calibrate=True)
            model.prior_.scale_ = meta["prior"]["scale"]
            model.prior_.offset_ = meta["prior"]["offset_ms"]
            model.prior_.space_ = table.space
        n_features = len(meta["feature_names"])
        for key in ("x_mean", "x_scale"):
            values = np.asarray(meta[key], dtype=float)
            if values.shape != (n_features,) or not np.isfinite(values).all():
                raise ValueError(f"{json_path}: {key} must hold {n_features} finite numbers "
                                 f"(one per feature), not shape {values.shape}; {remedy}")
        net = network(n_features, model.hidden)
        weights = path.with_suffix(".pt")
        if weights.exists() and meta.get("weights_sha256") not in (None, file_sha256(weights)):
            raise ValueError(f"{weights} is not the file {json_path.name} was saved with (its "
                             f"checksum differs): it was replaced or damaged; {remedy}")
        state = load_torch(weights, remedy, weights_only=True)
        try:
            net.load_state_dict(state)
        except (RuntimeError, TypeError, AttributeError) as err:
            shapes = {k: tuple(v.shape) for k, v in state.items()} \
                if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"{path.with_suffix('.pt')} does not fit hidden="
                             f"{list(model.hidden)} from {json_path.name} (weights: {shapes}); "
                             f"{remedy}") from err
        model.y_mean_, model.y_scale_ = meta["y_mean"], meta["y_scale"]
        model.session_calibration_ = None
        if meta.get("session_calibration"):
            try:
                model.session_calibration_ = SessionCalibration.from_record(
                    meta["session_calibration"])
            except ValueError as err:
                raise ValueError(f"{json_path}: {err}; {remedy}") from None
        model.module_ = LatencyModule(net, torch.tensor(meta["x_mean"]),
                                      torch.tensor(meta["x_scale"]), model.y_mean_,
                                      model.y_scale_, space,
                                      corrects_prior=model.prior_ is not None,
                                      session=model.session_calibration_)
        model.encoder_ = BlockEncoder(space)
        model.encoder_.feature_names_out_ = np.array(meta["feature_names"], dtype=object)
        model.encoder_.n_features_out_ = len(meta["feature_names"])
        model.n_features_in_ = len(meta["feature_names"])
        model.n_epochs_ = meta["n_epochs"]
        model.device_ = meta["device"]
        model.context_range_ = meta.get("context_range")
        if check_device_here:
            check_device(identity_from_record(model.device_), f"the latency model {path}")
        return model
