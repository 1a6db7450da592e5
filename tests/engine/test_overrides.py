import math

import pytest

from riskbudget_sidecar.engine.overrides import (
    active_overrides, forced_regime, override_ids_for, restricted_symbols, validate_override,
)
from riskbudget_sidecar.engine.types import Override, OverrideKind, OverrideScope, Regime

NOW = 1_000.0
STRATEGIES = {"alpha", "beta"}
SYMBOLS = {"AAA", "BBB", "CCC"}

GLOBAL, STRATEGY, SYMBOL = OverrideScope.GLOBAL, OverrideScope.STRATEGY, OverrideScope.SYMBOL
K = OverrideKind


def override(kind: OverrideKind, scope: OverrideScope = GLOBAL, target: str = "", *, value: float = 0.0,
             regime: Regime | None = None, id: str = "ovr-1", created_at: float = NOW - 100,
             expires_at: float | None = None) -> Override:
    return Override(id, scope, target, kind, value, regime, "ops", "test", created_at, expires_at)


def violations(draft: Override) -> list[tuple[str, str]]:
    return validate_override(draft, strategies=STRATEGIES, symbols=SYMBOLS, now=NOW)


# In force -----------------------------------------------------------------------------


def test_active_overrides_keeps_the_unexpired_in_order_and_drops_the_expired():
    forever = override(K.RESTRICT_SYMBOL, SYMBOL, "AAA", id="forever")
    later = override(K.CAP_LEVERAGE, value=1.0, id="later", expires_at=NOW + 1)
    expired = override(K.CAP_LEVERAGE, value=1.0, id="expired", expires_at=NOW)

    active = active_overrides([forever, expired, later], NOW)

    assert [o.id for o in active] == ["forever", "later"]


def test_forced_regime_is_the_newest_force_regime_override():
    older = override(K.FORCE_REGIME, regime=Regime.CRISIS, id="older", created_at=10.0)
    newer = override(K.FORCE_REGIME, regime=Regime.BEAR, id="newer", created_at=20.0)
    cap = override(K.CAP_LEVERAGE, value=1.0, created_at=30.0)

    assert forced_regime([newer, older, cap]) is Regime.BEAR


def test_forced_regime_when_two_were_set_at_once_is_the_later_one():
    first = override(K.FORCE_REGIME, regime=Regime.CRISIS, id="first", created_at=10.0)
    second = override(K.FORCE_REGIME, regime=Regime.BULL, id="second", created_at=10.0)

    assert forced_regime([first, second]) is Regime.BULL


def test_forced_regime_without_a_force_regime_override_is_none():
    assert forced_regime([override(K.SCALE_LEVERAGE, value=0.5)]) is None


def test_restricted_symbols_are_the_targets_of_restrict_symbol_overrides():
    overrides = [override(K.RESTRICT_SYMBOL, SYMBOL, "AAA"),
                 override(K.CAP_SYMBOL_POSITION, SYMBOL, "BBB", value=1.0),
                 override(K.RESTRICT_SYMBOL, SYMBOL, "CCC")]

    assert restricted_symbols(overrides) == frozenset({"AAA", "CCC"})


def test_override_ids_for_an_order_are_the_global_ones_its_strategys_and_its_symbols():
    overrides = [
        override(K.FORCE_REGIME, regime=Regime.BEAR, id="regime"),
        override(K.SCALE_LEVERAGE, value=0.5, id="book"),
        override(K.CAP_LEVERAGE, STRATEGY, "alpha", value=1.0, id="alpha"),
        override(K.CAP_LEVERAGE, STRATEGY, "beta", value=1.0, id="beta"),
        override(K.RESTRICT_SYMBOL, SYMBOL, "AAA", id="aaa"),
        override(K.RESTRICT_SYMBOL, SYMBOL, "BBB", id="bbb"),
    ]

    assert override_ids_for(overrides, "alpha", "AAA") == ("regime", "book", "alpha", "aaa")


# Validation ---------------------------------------------------------------------------


@pytest.mark.parametrize("draft", [
    override(K.FORCE_REGIME, regime=Regime.CRISIS),
    override(K.SCALE_LEVERAGE, value=0.5),
    override(K.SCALE_LEVERAGE, STRATEGY, "alpha", value=1.5),
    override(K.CAP_LEVERAGE, value=1.0),
    override(K.CAP_LEVERAGE, STRATEGY, "beta", value=0.25),
    override(K.CAP_STRATEGY_CAPITAL, STRATEGY, "alpha", value=100_000.0),
    override(K.CAP_SYMBOL_POSITION, SYMBOL, "AAA", value=0.0),
    override(K.RESTRICT_SYMBOL, SYMBOL, "CCC", expires_at=NOW + 60),
], ids=lambda o: f"{o.kind.name}-{o.scope.name}")
def test_validate_override_when_valid_finds_nothing(draft):
    assert violations(draft) == []


@pytest.mark.parametrize(("draft", "field", "message"), [
    (override(K.FORCE_REGIME, STRATEGY, "alpha", regime=Regime.BEAR),
     "override.scope", "FORCE_REGIME takes scope GLOBAL, not STRATEGY"),
    (override(K.SCALE_LEVERAGE, SYMBOL, "AAA", value=0.5),
     "override.scope", "SCALE_LEVERAGE takes scope GLOBAL or STRATEGY, not SYMBOL"),
    (override(K.CAP_STRATEGY_CAPITAL, value=1.0),
     "override.scope", "CAP_STRATEGY_CAPITAL takes scope STRATEGY, not GLOBAL"),
    (override(K.CAP_SYMBOL_POSITION, STRATEGY, "alpha", value=1.0),
     "override.scope", "CAP_SYMBOL_POSITION takes scope SYMBOL, not STRATEGY"),
    (override(K.RESTRICT_SYMBOL, GLOBAL),
     "override.scope", "RESTRICT_SYMBOL takes scope SYMBOL, not GLOBAL"),
    (override(K.CAP_LEVERAGE, GLOBAL, "alpha", value=1.0),
     "override.target", "a GLOBAL override has no target, got 'alpha'"),
    (override(K.CAP_LEVERAGE, STRATEGY, "gamma", value=1.0),
     "override.target", "unknown strategy 'gamma'"),
    (override(K.CAP_LEVERAGE, STRATEGY, "", value=1.0),
     "override.target", "unknown strategy ''"),
    (override(K.RESTRICT_SYMBOL, SYMBOL, "ZZZ"),
     "override.target", "unknown symbol 'ZZZ'"),
    (override(K.SCALE_LEVERAGE, value=0.0),
     "override.value", "SCALE_LEVERAGE needs a positive finite value, got 0.0"),
    (override(K.CAP_LEVERAGE, value=math.inf),
     "override.value", "CAP_LEVERAGE needs a positive finite value, got inf"),
    (override(K.CAP_STRATEGY_CAPITAL, STRATEGY, "alpha", value=-1.0),
     "override.value", "CAP_STRATEGY_CAPITAL needs a positive finite value, got -1.0"),
    (override(K.CAP_SYMBOL_POSITION, SYMBOL, "AAA", value=math.nan),
     "override.value", "CAP_SYMBOL_POSITION needs a non-negative finite value, got nan"),
    (override(K.RESTRICT_SYMBOL, SYMBOL, "AAA", value=1.0),
     "override.value", "RESTRICT_SYMBOL takes no value, got 1.0"),
    (override(K.FORCE_REGIME),
     "override.regime", "FORCE_REGIME needs the regime to force"),
    (override(K.CAP_LEVERAGE, value=1.0, regime=Regime.CRISIS),
     "override.regime", "only FORCE_REGIME takes a regime, CAP_LEVERAGE got CRISIS"),
    (override(K.CAP_LEVERAGE, value=1.0, expires_at=NOW),
     "override.expires_at", "must be after now (1970-01-01T00:16:40.000Z), got 1970-01-01T00:16:40.000Z"),
    (override(K.CAP_LEVERAGE, value=1.0, expires_at=NOW - 60),
     "override.expires_at", "must be after now (1970-01-01T00:16:40.000Z), got 1970-01-01T00:15:40.000Z"),
])
def test_validate_override_names_the_field_and_the_fault(draft, field, message):
    assert violations(draft) == [(field, message)]


def test_validate_override_reports_every_fault_at_once():
    draft = override(K.CAP_STRATEGY_CAPITAL, SYMBOL, "ZZZ", value=0.0, regime=Regime.BULL,
                     expires_at=NOW - 1)

    fields = [field for field, _ in violations(draft)]

    assert fields == ["override.scope", "override.target", "override.value", "override.regime",
                      "override.expires_at"]
