"""Long-only risk budgeting (equal risk contribution by default).

Spinu's convex formulation: minimise f(y) = 1/2 y'Sy - sum_i b_i log y_i over y > 0.
At its minimum y_i (Sy)_i = b_i, so w = y / sum(y) gives risk contributions
w_i (Sw)_i / (w'Sw) = b_i (b normalised to sum to one). f is strictly convex, so
Newton's method with a backtracking line search finds the unique solution in a
handful of steps from a good start, and warm-starts from yesterday's weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_ARMIJO = 0.25
_BACKTRACK = 0.5
_MAX_HALVINGS = 60
_ROUNDOFF_DECREMENT = 1e-10
"""Below this squared Newton decrement the full step is inside Newton's quadratic
region, while the decrease it promises in f is near f's own roundoff: Armijo's test
would then reject good steps, so the full step is taken (still kept inside y > 0)."""
_SYMMETRY_TOLERANCE = 1e-10


@dataclass(frozen=True, slots=True)
class ErcResult:
    weights: np.ndarray
    """Long-only weights summing to one."""
    risk_contributions: np.ndarray
    """Each weight's share of the portfolio variance (fractions summing to one)."""
    iterations: int
    """Newton steps taken (0 when the start already met the tolerance)."""
    converged: bool
    """Whether max |risk_contributions - budgets| <= tol was reached within max_iter."""


def solve_risk_budgeting(
    cov: np.ndarray,
    budgets: np.ndarray | None = None,
    *,
    x0: np.ndarray | None = None,
    tol: float = 1e-12,
    max_iter: int = 100,
) -> ErcResult:
    """Weights w >= 0, sum 1, whose risk contributions match `budgets` (equal if None).

    `x0` (a previous weight vector, all positive) warm-starts the solver; `tol` bounds
    the largest absolute error of the risk contribution fractions.
    """
    cov = _validated_covariance(cov)
    n = cov.shape[0]
    b = _validated_budgets(budgets, n)
    if not tol > 0:
        raise ValueError(f"tol must be positive, got {tol!r}")
    if max_iter < 0:
        raise ValueError(f"max_iter must be non-negative, got {max_iter!r}")

    y = _starting_point(cov, b, x0)
    iterations = 0
    while True:
        sy = cov @ y
        contributions = y * sy / (y @ sy)
        converged = bool(np.max(np.abs(contributions - b)) <= tol)
        if converged or iterations == max_iter:
            break
        stepped = _newton_step(cov, b, y, sy)
        if stepped is None:
            break
        y = stepped
        iterations += 1
    return ErcResult(y / y.sum(), contributions, iterations, converged)


def risk_contributions(weights: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """Each weight's share w_i (Sw)_i / (w'Sw) of the portfolio variance; zeros if it is 0."""
    w = np.asarray(weights, dtype=float)
    cov = np.asarray(cov, dtype=float)
    if w.ndim != 1 or cov.shape != (w.size, w.size):
        raise ValueError(
            f"weights of shape {w.shape} need a covariance of shape {(w.size, w.size)}, got {cov.shape}")
    if not (np.isfinite(w).all() and np.isfinite(cov).all()):
        raise ValueError("weights and cov must be finite (replace missing covariances first)")
    marginal = cov @ w
    variance = w @ marginal
    if variance <= 0:
        return np.zeros_like(w)
    return w * marginal / variance


def _validated_covariance(cov: np.ndarray) -> np.ndarray:
    cov = np.asarray(cov, dtype=float)
    if cov.ndim != 2 or cov.shape[0] != cov.shape[1] or cov.shape[0] == 0:
        raise ValueError(f"cov must be a non-empty square matrix, got shape {cov.shape}")
    if not np.isfinite(cov).all():
        raise ValueError("cov must be finite: drop symbols without enough data before solving")
    diagonal = np.diag(cov)
    if (diagonal <= 0).any():
        bad = np.flatnonzero(diagonal <= 0).tolist()
        raise ValueError(f"cov must have a positive diagonal; variances at indices {bad} are <= 0")
    asymmetry = np.max(np.abs(cov - cov.T))
    if asymmetry > _SYMMETRY_TOLERANCE * diagonal.max():
        raise ValueError(
            f"cov must be symmetric: max |cov - cov.T| is {asymmetry:.3g}; "
            "symmetrise it with (cov + cov.T) / 2")
    return (cov + cov.T) / 2


def _validated_budgets(budgets: np.ndarray | None, n: int) -> np.ndarray:
    if budgets is None:
        return np.full(n, 1.0 / n)
    b = np.asarray(budgets, dtype=float)
    if b.shape != (n,):
        raise ValueError(f"budgets must have one entry per asset ({n}), got shape {b.shape}")
    if not (np.isfinite(b).all() and (b > 0).all()):
        raise ValueError("budgets must be finite and positive")
    return b / b.sum()


def _starting_point(cov: np.ndarray, b: np.ndarray, x0: np.ndarray | None) -> np.ndarray:
    """x0, or the diagonal-covariance solution sqrt(b)/sigma, scaled so that y'Sy = 1.

    Along any ray, f is smallest where y'Sy = sum(b) = 1, which the solution also meets.
    """
    if x0 is None:
        y = np.sqrt(b / np.diag(cov))
    else:
        y = np.asarray(x0, dtype=float)
        if y.shape != b.shape:
            raise ValueError(f"x0 must have one weight per asset ({b.size}), got shape {y.shape}")
        if not (np.isfinite(y).all() and (y > 0).all()):
            raise ValueError("x0 must be finite and strictly positive (a long-only solution)")
    variance = y @ cov @ y
    if not variance > 0:
        raise ValueError(
            "cov gives a long-only portfolio zero variance: risk contributions are undefined")
    return y / np.sqrt(variance)


def _newton_step(cov: np.ndarray, b: np.ndarray, y: np.ndarray, sy: np.ndarray) -> np.ndarray | None:
    """The damped Newton iterate, or None where no step can decrease f.

    That happens when no solution exists (a singular cov with a riskless long-only
    mix, where y runs off to infinity) or cov is not positive semidefinite.
    """
    gradient = sy - b / y
    hessian = cov + np.diag(b / y**2)
    try:
        step = -np.linalg.solve(hessian, gradient)
    except np.linalg.LinAlgError:
        return None
    decrement = -(gradient @ step)
    if not decrement > 0:
        return None
    f0 = _objective(cov, b, y)
    t = 1.0
    for _ in range(_MAX_HALVINGS):
        candidate = y + t * step
        if (candidate > 0).all() and (
                decrement < _ROUNDOFF_DECREMENT
                or _objective(cov, b, candidate) <= f0 - _ARMIJO * t * decrement):
            return candidate
        t *= _BACKTRACK
    return None


def _objective(cov: np.ndarray, b: np.ndarray, y: np.ndarray) -> float:
    return 0.5 * (y @ cov @ y) - b @ np.log(y)
