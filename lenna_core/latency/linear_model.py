"""ElasticNet on the encoded block features: the linear baseline for latency prediction.

``BlockEncoder -> StandardScaler -> ElasticNet`` (``ElasticNetCV`` over a path of penalties
when ``alpha`` is None), fitted to log latency by default: block latencies span an order of
magnitude, and a log target makes the loss relative rather than dominated by the largest
blocks. Predictions are in ms either way.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.compose import TransformedTargetRegressor
from sklearn.linear_model import ElasticNet, ElasticNetCV
from sklearn.model_selection import KFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted

from lenna_core.latency.encoder import BlockEncoder, feature_names
from lenna_core.space.search_space import DARTS_SPACE, SearchSpace


class ElasticNetLatency(RegressorMixin, BaseEstimator):
    """Latency (ms) of a block from its encoded features, by ElasticNet (scikit-learn regressor).

    ``fit`` and ``predict`` take a dataset frame (``lenna_core.latency.dataset.read_dataset``), or a
    matrix already encoded by :class:`~lenna_core.latency.encoder.BlockEncoder` (one row per block,
    or a single feature vector); ``space`` None means the DARTS space. After ``fit``:
    ``coef_`` and ``intercept_`` (on standardised features, for log latency when
    ``log_target``), ``alpha_`` (the penalty used), ``feature_names_`` and ``model_`` (the
    fitted scikit-learn pipeline).
    """

    def __init__(self, alpha: float | None = None, l1_ratio: float = 0.5, log_target: bool = True,
                 random_state: int | None = 0, space: SearchSpace | None = None, cv: int = 5,
                 max_iter: int = 10_000) -> None:
        self.alpha = alpha
        self.l1_ratio = l1_ratio
        self.log_target = log_target
        self.random_state = random_state
        self.space = space
        self.cv = cv
        self.max_iter = max_iter

    def _space(self) -> SearchSpace:
        return DARTS_SPACE if self.space is None else self.space

    @property
    def n_features(self) -> int:
        """Length of an encoded feature vector for this model's search space."""
        return len(feature_names(self._space()))

    def _input_kind(self, X) -> tuple[str, object]:
        """('frame', X) or ('features', 2-d float array), checking the feature-vector length."""
        if isinstance(X, pd.DataFrame):
            return "frame", X
        if isinstance(X, (np.ndarray, list, tuple)):
            features = np.asarray(X, dtype=float)
            if features.ndim == 1:
                features = features.reshape(1, -1)
            if features.ndim != 2:
                raise ValueError(f"X has {features.ndim} dimensions; give one encoded feature "
                                 "vector or a (blocks x features) matrix")
            if features.shape[1] != self.n_features:
                raise ValueError(f"X has {features.shape[1]} features per block; this model "
                                 f"expects {self.n_features} (the BlockEncoder layout for "
                                 f"{self._space().num_edges} edges x "
                                 f"{self._space().num_ops} ops)")
            if not np.isfinite(features).all():
                raise ValueError("X holds non-finite features")
            return "features", features
        raise ValueError(f"X is a {type(X).__name__}; give a dataset frame or an encoded "
                         "feature matrix (numpy)")

    def _make_model(self, encode: bool):
        if self.alpha is None:
            folds = KFold(self.cv, shuffle=True, random_state=self.random_state)
            regressor = ElasticNetCV(l1_ratio=self.l1_ratio, cv=folds, max_iter=self.max_iter,
                                     random_state=self.random_state)
        else:
            regressor = ElasticNet(alpha=self.alpha, l1_ratio=self.l1_ratio,
                                   max_iter=self.max_iter, random_state=self.random_state)
        steps = [("encoder", BlockEncoder(self._space()))] if encode else []
        pipeline = Pipeline([*steps, ("scaler", StandardScaler()), ("regressor", regressor)])
        if not self.log_target:
            return pipeline
        return TransformedTargetRegressor(pipeline, func=np.log, inverse_func=np.exp,
                                          check_inverse=False)

    def fit(self, X, y) -> ElasticNetLatency:
        """Fit to latencies ``y`` (ms) of the blocks in ``X``."""
        kind, X = self._input_kind(X)
        y = np.asarray(y, dtype=float)
        if y.ndim != 1 or len(y) != len(X):
            raise ValueError(f"y must hold one latency per block: {len(X)} blocks, y of shape "
                             f"{y.shape}")
        if not np.isfinite(y).all() or (self.log_target and (y <= 0).any()):
            raise ValueError("latencies y must be finite" + (" and positive (log_target=True)"
                                                             if self.log_target else ""))
        model = self._make_model(encode=kind == "frame").fit(X, y)
        regressor = (model.regressor_ if self.log_target else model)[-1]
        self.model_ = model
        self.input_kind_ = kind
        self.coef_ = regressor.coef_.copy()
        self.intercept_ = float(regressor.intercept_)
        self.alpha_ = float(regressor.alpha_ if self.alpha is None else self.alpha)
        self.feature_names_ = np.array(feature_names(self._space()), dtype=object)
        return self

    def predict(self, X) -> np.ndarray:
        """Latency (ms) of every block in ``X`` (same kind of input as in ``fit``)."""
        check_is_fitted(self, "model_")
        kind, X = self._input_kind(X)
        if kind != self.input_kind_:
            raise ValueError(f"the model was fitted on {self.input_kind_} input; predict got "
                             f"{kind} input")
        return self.model_.predict(X)

    def coefficients(self) -> pd.Series:
        """Non-zero coefficients on standardised features, largest magnitude first."""
        check_is_fitted(self, "coef_")
        series = pd.Series(self.coef_, index=self.feature_names_, name="coef")
        series = series[series != 0]
        return series.reindex(series.abs().sort_values(ascending=False).index)
