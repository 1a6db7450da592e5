import numpy as np
import pytest

from riskbudget_sidecar.engine import erc
from riskbudget_sidecar.engine.erc import risk_contributions, solve_risk_budgeting


def random_covariance(n: int, seed: int) -> np.ndarray:
    """A covariance with a few common factors, vols 10-50% and mixed-sign correlations."""
    rng = np.random.default_rng(seed)
    loadings = rng.normal(size=(n, min(n, 5)))
    raw = loadings @ loadings.T + np.diag(rng.uniform(0.2, 1.0, n))
    scale = np.sqrt(np.diag(raw))
    vols = rng.uniform(0.1, 0.5, n)
    return raw / np.outer(scale, scale) * np.outer(vols, vols)


def index_covariance(n: int, seed: int) -> np.ndarray:
    """A stock index: market beta 0.5-1.5 x 16% vol, one of 11 sectors, idiosyncratic vols
    15-45%; all correlations positive."""
    rng = np.random.default_rng(seed)
    loadings = np.zeros((n, 12))
    loadings[:, 0] = rng.uniform(0.5, 1.5, n) * 0.16
    loadings[np.arange(n), 1 + rng.integers(0, 11, n)] = rng.uniform(0.05, 0.15, n)
    return loadings @ loadings.T + np.diag(rng.uniform(0.15, 0.45, n) ** 2)


def spinu_objective(weights: np.ndarray, cov: np.ndarray, budgets: np.ndarray) -> float:
    """f(y) = 1/2 y'Sy - b'log y at y = weights scaled to y'Sy = 1, where f is least on the ray."""
    y = weights / np.sqrt(weights @ cov @ weights)
    return 0.5 - budgets @ np.log(y)


@pytest.mark.parametrize("n", [2, 3, 5, 10, 50, 200])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_solve_when_random_covariance_gives_equal_risk_contributions(n, seed):
    cov = random_covariance(n, seed)

    result = solve_risk_budgeting(cov)

    assert result.converged
    assert np.all(result.weights > 0)
    assert result.weights.sum() == pytest.approx(1.0, abs=1e-14)
    np.testing.assert_allclose(result.risk_contributions, 1 / n, rtol=0, atol=1e-12)
    np.testing.assert_allclose(risk_contributions(result.weights, cov), 1 / n, rtol=0, atol=1e-12)


@pytest.mark.parametrize("n", [1000, 2000])
def test_solve_when_thousands_of_assets_converges_within_1e_10(n):
    cov = random_covariance(n, seed=n)

    result = solve_risk_budgeting(cov, tol=1e-10)

    assert result.converged
    np.testing.assert_allclose(risk_contributions(result.weights, cov), 1 / n, rtol=0, atol=1e-10)


@pytest.mark.parametrize("n", [500, 1000])
@pytest.mark.parametrize("covariance", [random_covariance, index_covariance])
def test_solve_when_hundreds_of_assets_converges_within_1e_10(covariance, n):
    cov = covariance(n, seed=n)

    result = solve_risk_budgeting(cov, tol=1e-10)

    assert result.converged
    np.testing.assert_allclose(risk_contributions(result.weights, cov), 1 / n, rtol=0, atol=1e-10)


@pytest.mark.parametrize(("diagonal_iterations", "diagonal_rate"), [(10**9, 0.0), (1, 0.0)],
                         ids=["diagonal preconditioner throughout", "low-rank from the first iteration"])
def test_solve_by_conjugate_gradients_matches_the_direct_solve(monkeypatch, diagonal_iterations, diagonal_rate):
    cov = random_covariance(100, seed=9)
    budgets = np.linspace(1.0, 3.0, 100)
    monkeypatch.setattr(erc, "_DIAGONAL_CG_ITERATIONS", diagonal_iterations)
    monkeypatch.setattr(erc, "_DIAGONAL_CG_RATE", diagonal_rate)
    by_conjugate_gradients = solve_risk_budgeting(cov, budgets)
    monkeypatch.setattr(erc, "DENSE_MAX_ASSETS", 101)

    direct = solve_risk_budgeting(cov, budgets)

    assert by_conjugate_gradients.converged and direct.converged
    np.testing.assert_allclose(by_conjugate_gradients.weights, direct.weights, rtol=1e-9)


@pytest.mark.parametrize(("covariance", "sketches"), [
    (random_covariance, 1),  # five strong common factors: the diagonal is weak
    (index_covariance, 0),  # one market factor over large idiosyncratic variances
])
def test_solve_builds_the_low_rank_preconditioner_only_where_the_diagonal_is_weak(
        monkeypatch, covariance, sketches):
    built = []
    low_rank_factor = erc._low_rank_factor

    def recording_low_rank_factor(cov, columns):
        built.append(columns)
        return low_rank_factor(cov, columns)

    monkeypatch.setattr(erc, "_low_rank_factor", recording_low_rank_factor)

    result = solve_risk_budgeting(covariance(300, seed=11), tol=1e-10)

    assert result.converged
    assert len(built) == sketches


def test_low_rank_factor_lies_below_cov():
    cov = random_covariance(80, seed=12)

    factor = erc._low_rank_factor(cov, 12)

    assert factor.shape == (80, 12)
    assert np.linalg.eigvalsh(cov - factor @ factor.T).min() >= -1e-13 * np.abs(cov).max()


def test_low_rank_factor_when_cov_has_lower_rank_reproduces_it_with_that_rank():
    loadings = np.random.default_rng(13).normal(size=(80, 5))
    cov = loadings @ loadings.T

    factor = erc._low_rank_factor(cov, 12)

    assert factor.shape == (80, 5)
    np.testing.assert_allclose(factor @ factor.T, cov, rtol=0, atol=1e-10 * np.abs(cov).max())


@pytest.mark.parametrize("cov", [
    index_covariance(200, seed=1), random_covariance(200, seed=1),
    index_covariance(20, seed=2), random_covariance(20, seed=2),
], ids=["index 200", "mixed-sign 200", "index 20", "mixed-sign 20"])
def test_solve_cold_start_is_no_worse_than_inverse_volatility(cov):
    budgets = np.full(len(cov), 1 / len(cov))
    inverse_volatility = 1 / np.sqrt(np.diag(cov))

    start = solve_risk_budgeting(cov, max_iter=0)

    start_value = spinu_objective(start.weights, cov, budgets)
    assert start_value <= spinu_objective(inverse_volatility, cov, budgets) + 1e-14


def test_solve_when_correlations_are_positive_the_start_sweeps_nearly_solve():
    cov = index_covariance(200, seed=1)

    start = solve_risk_budgeting(cov, max_iter=0)

    assert np.abs(start.risk_contributions - 1 / 200).max() < 1e-6


def test_solve_when_a_start_sweep_would_raise_f_starts_at_inverse_volatility():
    # Negative correlations make the first sweep overshoot on this matrix.
    cov = random_covariance(200, seed=1)

    start = solve_risk_budgeting(cov, max_iter=0)

    inverse_volatility = 1 / np.sqrt(np.diag(cov))
    np.testing.assert_allclose(start.weights, inverse_volatility / inverse_volatility.sum(), rtol=1e-14)


def test_solve_when_budgets_given_matches_them_after_normalising():
    cov = random_covariance(4, seed=3)
    budgets = np.array([4.0, 3.0, 2.0, 1.0])

    result = solve_risk_budgeting(cov, budgets)

    assert result.converged
    np.testing.assert_allclose(risk_contributions(result.weights, cov), budgets / 10, rtol=0, atol=1e-12)


def test_solve_when_covariance_is_diagonal_weights_are_inverse_volatility():
    vols = np.array([0.1, 0.2, 0.4, 0.5])
    cov = np.diag(vols**2)

    result = solve_risk_budgeting(cov)

    expected = (1 / vols) / (1 / vols).sum()
    np.testing.assert_allclose(result.weights, expected, rtol=1e-12)


def test_solve_when_single_asset_returns_full_weight():
    result = solve_risk_budgeting(np.array([[0.04]]))

    assert result.converged
    assert result.weights.tolist() == [1.0]
    assert result.risk_contributions.tolist() == [1.0]


def test_solve_when_warm_started_near_the_solution_takes_fewer_steps():
    cov = random_covariance(50, seed=4)
    yesterday = solve_risk_budgeting(cov).weights
    drift = np.random.default_rng(5).normal(scale=0.02, size=cov.shape)
    today = cov * (1 + (drift + drift.T) / 2)

    cold = solve_risk_budgeting(today)
    warm = solve_risk_budgeting(today, x0=yesterday)

    assert cold.converged and warm.converged
    assert warm.iterations < cold.iterations
    np.testing.assert_allclose(warm.weights, cold.weights, rtol=1e-10)


def test_solve_when_warm_started_with_many_assets_takes_fewer_steps():
    # Conjugate-gradient size, where the warm start also goes through the start sweeps.
    cov = random_covariance(200, seed=4)
    yesterday = solve_risk_budgeting(cov).weights
    shock = np.linalg.cholesky(cov) @ np.random.default_rng(5).normal(size=200)
    today = 0.94 * cov + 0.06 * np.outer(shock, shock)  # one EWMA day

    cold = solve_risk_budgeting(today)
    warm = solve_risk_budgeting(today, x0=yesterday)

    assert cold.converged and warm.converged
    assert warm.iterations < cold.iterations
    np.testing.assert_allclose(warm.weights, cold.weights, rtol=1e-10)


@pytest.mark.parametrize("n", [10, 200])
def test_solve_when_started_at_the_solution_takes_no_step(n):
    cov = random_covariance(n, seed=6)
    solution = solve_risk_budgeting(cov).weights

    again = solve_risk_budgeting(cov, x0=solution)

    assert again.iterations == 0
    assert again.converged


def test_solve_when_no_solution_exists_reports_not_converged():
    # Ten returns of forty assets: a long-only mix with zero variance exists, so the
    # budgeting problem has no minimum and y runs away.
    returns = np.random.default_rng(7).normal(scale=0.01, size=(10, 40))
    singular = returns.T @ returns / 10

    result = solve_risk_budgeting(singular)

    assert not result.converged


def test_solve_when_max_iter_is_zero_returns_the_starting_point_unconverged():
    cov = random_covariance(5, seed=8)

    result = solve_risk_budgeting(cov, max_iter=0)

    assert result.iterations == 0
    assert not result.converged
    assert result.weights.sum() == pytest.approx(1.0)


@pytest.mark.parametrize(("cov", "message"), [
    (np.ones((2, 3)), "square"),
    (np.empty((0, 0)), "square"),
    (np.array([[0.04, np.nan], [np.nan, 0.09]]), "finite"),
    (np.array([[0.04, 0.0], [0.0, 0.0]]), r"positive diagonal.*\[1\]"),
    (np.array([[0.04, 0.01], [0.02, 0.09]]), "symmetric"),
    (np.array([[1.0, -1.0], [-1.0, 1.0]]), "zero variance"),
])
def test_solve_when_covariance_is_bad_raises_naming_the_problem(cov, message):
    with pytest.raises(ValueError, match=message):
        solve_risk_budgeting(cov)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"budgets": np.array([1.0, 1.0, 1.0])}, "one entry per asset"),
    ({"budgets": np.array([1.0, 0.0])}, "positive"),
    ({"budgets": np.array([1.0, np.inf])}, "finite"),
    ({"x0": np.array([0.5, 0.5, 0.0])}, "one weight per asset"),
    ({"x0": np.array([1.0, 0.0])}, "strictly positive"),
    ({"tol": 0.0}, "tol"),
    ({"max_iter": -1}, "max_iter"),
])
def test_solve_when_arguments_are_bad_raises_naming_them(kwargs, message):
    cov = np.diag([0.04, 0.09])

    with pytest.raises(ValueError, match=message):
        solve_risk_budgeting(cov, **kwargs)


def test_risk_contributions_when_weights_given_are_shares_of_variance():
    cov = np.array([[0.04, 0.01], [0.01, 0.09]])
    weights = np.array([0.6, 0.4])

    contributions = risk_contributions(weights, cov)

    variance = 0.6**2 * 0.04 + 2 * 0.6 * 0.4 * 0.01 + 0.4**2 * 0.09
    expected = [0.6 * (0.6 * 0.04 + 0.4 * 0.01) / variance, 0.4 * (0.6 * 0.01 + 0.4 * 0.09) / variance]
    np.testing.assert_allclose(contributions, expected, rtol=1e-14)


def test_risk_contributions_when_variance_is_zero_are_zero():
    contributions = risk_contributions(np.array([0.5, 0.5]), np.zeros((2, 2)))

    assert contributions.tolist() == [0.0, 0.0]


def test_risk_contributions_when_shapes_differ_raises():
    with pytest.raises(ValueError, match="shape"):
        risk_contributions(np.array([0.5, 0.5]), np.eye(3))


def test_solve_when_the_covariance_check_is_skipped_gives_the_same_solution():
    cov = random_covariance(8, seed=10)

    checked, unchecked = solve_risk_budgeting(cov), solve_risk_budgeting(cov, check_covariance=False)

    np.testing.assert_array_equal(checked.weights, unchecked.weights)
