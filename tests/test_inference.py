"""Tests of bayesrca.inference: the posterior engines agree and report their diagnostics."""

from __future__ import annotations

import warnings

import numpy as np
import pyro
import pytest
import torch

import bayesrca as br
from bayesrca.exceptions import ConvergenceWarning
from bayesrca.inference import conjugate_posterior

NUM_DRAWS = 200


@pytest.fixture(scope="module")
def regression_data():
    rng = np.random.default_rng(0)
    x = rng.normal(2.0, 1.5, size=200)
    y = 1.5 + 0.8 * x + 0.5 * rng.normal(size=200)
    return y, x[:, None]


def _fit(inference: str, y, parents, noise: str = "gaussian", num_draws: int = NUM_DRAWS, **kwargs):
    mech = br.LinearANM(noise, inference=inference, **kwargs)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            mech.fit(y, parents, num_draws=num_draws, node="y")
    return mech


def _params(mech) -> dict[str, np.ndarray]:
    return {
        "intercept": mech.intercept_.numpy(),
        "coef": mech.coef_[:, 0].numpy(),
        "sigma": mech.noise_params_["sigma"].numpy(),
    }


@pytest.fixture(scope="module")
def fitted(regression_data):
    y, pa = regression_data
    return {
        "conjugate": _fit("conjugate", y, pa),
        "nuts": _fit("nuts", y, pa, num_warmup=150),
        "svi": _fit("svi", y, pa, svi_steps=600),
    }


def test_conjugate_matches_least_squares(regression_data, fitted):
    y, pa = regression_data
    design = np.column_stack([np.ones(len(y)), pa[:, 0]])
    beta, *_ = np.linalg.lstsq(design, y, rcond=None)
    resid_sd = np.std(y - design @ beta, ddof=2)
    post = _params(fitted["conjugate"])
    assert post["intercept"].shape == post["coef"].shape == post["sigma"].shape == (NUM_DRAWS,)
    assert abs(post["intercept"].mean() - beta[0]) < 3 * post["intercept"].std()
    assert abs(post["coef"].mean() - beta[1]) < 3 * post["coef"].std()
    assert post["sigma"].mean() == pytest.approx(resid_sd, rel=0.05)
    # and covers the truth
    assert abs(post["coef"].mean() - 0.8) < 4 * post["coef"].std()
    assert fitted["conjugate"].diagnostics_["inference"] == "conjugate"


@pytest.mark.parametrize("engine", ["nuts", "svi"])
def test_engines_agree_with_conjugate(fitted, engine):
    exact = _params(fitted["conjugate"])
    approx = _params(fitted[engine])
    for name in ("intercept", "coef", "sigma"):
        assert np.all(np.isfinite(approx[name])) and approx[name].shape == (NUM_DRAWS,)
        sd = exact[name].std()
        assert abs(approx[name].mean() - exact[name].mean()) < 3 * sd, name
        # spreads of the same order (SVI's Gaussian guide may under- or over-disperse a little)
        assert 0.4 * sd < approx[name].std() < 2.5 * sd, name


def test_nuts_diagnostics(fitted):
    diag = fitted["nuts"].diagnostics_
    assert diag["inference"] == "nuts"
    assert diag["num_chains"] == 2
    assert np.isfinite(diag["rhat_max"]) and diag["rhat_max"] < 1.1
    assert np.isfinite(diag["ess_min"]) and diag["ess_min"] > 20


def test_svi_diagnostics(fitted):
    diag = fitted["svi"].diagnostics_
    assert diag["inference"] == "svi"
    assert len(diag["elbo"]) == 600 and np.all(np.isfinite(diag["elbo"]))
    assert np.isfinite(diag["elbo_final"])
    # the loss went down during optimisation
    assert np.mean(diag["elbo"][-50:]) < np.mean(diag["elbo"][:50])


def test_svi_leaves_param_store_alone(regression_data):
    """Direct SVI fits neither leak guide parameters nor warm-start from earlier fits."""
    y, pa = regression_data
    pyro.clear_param_store()
    pyro.param("mine", torch.tensor(3.0))
    _fit("svi", y, pa, svi_steps=100)
    assert set(pyro.get_param_store().keys()) == {"mine"}
    # a second fit with a different number of features works
    two = np.column_stack([pa[:, 0], np.random.default_rng(1).normal(size=len(y))])
    mech = _fit("svi", y, two, svi_steps=100)
    assert mech.coef_.shape == (NUM_DRAWS, 2)
    pyro.clear_param_store()


def test_bayesian_bootstrap_mean_posterior():
    rng = np.random.default_rng(2)
    y = rng.exponential(2.0, size=500)  # skewed
    mech = br.RootDistribution("bootstrap")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        mech.fit(y, np.zeros((len(y), 0)), num_draws=NUM_DRAWS)
    assert mech.diagnostics_["inference"] == "bootstrap"
    noise = mech.noise_distribution()
    assert noise.batch_shape == (NUM_DRAWS,)
    # posterior of the node's mean: location + the residual distribution's mean, per draw
    mean_draws = (mech.intercept_ + noise.mean).numpy()
    se = y.std() / np.sqrt(len(y))
    assert abs(mean_draws.mean() - y.mean()) < 0.5 * se
    assert 0.5 * se < mean_draws.std() < 2.0 * se
    # and the residual atoms keep the skewness of the data
    atoms = mech.noise_params_["atoms"].numpy()
    skew = ((atoms - atoms.mean(-1, keepdims=True)) ** 3).mean(-1) / atoms.std(-1) ** 3
    assert np.median(skew) > 1.0
    assert np.all(mech.noise_params_["bandwidth"].numpy() > 0)


@pytest.mark.parametrize("inference", ["nuts", "svi"])
def test_student_t_runs_and_gives_finite_draws(inference):
    rng = np.random.default_rng(3)
    x = rng.normal(size=100)
    y = 1.0 + 0.5 * x + 0.5 * rng.standard_t(3, size=100)
    kwargs = {"num_warmup": 50, "num_chains": 2} if inference == "nuts" else {"svi_steps": 300}
    mech = _fit(inference, y, x[:, None], noise="student_t", num_draws=40, **kwargs)
    assert mech.noise_family_ == "student_t"
    for value in (mech.intercept_, mech.coef_, mech.noise_params_["sigma"], mech.noise_params_["df"]):
        assert value.shape[0] == 40 and torch.all(torch.isfinite(value))
    assert torch.all(mech.noise_params_["df"] > 0) and torch.all(mech.noise_params_["sigma"] > 0)
    assert abs(float(mech.coef_.mean()) - 0.5) < 0.3
    assert mech.noise_distribution().batch_shape == (40,)
    if inference == "nuts":
        assert {"rhat_max", "ess_min"} <= set(mech.diagnostics_)


def test_nuts_warns_when_not_converged():
    """A handful of warm-up steps cannot converge: a ConvergenceWarning names the node."""
    rng = np.random.default_rng(4)
    x = rng.normal(size=50)
    y = x + rng.normal(size=50)
    mech = br.LinearANM("gaussian", inference="nuts", num_warmup=5, num_chains=2)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        with pytest.warns(ConvergenceWarning, match="my_node"):
            mech.fit(y, x[:, None], num_draws=10, node="my_node")


def test_conjugate_posterior_is_exact_against_closed_form():
    """Posterior mean of the coefficients is the ridge solution with the prior's precision."""
    gen = torch.Generator().manual_seed(0)
    X = torch.cat([torch.ones(100, 1, dtype=torch.float64), torch.randn(100, 2, generator=gen, dtype=torch.float64)], 1)
    y = X @ torch.tensor([0.2, 0.5, -0.3], dtype=torch.float64) + 0.3 * torch.randn(100, generator=gen, dtype=torch.float64)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        draws, info = conjugate_posterior(X, y, 20000)
    ridge = torch.linalg.solve(X.T @ X + torch.eye(3, dtype=torch.float64) / 100.0, X.T @ y)
    torch.testing.assert_close(draws["coef"].mean(0), ridge, atol=5e-3, rtol=0)
    assert info["exact"]


def test_conjugate_posterior_takes_the_sufficient_statistics_when_given():
    """With ``gram`` and ``xty`` passed (a GP's grid scores them first) the draws are those from ``X``,
    to round-off, from the same seed; ``X``'s values are then not read (only its shape)."""
    gen = torch.Generator().manual_seed(1)
    X = torch.randn(50, 4, generator=gen, dtype=torch.float64)
    y = X @ torch.tensor([1.0, -2.0, 0.5, 0.0], dtype=torch.float64) + torch.randn(50, generator=gen, dtype=torch.float64)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        direct, _ = conjugate_posterior(X, y, 7, g=10.0)
        torch.manual_seed(3)
        given, _ = conjugate_posterior(torch.full_like(X, torch.nan), y, 7, g=10.0, gram=X.T @ X, xty=X.T @ y)
    for key in ("coef", "sigma"):
        torch.testing.assert_close(given[key], direct[key], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"noise": "gaussian", "inference": "bootstrap"}, "bootstrap"),
        ({"noise": "bootstrap", "inference": "nuts"}, "nuts"),
        ({"noise": "student_t", "inference": "conjugate"}, "conjugate"),
        ({"noise": "gaussian", "inference": "mcmc"}, "mcmc"),
    ],
)
def test_incompatible_inference_raises(kwargs, match):
    with pytest.raises(br.ConfigError, match=match):
        br.LinearANM(**kwargs).fit(np.arange(10.0), np.arange(10.0)[:, None], num_draws=5)


def test_chain_diagnostics_of_several_chains_agree_with_arviz():
    """One implementation for every NUTS path, independent of the arviz API (0.x or 1.x)."""
    import arviz as az

    from bayesrca.inference import chain_diagnostics

    rng = np.random.default_rng(4)
    chains = np.zeros((3, 600, 2))
    for c in range(3):
        for t in range(1, 600):
            chains[c, t] = 0.5 * chains[c, t - 1] + rng.normal(size=2)
    chains[2, :, 1] += 1.5  # the third chain sits elsewhere in parameter 1: R-hat flags it
    r_hat, ess = chain_diagnostics(torch.as_tensor(chains))
    for p in range(2):
        assert r_hat[p] == pytest.approx(float(az.rhat(chains[:, :, p])), rel=0.01)
    # ESS where the chains mix (where they do not, it is small either way and R-hat says so)
    assert ess[0] == pytest.approx(float(az.ess(chains[:, :, 0], method="bulk")), rel=0.05)
    assert ess[1] < 0.1 * ess[0]
    assert r_hat[0] < 1.01 < r_hat[1]
