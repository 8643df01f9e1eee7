"""ElasticNet latency model: fits a known linear latency, scikit-learn contract, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils import estimator_checks
from sklearn.utils.validation import check_is_fitted

from lenna_core.latency.dataset import SamplingSpec, probability_columns, sample_block
from lenna_core.latency.encoder import BlockEncoder, feature_names
from lenna_core.latency.linear_model import ElasticNetLatency
from lenna_core.space.search_space import SearchSpace

N_FEATURES = len(feature_names())


def block_frame(rows: int, seed: int = 0) -> pd.DataFrame:
    records = []
    for row_id in range(rows):
        context, probs, _ = sample_block(row_id, seed, SamplingSpec())
        records.append({**context.to_dict(), **dict(zip(probability_columns(), probs.ravel()))})
    return pd.DataFrame(records)


@pytest.fixture(scope="module")
def synthetic():
    """Blocks with a latency that is linear in the encoded features (plus a little noise)."""
    X = block_frame(400)
    features = BlockEncoder().fit(X).transform(X)
    weights = np.random.default_rng(1).uniform(0.0, 0.1, N_FEATURES)
    linear = features @ weights
    noise = np.random.default_rng(2).normal(0, 0.01 * linear.std(), len(X))
    return X, features, linear + noise


def r2(y, p) -> float:
    return 1 - ((y - p) ** 2).sum() / ((y - y.mean()) ** 2).sum()


def test_fits_a_linear_latency(synthetic):
    X, _, y = synthetic
    model = ElasticNetLatency(log_target=False).fit(X[:300], y[:300])
    assert r2(y[300:], model.predict(X[300:])) > 0.95
    assert model.coef_.shape == (N_FEATURES,) and model.alpha_ > 0
    assert list(model.feature_names_) == feature_names()
    assert set(model.coefficients().index) <= set(feature_names())


def test_log_target_fits_an_exponential_latency(synthetic):
    X, _, y = synthetic
    latency = np.exp((y - y.mean()) / y.std())
    model = ElasticNetLatency(log_target=True).fit(X[:300], latency[:300])
    assert r2(np.log(latency[300:]), np.log(model.predict(X[300:]))) > 0.95
    with pytest.raises(ValueError, match="positive"):
        ElasticNetLatency().fit(X[:10], -latency[:10])


def test_encoded_matrices_give_the_same_model(synthetic):
    X, features, y = synthetic
    a = ElasticNetLatency(alpha=1e-3, log_target=False).fit(X, y)
    b = ElasticNetLatency(alpha=1e-3, log_target=False).fit(features, y)
    np.testing.assert_allclose(a.predict(X), b.predict(features), rtol=1e-8)
    assert b.predict(features[0]).shape == (1,)  # a single feature vector
    with pytest.raises(ValueError, match="fitted on features input; predict got frame"):
        b.predict(X)


def test_wrong_feature_length_names_expected_and_got(synthetic):
    X, features, y = synthetic
    model = ElasticNetLatency(alpha=1e-3).fit(features, np.exp(y))
    with pytest.raises(ValueError, match=f"129 features per block; this model expects "
                                         f"{N_FEATURES}"):
        model.predict(features[0, :-1])
    with pytest.raises(ValueError, match=f"expects {N_FEATURES}"):
        ElasticNetLatency().fit(features[:, :10], np.exp(y))
    with pytest.raises(ValueError, match="dataset frame"):
        model.predict("not a block")


def test_bad_probabilities_and_targets(synthetic):
    X, _, y = synthetic
    model = ElasticNetLatency(alpha=1e-3).fit(X[:50], np.exp(y[:50]))
    bad = X[:5].copy()
    bad.loc[3, "p_00_sep_conv_3x3"] += 0.3
    with pytest.raises(ValueError, match=r"row 3 \(index 3\): the probabilities of edge 0"):
        model.predict(bad)
    with pytest.raises(ValueError, match="one latency per block"):
        ElasticNetLatency().fit(X[:5], [1.0, 2.0])


def test_sklearn_contract(synthetic):
    X, _, y = synthetic
    model = ElasticNetLatency(alpha=0.01, l1_ratio=0.3, random_state=7)
    copy = clone(model)
    assert copy.get_params() == model.get_params()
    with pytest.raises(NotFittedError):
        model.predict(X)
    model.fit(X[:50], np.exp(y[:50]))
    check_is_fitted(model)
    assert not hasattr(clone(model), "coef_")
    space = SearchSpace(steps=3)
    assert clone(ElasticNetLatency(space=space)).space == space
    # Generic estimator checks fit on random matrices with few columns; this model needs
    # dataset frames or the 130-column encoding, so only the checks that never fit apply.
    for check in (estimator_checks.check_no_attributes_set_in_init,
                  estimator_checks.check_get_params_invariance,
                  estimator_checks.check_set_params,
                  estimator_checks.check_parameters_default_constructible,
                  estimator_checks.check_estimator_cloneable,
                  estimator_checks.check_estimator_repr,
                  estimator_checks.check_estimators_unfitted):
        check("ElasticNetLatency", ElasticNetLatency())


def test_cross_validated_alpha_depends_only_on_the_seed(synthetic):
    X, _, y = synthetic
    a = ElasticNetLatency(random_state=3).fit(X[:200], np.exp(y[:200]))
    b = ElasticNetLatency(random_state=3).fit(X[:200], np.exp(y[:200]))
    assert a.alpha_ == b.alpha_
    np.testing.assert_array_equal(a.coef_, b.coef_)
