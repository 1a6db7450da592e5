"""Long-only risk budgeting (equal risk contribution by default).

Spinu's convex formulation: minimise f(y) = 1/2 y'Sy - sum_i b_i log y_i over y > 0.
At its minimum y_i (Sy)_i = b_i, so w = y / sum(y) gives risk contributions
w_i (Sw)_i / (w'Sw) = b_i (b normalised to sum to one). f is strictly convex, so
Newton's method with a backtracking line search finds the unique solution in a
handful of steps from a good start, and warm-starts from yesterday's weights. A cold
start is the diagonal-covariance solution; it, or a warm start of many assets, is then
improved by a few sweeps of exact coordinate minimisation, kept while they decrease f.

The Newton system (S + diag(b / y^2)) p = -grad f is solved directly (LU) for small
problems. From `DENSE_MAX_ASSETS` assets on it is solved inexactly by preconditioned
conjugate gradients, to a relative residual that tightens as the gradient shrinks (an
inexact Newton method): each iteration costs one matrix-vector product, O(n^2), where a
direct solve costs O(n^3), so 500 assets solve in a few milliseconds and 2000 in tens.
The preconditioner is the system's diagonal until a solve shows it weak (a covariance
with strong common factors, where the diagonal misses most of the structure); from then
on it is a low-rank (Nystrom) approximation of S plus the rest of the diagonal, inverted
by the Woodbury identity, which takes the iterations from over a hundred to about twenty.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

_ARMIJO = 0.25
_BACKTRACK = 0.5
_MAX_HALVINGS = 60
_ROUNDOFF_DECREMENT = 1e-10
"""Below this squared Newton decrement the full step is inside Newton's quadratic
region, while the decrease it promises in f is near f's own roundoff: Armijo's test
would then reject good steps, so the full step is taken (still kept inside y > 0)."""
_FULL_STEP_DECREMENT = ((1 - 2 * _ARMIJO) / 4) ** 2
"""f / min(b) is self-concordant (each -b_i log y_i / min(b) has a coefficient of at least
one), with squared Newton decrement decrement / min(b). Where that is at most
((1 - 2 Armijo) / 4)^2, the full step stays in y > 0 and passes Armijo's test (Boyd and
Vandenberghe, Convex Optimization, 9.6.4): it is taken without evaluating f."""
_SYMMETRY_TOLERANCE = 1e-10
DENSE_MAX_ASSETS = 64
"""Below this many assets a direct solve of the Newton system is cheaper than conjugate
gradients, whose cost here is mostly Python's per-iteration overhead."""
_CG_FORCING_MAX = 0.03
"""Conjugate gradients stop at a residual of min(_CG_FORCING_MAX, |grad|) x |grad|:
loose far from the solution, tight near it, which keeps Newton's fast final convergence."""
_DIAGONAL_CG_ITERATIONS = 3
_DIAGONAL_CG_RATE = 0.3
"""A conjugate-gradient solve that, from `_DIAGONAL_CG_ITERATIONS` iterations on, has cut its
residual by less than `_DIAGONAL_CG_RATE` per iteration on average switches from the diagonal
preconditioner to the low-rank one, for the rest of the solve. Covariances the diagonal suits
(a stock index: one market factor over large idiosyncratic variances, where the residual
falls fiftyfold per iteration after the first) never get there, and never pay for the
sketch, which costs about as much as ten iterations (500 assets)."""
_SKETCH_COLUMNS = 12
"""Columns of cov sketched for the low-rank preconditioner: its rank, at most."""
_SKETCH_EIGENVALUE_FLOOR = 1e-12
"""Directions of the sketch whose eigenvalue is below this fraction of the largest are
dropped: numerically they carry no information about cov."""
_START_SWEEPS = 3
"""Coordinate-minimisation sweeps tried before Newton's method on a cold start, and on a
warm start from `DENSE_MAX_ASSETS` assets on (a small warm start is near the solution
already, and sweeps would add half the cost of its solve). On a covariance of positive
correlations each sweep cuts the gradient twenty-fold or more (a stock index: six Newton
steps become one); where negative correlations make a sweep overshoot, f rises and the
sweeps stop, at the cost of one matrix-vector product."""


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
    check_covariance: bool = True,
) -> ErcResult:
    """Weights w >= 0, sum 1, whose risk contributions match `budgets` (equal if None).

    `x0` (a previous weight vector, all positive) warm-starts the solver; `tol` bounds
    the largest absolute error of the risk contribution fractions. `check_covariance=False`
    skips checking that cov is square, finite and symmetric with a positive diagonal, for
    a caller that guarantees it (the checks cost as much as a warm-started solve of a
    few assets).
    """
    cov = _validated_covariance(cov) if check_covariance else cov
    n = cov.shape[0]
    b = _validated_budgets(budgets, n)
    if not tol > 0:
        raise ValueError(f"tol must be positive, got {tol!r}")
    if max_iter < 0:
        raise ValueError(f"max_iter must be non-negative, got {max_iter!r}")

    y, sy = _starting_point(cov, b, x0)
    if x0 is None or n >= DENSE_MAX_ASSETS:
        y, sy = _coordinate_sweeps(cov, b, y, sy)
    newton_direction = (
        _DirectSolver(cov) if n < DENSE_MAX_ASSETS else _PreconditionedConjugateGradients(cov))
    iterations = 0
    while True:
        contributions = y * sy / (y @ sy)
        converged = bool(np.abs(contributions - b).max() <= tol)
        if converged or iterations == max_iter:
            break
        stepped = _newton_step(b, y, sy, newton_direction)
        if stepped is None:
            break
        y = stepped
        sy = cov @ y
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
    # cov v against cov' v for a fixed pseudo-random v (sines of the integers): two
    # matrix-vector products in memory order, where comparing cov with its transpose
    # reads the matrix against its layout, which costs 20 ms at 2000 assets.
    probe = np.sin(np.arange(1, cov.shape[0] + 1))
    asymmetry = np.max(np.abs(cov @ probe - probe @ cov))
    if asymmetry > _SYMMETRY_TOLERANCE * diagonal.max() * np.abs(probe).sum():
        raise ValueError(
            f"cov must be symmetric: cov v and cov' v differ by up to {asymmetry:.3g}; "
            "symmetrise it with (cov + cov.T) / 2")
    return cov


def _validated_budgets(budgets: np.ndarray | None, n: int) -> np.ndarray:
    if budgets is None:
        return np.full(n, 1.0 / n)
    b = np.asarray(budgets, dtype=float)
    if b.shape != (n,):
        raise ValueError(f"budgets must have one entry per asset ({n}), got shape {b.shape}")
    if not (np.isfinite(b).all() and (b > 0).all()):
        raise ValueError("budgets must be finite and positive")
    return b / b.sum()


def _starting_point(cov: np.ndarray, b: np.ndarray,
                    x0: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """x0, or the diagonal-covariance solution sqrt(b)/sigma, scaled so that y'Sy = 1; and S y.

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
    sy = cov @ y
    variance = y @ sy
    if not variance > 0:
        raise ValueError(
            "cov gives a long-only portfolio zero variance: risk contributions are undefined")
    scale = 1 / math.sqrt(variance)
    return y * scale, sy * scale


def _coordinate_sweeps(cov: np.ndarray, b: np.ndarray, y: np.ndarray,
                       sy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Up to `_START_SWEEPS` sweeps of exact coordinate minimisation of f, each kept only
    if it decreases f; y (with y'Sy = 1) and S y after them.

    Each y_i is set, from the others, to the positive root of S_ii y_i^2 + a_i y_i = b_i
    (a_i = (Sy)_i - S_ii y_i, the zero of df/dy_i), all at once, and the result scaled
    back to y'Sy = 1, where f = 1/2 - b'log y.
    """
    variances = np.diag(cov)
    value = -(b @ np.log(y))
    for _ in range(_START_SWEEPS):
        others = sy - variances * y
        root = np.sqrt(others * others + 4 * variances * b)
        # Each root in the form without cancellation, so that it stays positive.
        candidate = np.where(others > 0, 2 * b / (np.abs(others) + root),
                             (np.abs(others) + root) / (2 * variances))
        candidate_sy = cov @ candidate
        variance = candidate @ candidate_sy
        if not variance > 0:
            break
        scale = 1 / math.sqrt(variance)
        candidate_value = -(b @ np.log(candidate * scale))
        if not candidate_value < value:
            break
        y, sy, value = candidate * scale, candidate_sy * scale, candidate_value
    return y, sy


def _newton_step(b: np.ndarray, y: np.ndarray, sy: np.ndarray,
                 newton_direction: _DirectSolver | _PreconditionedConjugateGradients) -> np.ndarray | None:
    """The damped Newton iterate, or None where no step can decrease f.

    That happens when no solution exists (a singular cov with a riskless long-only
    mix, where y runs off to infinity) or cov is not positive semidefinite.
    """
    gradient = sy - b / y
    barrier_curvature = b / y**2
    solved = newton_direction(barrier_curvature, gradient)
    if solved is None:
        return None
    step, residual_along_step = solved
    decrement = -(gradient @ step)
    if not decrement > 0:
        return None
    if decrement <= _FULL_STEP_DECREMENT * b.min():
        return y + step
    # f along the step: (y + tp)'S(y + tp) = y'Sy + 2t p'Sy + t^2 p'Sp, where p'Sp comes
    # without a product from (S + diag(barrier_curvature)) p = -gradient - residual.
    curvature = decrement - residual_along_step - barrier_curvature @ (step * step)
    slope = step @ sy
    f0 = 0.5 * (y @ sy) - b @ np.log(y)
    t = 1.0
    for _ in range(_MAX_HALVINGS):
        candidate = y + t * step
        if (candidate > 0).all() and (
                decrement < _ROUNDOFF_DECREMENT
                or 0.5 * (y @ sy + 2 * t * slope + t * t * curvature) - b @ np.log(candidate)
                <= f0 - _ARMIJO * t * decrement):
            return candidate
        t *= _BACKTRACK
    return None


class _DirectSolver:
    """The Newton direction p from an LU solve of (cov + diag(barrier_curvature)) p = -gradient,
    and p'residual: zero, as the solve is exact up to roundoff."""

    def __init__(self, cov: np.ndarray) -> None:
        self._cov = cov

    def __call__(self, barrier_curvature: np.ndarray,
                 gradient: np.ndarray) -> tuple[np.ndarray, float] | None:
        hessian = self._cov.copy()
        hessian.flat[::hessian.shape[0] + 1] += barrier_curvature  # cheaper than + np.diag(...)
        try:
            return -np.linalg.solve(hessian, gradient), 0.0
        except np.linalg.LinAlgError:
            return None


class _PreconditionedConjugateGradients:
    """Inexact Newton directions p for one solve: (cov + diag(barrier_curvature)) p = -gradient
    by preconditioned conjugate gradients, to the residual `_CG_FORCING_MAX` sets.

    The preconditioner starts as the system's diagonal. Once a solve shows that weak, it
    becomes, for the rest of the solve, G G' + diag(the rest of the system's diagonal),
    where G G' is a low-rank approximation of cov below it (`_low_rank_factor`).
    """

    def __init__(self, cov: np.ndarray) -> None:
        self._cov = cov
        self._variances = np.diag(cov)
        self._factor: np.ndarray | None = None
        self._residual_variances = self._variances

    def __call__(self, barrier_curvature: np.ndarray,
                 gradient: np.ndarray) -> tuple[np.ndarray, float] | None:
        """p and p'residual (residual = -gradient - (cov + diag(barrier_curvature)) p), or None
        if the system shows no positive curvature."""
        cov = self._cov
        gradient_norm = np.linalg.norm(gradient)
        stop_at = min(_CG_FORCING_MAX, gradient_norm) * gradient_norm
        precondition = self._preconditioner(barrier_curvature)
        step = np.zeros_like(gradient)
        residual = -gradient
        preconditioned = precondition(residual)
        direction = preconditioned
        residual_dot = residual @ preconditioned
        for iteration in range(1, gradient.size + 1):
            product = cov @ direction + barrier_curvature * direction
            curvature = direction @ product
            if not curvature > 0:
                return None
            alpha = residual_dot / curvature
            step += alpha * direction
            residual -= alpha * product
            residual_norm = math.sqrt(residual @ residual)
            if residual_norm <= stop_at:
                break
            if (self._factor is None and iteration >= _DIAGONAL_CG_ITERATIONS
                    and residual_norm > _DIAGONAL_CG_RATE**iteration * gradient_norm):
                self._use_low_rank_preconditioner()
                precondition = self._preconditioner(barrier_curvature)
                # Restarted from the current step: a new preconditioner breaks the conjugacy.
                preconditioned = precondition(residual)
                direction = preconditioned
                residual_dot = residual @ preconditioned
                continue
            preconditioned = precondition(residual)
            previous_dot, residual_dot = residual_dot, residual @ preconditioned
            direction = preconditioned + (residual_dot / previous_dot) * direction
        return step, step @ residual

    def _use_low_rank_preconditioner(self) -> None:
        self._factor = _low_rank_factor(self._cov, _SKETCH_COLUMNS)
        # Non-negative but for roundoff, as G G' is below cov.
        self._residual_variances = np.maximum(
            self._variances - np.einsum("ij,ij->i", self._factor, self._factor), 0.0)

    def _preconditioner(self, barrier_curvature: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        """r -> M^-1 r for M = G G' + D, D = diag(residual variances + barrier curvature), by
        Woodbury: M^-1 = D^-1 - D^-1 G (I + G'D^-1 G)^-1 G'D^-1; D^-1 alone before G exists.
        I + G'D^-1 G is small (rank x rank) with eigenvalues of at least one: inverted directly."""
        inverse_diagonal = 1 / (self._residual_variances + barrier_curvature)
        if self._factor is None:
            return lambda residual: inverse_diagonal * residual
        scaled_factor = self._factor.T * inverse_diagonal
        rank = scaled_factor.shape[0]
        correction = np.linalg.inv(np.eye(rank) + scaled_factor @ self._factor) @ scaled_factor
        return lambda residual: inverse_diagonal * residual - (correction @ residual) @ scaled_factor


def _low_rank_factor(cov: np.ndarray, columns: int) -> np.ndarray:
    """G (n x k, k <= columns) with G G' = cov Q (Q' cov Q)^+ Q' cov, the Nystrom approximation
    of cov from Q, an orthonormal basis of the columns cov[:, J] for evenly spaced J.

    cov - G G' is positive semidefinite (up to roundoff, which the orthonormal basis keeps
    near machine precision). The columns of cov are one power iteration on a selection of
    assets: they take in the directions of cov's largest eigenvalues, the common factors,
    at the cost of one product of cov with `columns` vectors.
    """
    n = cov.shape[0]
    basis = np.linalg.qr(cov[:, np.linspace(0, n - 1, min(columns, n)).astype(int)])[0]
    image = cov @ basis
    core = basis.T @ image
    eigenvalues, eigenvectors = np.linalg.eigh((core + core.T) / 2)
    kept = eigenvalues > _SKETCH_EIGENVALUE_FLOOR * eigenvalues[-1]
    return image @ (eigenvectors[:, kept] / np.sqrt(eigenvalues[kept]))
