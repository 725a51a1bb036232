"""IMLE() without a noise argument: blackbox differentiation, said with a warning;
IMLE(noise=None) means it and is silent; every other way of building one is silent too."""

from __future__ import annotations

import dataclasses
import pickle
import warnings

import numpy as np
import pytest

import imle_solvers as ims
from imle_solvers.estimators import NoNoiseWarning
from imle_solvers.serialization import from_config, to_config


def topk(k: int):
    def solve(x):
        z = np.zeros_like(x)
        np.put_along_axis(z, np.argsort(-x, axis=-1)[..., :k], 1.0, axis=-1)
        return z
    return solve


@pytest.mark.parametrize("build", [lambda: ims.IMLE(), lambda: ims.IMLE(lambda_=5.0, samples=2)])
def test_imle_without_a_noise_argument_warns_that_it_is_blackbox_differentiation(build):
    with pytest.warns(NoNoiseWarning, match=r"IMLE\(\) without noise perturbs nothing: .* blackbox differentiation's "
                                            r".* IMLE\(noise=None\) to mean it"):
        estimator = build()
    assert estimator.noise is None


@pytest.mark.parametrize("build", [
    lambda: ims.IMLE(noise=None), lambda: ims.IMLE(None, lambda_=2.0), lambda: ims.IMLE(ims.SumOfGamma(k=2)),
    lambda: ims.IMLE(noise=ims.Gumbel(), lambda_=3.0),
])
def test_imle_with_a_noise_argument_is_silent(build):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build()


def test_copies_configs_and_pickles_do_not_warn_again():
    with pytest.warns(NoNoiseWarning):
        estimator = ims.IMLE(lambda_=4.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert from_config(to_config(estimator)) == estimator == ims.IMLE(noise=None, lambda_=4.0)
        assert pickle.loads(pickle.dumps(estimator)) == estimator
        assert dataclasses.replace(estimator, lambda_=2.0).lambda_ == 2.0


def test_imle_without_noise_gives_blackbox_differentiations_numbers():
    theta = np.random.default_rng(0).normal(size=(4, 6))
    grad_z = np.random.default_rng(1).normal(size=(4, 6))
    results = []
    for estimator in (ims.IMLE(noise=None, lambda_=3.0), ims.BlackboxDifferentiation(lambda_=3.0)):
        z, residuals = estimator.sample(theta, topk(2), sign=1, rng=np.random.default_rng(2))
        grad, _ = estimator.gradient(residuals, grad_z, topk(2))
        results.append((z, grad))
    np.testing.assert_array_equal(results[0][0], topk(2)(theta))  # the MAP state: nothing perturbed
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])
    assert np.abs(results[0][1]).sum() > 0


def test_settings_refused_raise_without_the_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ims.InvalidInputError, match="lambda_"):
            ims.IMLE(lambda_=0.0)
