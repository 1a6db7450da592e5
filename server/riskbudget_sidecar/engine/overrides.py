"""Operator overrides: which are in force, what they force or restrict, and which are valid.

Each kind takes some scopes and does one thing; `compute_budget` applies the
limit kinds, the caller the others:

- FORCE_REGIME (GLOBAL, with a regime): the budget is computed for that regime
  instead of the detected one; the newest such override wins.
- SCALE_LEVERAGE (GLOBAL or STRATEGY, value > 0): multiplies the leverage limit,
  the total's and every strategy's for GLOBAL, the strategy's for STRATEGY.
- CAP_LEVERAGE (GLOBAL or STRATEGY, value > 0): bounds that leverage limit at value.
- CAP_STRATEGY_CAPITAL (STRATEGY, value > 0): bounds the strategy's allocated capital.
- CAP_SYMBOL_POSITION (SYMBOL, value >= 0): bounds the symbol's position limit
  (notional); 0 lets no exposure be added.
- RESTRICT_SYMBOL (SYMBOL): only reducing orders pass, as for `limits.restricted_symbols`.

An override may tighten or loosen: a scale above 1 is valid. But no override
lifts a leverage limit above the regime's `leverage_limit`: that configured cap
is the hard ceiling, so loosening only gives back what vol targeting or the
static limits took.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Iterable

from .types import Override, OverrideKind, OverrideScope, Regime

_SCOPES: dict[OverrideKind, frozenset[OverrideScope]] = {
    OverrideKind.FORCE_REGIME: frozenset({OverrideScope.GLOBAL}),
    OverrideKind.SCALE_LEVERAGE: frozenset({OverrideScope.GLOBAL, OverrideScope.STRATEGY}),
    OverrideKind.CAP_LEVERAGE: frozenset({OverrideScope.GLOBAL, OverrideScope.STRATEGY}),
    OverrideKind.CAP_STRATEGY_CAPITAL: frozenset({OverrideScope.STRATEGY}),
    OverrideKind.CAP_SYMBOL_POSITION: frozenset({OverrideScope.SYMBOL}),
    OverrideKind.RESTRICT_SYMBOL: frozenset({OverrideScope.SYMBOL}),
}
"""The scopes each kind may take."""

_POSITIVE_VALUE = frozenset({
    OverrideKind.SCALE_LEVERAGE, OverrideKind.CAP_LEVERAGE, OverrideKind.CAP_STRATEGY_CAPITAL})
_VALUELESS = frozenset({OverrideKind.FORCE_REGIME, OverrideKind.RESTRICT_SYMBOL})


def active_overrides(overrides: Iterable[Override], now: float) -> tuple[Override, ...]:
    """The overrides not yet expired at `now`, in the order given."""
    return tuple(o for o in overrides if o.active_at(now))


def forced_regime(overrides: Iterable[Override]) -> Regime | None:
    """The regime of the newest global FORCE_REGIME override (the later one on a tie), if any."""
    newest: Override | None = None
    for override in overrides:
        if (override.kind is OverrideKind.FORCE_REGIME and override.scope is OverrideScope.GLOBAL
                and (newest is None or override.created_at >= newest.created_at)):
            newest = override
    return newest.regime if newest is not None else None


def restricted_symbols(overrides: Iterable[Override]) -> frozenset[str]:
    """The symbols that RESTRICT_SYMBOL overrides restrict."""
    return frozenset(o.target for o in overrides
                     if o.kind is OverrideKind.RESTRICT_SYMBOL and o.scope is OverrideScope.SYMBOL)


def override_ids_for(overrides: Iterable[Override], strategy: str, symbol: str) -> tuple[str, ...]:
    """Ids of the overrides that bear on an order of `strategy` in `symbol`: every global
    one (a forced regime or a leverage change reaches every order), the strategy's and
    the symbol's.

    Not listed: another strategy's override that moves a shared symbol's position limit.
    """
    return tuple(o.id for o in overrides if o.applies_to(strategy, symbol))


def validate_override(override: Override, *, strategies: set[str], symbols: set[str],
                      now: float) -> list[tuple[str, str]]:
    """(field, message) for each way the override is invalid; empty if it is valid.

    Fields are named as in the contract's Override message. `expires_at`, if set,
    must be after `now`: an override that expired before it was set is an error,
    not a no-op.
    """
    kind, scope, value = override.kind, override.scope, override.value
    violations: list[tuple[str, str]] = []
    allowed = _SCOPES[kind]
    if scope not in allowed:
        names = " or ".join(sorted(s.name for s in allowed))
        violations.append(("override.scope", f"{kind.name} takes scope {names}, not {scope.name}"))

    if scope is OverrideScope.GLOBAL and override.target:
        violations.append(("override.target",
                           f"a GLOBAL override has no target, got {override.target!r}"))
    elif scope is OverrideScope.STRATEGY and override.target not in strategies:
        violations.append(("override.target", f"unknown strategy {override.target!r}"))
    elif scope is OverrideScope.SYMBOL and override.target not in symbols:
        violations.append(("override.target", f"unknown symbol {override.target!r}"))

    if kind in _VALUELESS:
        if value != 0:
            violations.append(("override.value", f"{kind.name} takes no value, got {value!r}"))
    elif kind in _POSITIVE_VALUE:
        if not (math.isfinite(value) and value > 0):
            violations.append(("override.value",
                               f"{kind.name} needs a positive finite value, got {value!r}"))
    elif not (math.isfinite(value) and value >= 0):
        violations.append(("override.value",
                           f"{kind.name} needs a non-negative finite value, got {value!r}"))

    if kind is OverrideKind.FORCE_REGIME and override.regime is None:
        violations.append(("override.regime", "FORCE_REGIME needs the regime to force"))
    elif kind is not OverrideKind.FORCE_REGIME and override.regime is not None:
        violations.append(("override.regime",
                           f"only FORCE_REGIME takes a regime, {kind.name} got {override.regime.name}"))

    expires_at = override.expires_at
    if expires_at is not None and not (math.isfinite(expires_at) and expires_at > now):
        violations.append(("override.expires_at",
                           f"must be after now ({_utc(now)}), got {_utc(expires_at)}"))
    return violations


def _utc(seconds: float) -> str:
    """A time as ISO 8601 UTC, as an operator reads it; a value that is no time, as itself."""
    try:
        return datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="milliseconds")[:-6] + "Z"
    except (ValueError, OverflowError, OSError):
        return repr(seconds)
