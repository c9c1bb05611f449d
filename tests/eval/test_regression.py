"""float64 least squares and its explicit, logged fallbacks."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from dkp_tui.eval.regression import features, is_singular, least_squares


def test_recovers_exact_coefficients():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 6))
    beta = rng.normal(size=(6, 3))
    fit = least_squares(x, x @ beta)
    assert fit.fallback is None
    np.testing.assert_allclose(fit.beta, beta, atol=1e-10)
    one = least_squares(x, x @ beta[:, 0])
    assert one.beta.shape == (6,)


def test_features_are_shifted_scaled_and_optionally_biased():
    kp = np.array([[[-1.0, 1.0], [0.0, 0.5]]])
    np.testing.assert_allclose(features(kp), [[0.0, 1.0, 0.5, 0.75]])
    np.testing.assert_allclose(features(kp, 255.0, bias=True), [[0.0, 255.0, 127.5, 191.25, 1.0]])


def test_singular_detection():
    x = np.ones((10, 2))
    assert is_singular(x)
    assert is_singular(np.eye(3)[:2])  # fewer rows than columns
    assert not is_singular(np.eye(3))


def test_ridge_fallback_when_singular(caplog):
    x = np.column_stack([np.arange(5.0), np.arange(5.0)])  # duplicate columns
    y = 2 * np.arange(5.0)
    with caplog.at_level(logging.WARNING, logger="dkp.eval"):
        fit = least_squares(x, y, ridge=1.0, what="unit")
    assert fit.fallback == "ridge=1"
    xtx = x.T @ x
    np.testing.assert_allclose(fit.beta, np.linalg.solve(xtx + np.eye(2), x.T @ y))
    assert "unit" in caplog.text and "ridge=1" in caplog.text


def test_min_norm_fallback_without_ridge():
    x = np.column_stack([np.arange(5.0), np.arange(5.0)])
    fit = least_squares(x, 2 * np.arange(5.0))
    assert fit.fallback == "lstsq-min-norm"
    np.testing.assert_allclose(fit.beta, [1.0, 1.0], atol=1e-10)


def test_nan_targets_refused():
    with pytest.raises(ValueError, match="NaN"):
        least_squares(np.eye(3), np.array([1.0, np.nan, 0.0]))
