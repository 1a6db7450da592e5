"""RiskBudgetAdminService fuzzed against a real sidecar: no token or a wrong one never gets
through, malformed or impossible requests (overrides expiring in the past, unknown targets,
unknown enum values, a change that names no actor or a malformed one) are INVALID_ARGUMENT
naming their fields, and whatever the operator calls leave behind, the sidecar still answers
checks consistently and is healthy afterwards."""

from __future__ import annotations

import math
import string

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import event, given, settings
from hypothesis import strategies as st

from riskbudget.v1 import risk_budget_admin_pb2 as apb
from riskbudget.v1 import risk_budget_service_pb2 as spb
from riskbudget.v1 import types_pb2 as pb
from riskbudget_sidecar.rpc.converters import timestamp

from ..rpc.conftest import ADMIN_TOKEN
from .conftest import (
    FUZZ, MAX_ID, MAX_TEXT, STRATEGIES, SYMBOLS, TIMESTAMP_NANOS, TIMESTAMP_SECONDS, assert_healthy, call,
    enum_values, field_violations, is_actor, is_name, is_optional_name, names, numbers,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

MAX_TIMESTAMP_SECONDS = 253_402_300_799
SCOPES = [pb.OVERRIDE_SCOPE_GLOBAL, pb.OVERRIDE_SCOPE_STRATEGY, pb.OVERRIDE_SCOPE_SYMBOL]
KINDS = [pb.OVERRIDE_KIND_FORCE_REGIME, pb.OVERRIDE_KIND_SCALE_LEVERAGE, pb.OVERRIDE_KIND_CAP_LEVERAGE,
         pb.OVERRIDE_KIND_CAP_STRATEGY_CAPITAL, pb.OVERRIDE_KIND_CAP_SYMBOL_POSITION,
         pb.OVERRIDE_KIND_RESTRICT_SYMBOL]
REGIMES = [pb.REGIME_UNSPECIFIED, pb.REGIME_BULL, pb.REGIME_BEAR, pb.REGIME_CRISIS]
TRADING_STATES = [pb.TRADING_STATE_ACTIVE, pb.TRADING_STATE_REDUCING, pb.TRADING_STATE_HALTED]

# The contract's rules for a well-formed override (engine/overrides.py, restated independently)
SCOPES_OF_KIND = {
    pb.OVERRIDE_KIND_FORCE_REGIME: {pb.OVERRIDE_SCOPE_GLOBAL},
    pb.OVERRIDE_KIND_SCALE_LEVERAGE: {pb.OVERRIDE_SCOPE_GLOBAL, pb.OVERRIDE_SCOPE_STRATEGY},
    pb.OVERRIDE_KIND_CAP_LEVERAGE: {pb.OVERRIDE_SCOPE_GLOBAL, pb.OVERRIDE_SCOPE_STRATEGY},
    pb.OVERRIDE_KIND_CAP_STRATEGY_CAPITAL: {pb.OVERRIDE_SCOPE_STRATEGY},
    pb.OVERRIDE_KIND_CAP_SYMBOL_POSITION: {pb.OVERRIDE_SCOPE_SYMBOL},
    pb.OVERRIDE_KIND_RESTRICT_SYMBOL: {pb.OVERRIDE_SCOPE_SYMBOL},
}
VALUELESS = {pb.OVERRIDE_KIND_FORCE_REGIME, pb.OVERRIDE_KIND_RESTRICT_SYMBOL}
POSITIVE = {pb.OVERRIDE_KIND_SCALE_LEVERAGE, pb.OVERRIDE_KIND_CAP_LEVERAGE, pb.OVERRIDE_KIND_CAP_STRATEGY_CAPITAL}

set_override_ids: list[str] = []


@st.composite
def expiries(draw):
    """Unset, in the past, just now, ahead, or any seconds and nanos at all."""
    kind = draw(st.sampled_from(["unset", "relative", "any"]))
    if kind == "unset":
        return None
    if kind == "relative":
        return draw(st.sampled_from([-86_400.0, -1.0, -1e-6, 0.0, 1e-3, 60.0, 86_400.0]))  # from the clock
    return Timestamp(seconds=draw(TIMESTAMP_SECONDS), nanos=draw(TIMESTAMP_NANOS))


@st.composite
def well_formed_overrides(draw) -> dict:
    kind = draw(st.sampled_from(KINDS))
    scope = draw(st.sampled_from(sorted(SCOPES_OF_KIND[kind])))
    target = {pb.OVERRIDE_SCOPE_GLOBAL: st.just(""), pb.OVERRIDE_SCOPE_STRATEGY: st.sampled_from(STRATEGIES),
              pb.OVERRIDE_SCOPE_SYMBOL: st.sampled_from(SYMBOLS)}[scope]
    value = (st.just(0.0) if kind in VALUELESS else
             st.sampled_from([1e-9, 0.01, 0.5, 1.0, 2.0, 1e6, 1e24]) if kind in POSITIVE else
             st.sampled_from([0.0, 1.0, 1e5, 1e24]))
    regime = st.sampled_from(REGIMES[1:]) if kind == pb.OVERRIDE_KIND_FORCE_REGIME else st.just(0)
    return dict(kind=kind, scope=scope, target=draw(target), value=draw(value), regime=draw(regime),
                set_by="ops", reason="fuzz", expiry=draw(st.sampled_from([None, 1e-3, 60.0, 86_400.0])))


HOSTILE_OVERRIDE_FIELDS = {
    "id": names(), "scope": enum_values(SCOPES), "target": st.one_of(st.just(""), names(STRATEGIES + SYMBOLS)),
    "kind": enum_values(KINDS), "value": numbers(st.sampled_from([0.0, 0.5, 1.0, 2.0, 1e6])),
    "regime": enum_values(REGIMES), "set_by": names(("ops",)), "reason": names(("fuzz",)), "expiry": expiries(),
}


@st.composite
def overrides(draw, now: float):
    """About half well-formed overrides; the others with some fields drawn from hostile values."""
    fields = draw(well_formed_overrides())
    corrupt = draw(st.one_of(st.just(frozenset()), st.sets(st.sampled_from(sorted(HOSTILE_OVERRIDE_FIELDS)),
                                                           min_size=1)))
    fields.update({name: draw(HOSTILE_OVERRIDE_FIELDS[name]) for name in sorted(corrupt)})
    expiry = fields.pop("expiry")
    override = pb.Override(**fields)  # an id sent is ignored: the sidecar assigns one
    if isinstance(expiry, float):
        override.expires_at.CopyFrom(timestamp(now + expiry))
    elif expiry is not None:
        override.expires_at.CopyFrom(expiry)
    return override


def bad_override_fields(o: pb.Override, now: float) -> set[str]:
    bad = set()
    if o.scope not in SCOPES:
        bad.add("override.scope")
    if o.kind not in KINDS:
        bad.add("override.kind")
    if o.regime not in REGIMES:
        bad.add("override.regime")
    if not is_optional_name(o.target):
        bad.add("override.target")
    if not (math.isfinite(o.value) and abs(o.value) <= 1e24):
        bad.add("override.value")
    if not is_actor(o.set_by):
        bad.add("override.set_by")
    if not is_name(o.reason, MAX_TEXT):
        bad.add("override.reason")
    expiry = o.expires_at
    if o.HasField("expires_at") and not (0 < expiry.seconds <= MAX_TIMESTAMP_SECONDS
                                         and 0 <= expiry.nanos < 1_000_000_000):
        bad.add("override.expires_at")
    if bad:
        return bad
    # well formed: does it make sense?
    if o.scope not in SCOPES_OF_KIND[o.kind]:
        bad.add("override.scope")
    if ((o.scope == pb.OVERRIDE_SCOPE_GLOBAL and o.target)
            or (o.scope == pb.OVERRIDE_SCOPE_STRATEGY and o.target not in STRATEGIES)
            or (o.scope == pb.OVERRIDE_SCOPE_SYMBOL and o.target not in SYMBOLS)):
        bad.add("override.target")
    if (o.value != 0 if o.kind in VALUELESS else o.value <= 0 if o.kind in POSITIVE else o.value < 0):
        bad.add("override.value")
    if (o.kind == pb.OVERRIDE_KIND_FORCE_REGIME) != (o.regime != pb.REGIME_UNSPECIFIED):
        bad.add("override.regime")
    if o.HasField("expires_at") and not expiry.seconds + expiry.nanos / 1e9 > now:
        bad.add("override.expires_at")
    return bad


@st.composite
def authorizations(draw):
    """Anything but the admin token: other schemes, near misses, arbitrary printable ASCII."""
    token = draw(st.one_of(
        st.sampled_from(["", ADMIN_TOKEN[:-1], ADMIN_TOKEN + "x", ADMIN_TOKEN.upper(), " " + ADMIN_TOKEN,
                         ADMIN_TOKEN + " ", "x" * 4_000]),
        st.text(string.ascii_letters + string.digits + string.punctuation + " ", max_size=60)))
    scheme = draw(st.sampled_from(["Bearer ", "bearer ", "Basic ", "Bearer", "", "Bearer  "]))
    value = (scheme + token).strip()  # gRPC metadata values carry no edge whitespace
    return value if value != f"Bearer {ADMIN_TOKEN}" else value + "!"


ADMIN_CALLS = {
    "SetTradingState": apb.SetTradingStateRequest(state=pb.TRADING_STATE_HALTED, reason="fuzz", set_by="fuzz"),
    "SetOverride": apb.SetOverrideRequest(override=pb.Override(
        scope=pb.OVERRIDE_SCOPE_GLOBAL, kind=pb.OVERRIDE_KIND_FORCE_REGIME, regime=pb.REGIME_CRISIS,
        set_by="fuzz", reason="fuzz")),
    "ClearOverride": apb.ClearOverrideRequest(id="ovr-x", cleared_by="fuzz"),
    "ListOverrides": apb.ListOverridesRequest(),
    "TriggerRebalance": apb.TriggerRebalanceRequest(reason="fuzz", requested_by="fuzz"),
    "ReloadConfig": apb.ReloadConfigRequest(requested_by="fuzz"),
}


@settings(FUZZ, max_examples=60)
@given(method=st.sampled_from(sorted(ADMIN_CALLS)), authorization=st.one_of(st.none(), authorizations()))
async def test_admin_calls_without_the_admin_token_never_get_through(harness, method, authorization):
    metadata = () if authorization is None else (("authorization", authorization),)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await getattr(harness.admin, method)(ADMIN_CALLS[method], metadata=metadata, timeout=30)
    expected = (grpc.StatusCode.UNAUTHENTICATED if authorization is None else grpc.StatusCode.PERMISSION_DENIED)
    assert refused.value.code() == expected, (refused.value.code(), refused.value.details())
    assert ADMIN_TOKEN not in (refused.value.details() or "")


@FUZZ
@given(data=st.data())
async def test_set_override_refuses_malformed_or_impossible_overrides_naming_the_field(
        harness, admin_metadata, data):
    now = harness.clock.now()
    override = data.draw(overrides(now))
    reply, error = await call(harness.admin.SetOverride, apb.SetOverrideRequest(override=override),
                              metadata=admin_metadata)
    expected = bad_override_fields(override, now)
    event("refused" if error else "set")
    if expected:
        assert error is not None and set(field_violations(error)) == expected, (override, error)
        return
    assert error is None, (override, field_violations(error))
    stored = reply.override
    assert stored.id and stored.id != override.id  # assigned by the sidecar
    assert (stored.scope, stored.kind, stored.target) == (override.scope, override.kind, override.target)
    set_override_ids.append(stored.id)
    # whatever the override, a well-formed order still gets a consistent answer
    check = await harness.check(f"after-{stored.id}", 10, strategy="trend", symbol="AAA", dry_run=True)
    assert check.decision in (pb.DECISION_APPROVED, pb.DECISION_RESIZED, pb.DECISION_REJECTED)
    assert math.isfinite(check.approved_quantity) and 0 <= check.approved_quantity <= 10
    budget = (await harness.stub.GetBudget(spb.GetBudgetRequest(), timeout=30)).budget
    assert all(math.isfinite(s.max_position_notional) and s.max_position_notional >= 0 for s in budget.symbols)
    assert math.isfinite(budget.total_leverage_limit) and budget.total_leverage_limit >= 0


@FUZZ
@given(pick=st.one_of(st.none(), st.integers(0, 1_000)), order_id=names(),
       cleared_by=st.one_of(st.just(""), names(("ops",))), reason=st.one_of(st.just(""), names()))
async def test_clear_override_refuses_a_malformed_id_and_clears_a_real_one_once(
        harness, admin_metadata, pick, order_id, cleared_by, reason):
    real = set_override_ids[pick % len(set_override_ids)] if pick is not None and set_override_ids else None
    request = apb.ClearOverrideRequest(id=real or order_id, cleared_by=cleared_by, reason=reason)
    reply, error = await call(harness.admin.ClearOverride, request, metadata=admin_metadata)
    bad = {name for name, ok in (("id", is_name(request.id, MAX_ID)),
                                 ("cleared_by", is_actor(request.cleared_by)),  # required: who clears it
                                 ("reason", is_optional_name(request.reason, MAX_TEXT))) if not ok}
    event("refused" if error else f"cleared={reply.cleared}")
    if bad:
        assert error is not None and set(field_violations(error)) == bad, (request, error)
        return
    assert error is None and reply.cleared == (real is not None), (request, reply)
    listed = await harness.admin.ListOverrides(apb.ListOverridesRequest(), metadata=admin_metadata, timeout=30)
    assert request.id not in [o.id for o in listed.overrides]
    if real:
        set_override_ids.remove(real)


@FUZZ
@given(state=enum_values(TRADING_STATES), strategy=st.one_of(st.just(""), names(STRATEGIES)),
       reason=st.one_of(st.just(""), names()), set_by=st.one_of(st.just(""), names(("ops",))))
async def test_set_trading_state_refuses_unknown_states_and_strategies(
        harness, admin_metadata, state, strategy, reason, set_by):
    request = apb.SetTradingStateRequest(state=state, strategy=strategy, reason=reason, set_by=set_by)
    reply, error = await call(harness.admin.SetTradingState, request, metadata=admin_metadata)
    event("refused" if error else "set")
    bad = {name for name, ok in (("state", state in TRADING_STATES), ("strategy", is_optional_name(strategy)),
                                 ("reason", is_optional_name(reason, MAX_TEXT)),
                                 ("set_by", is_actor(set_by))) if not ok}  # required: who sets it
    if not bad and strategy and strategy not in STRATEGIES:
        bad = {"strategy"}
    if bad:
        assert error is not None and set(field_violations(error)) == bad, (request, error)
    else:
        assert error is None and reply.state == state and reply.strategy == strategy


@settings(FUZZ, max_examples=60)
@given(reason=names(("fuzz",)), requested_by=st.one_of(st.just(""), names(("ops",))))
async def test_trigger_rebalance_refuses_a_missing_or_malformed_reason(harness, admin_metadata, reason,
                                                                      requested_by):
    """A missing or malformed reason, or requester (required: who asks), is refused naming it."""
    request = apb.TriggerRebalanceRequest(reason=reason, requested_by=requested_by)
    reply, error = await call(harness.admin.TriggerRebalance, request, metadata=admin_metadata)
    bad = {name for name, ok in (("reason", is_name(reason, MAX_TEXT)),
                                 ("requested_by", is_actor(requested_by))) if not ok}
    if bad:
        assert error is not None and set(field_violations(error)) == bad, (request, error)
    else:
        assert error is None and reply.recommendation.sequence > 0
        assert pb.RECOMMENDATION_TRIGGER_MANUAL in reply.recommendation.triggers


@settings(FUZZ, max_examples=40)
@given(requested_by=st.one_of(st.just(""), names(("ops",))))
async def test_reload_config_refuses_a_missing_or_malformed_requester(harness, admin_metadata, requested_by):
    """Who asks is required: a reload that names no one, or a malformed name, is refused naming
    requested_by, and does not reload; one that names someone reloads (the file is unchanged)."""
    reloaded_before = len([a for a in harness.sidecar.alerts.recent(1000, None) if a.kind.name == "CONFIG_RELOADED"])
    request = apb.ReloadConfigRequest(requested_by=requested_by)
    reply, error = await call(harness.admin.ReloadConfig, request, metadata=admin_metadata)
    reloaded_after = len([a for a in harness.sidecar.alerts.recent(1000, None) if a.kind.name == "CONFIG_RELOADED"])
    event("refused" if error else "reloaded")
    if not is_actor(requested_by):
        assert error is not None and set(field_violations(error)) == {"requested_by"}, (request, error)
        assert reloaded_after == reloaded_before
    else:
        assert error is None and reply.reloaded and not reply.errors, (request, reply)


HOSTILE_ACTORS = ["", "   ", "ops\x00", "ops\n", "\x1b[31m", "A" * 65, "x" * 10_240]
ACTOR_CALLS = {  # a request complete but for its actor, and the actor's field
    "SetTradingState": (lambda actor: apb.SetTradingStateRequest(
        state=pb.TRADING_STATE_HALTED, reason="fuzz", set_by=actor), "set_by"),
    "ClearOverride": (lambda actor: apb.ClearOverrideRequest(id="ovr-x", cleared_by=actor), "cleared_by"),
    "TriggerRebalance": (lambda actor: apb.TriggerRebalanceRequest(reason="fuzz", requested_by=actor),
                         "requested_by"),
    "ReloadConfig": (lambda actor: apb.ReloadConfigRequest(requested_by=actor), "requested_by"),
}


async def test_named_hostile_actors_are_refused_naming_their_field(harness, admin_metadata):
    """Every change names who made it: no actor, or one with control characters or too long,
    is refused by each admin call that changes something, naming the actor's field alone."""
    async def trading_states():
        budget = (await harness.stub.GetBudget(spb.GetBudgetRequest(), timeout=30)).budget
        return budget.trading_state, {s.strategy: s.trading_state for s in budget.strategies}
    states, bounds = await trading_states(), harness.sidecar.store.recommendation_bounds()
    for method, (request_with, field) in ACTOR_CALLS.items():
        for actor in HOSTILE_ACTORS:
            _, error = await call(getattr(harness.admin, method), request_with(actor), metadata=admin_metadata)
            assert error is not None and set(field_violations(error)) == {field}, (method, actor, error)
    assert await trading_states() == states  # nothing changed
    assert harness.sidecar.store.recommendation_bounds() == bounds


async def test_named_hostile_overrides_are_refused(harness, admin_metadata):
    """The cases the issue names, each once: an expiry in the past, NaN and infinite values,
    unknown enum values, unknown targets, a 10 KB reason, control characters."""
    now = harness.clock.now()
    good = dict(scope=pb.OVERRIDE_SCOPE_GLOBAL, kind=pb.OVERRIDE_KIND_CAP_LEVERAGE, value=1.0,
                set_by="ops", reason="fuzz")
    cases = [
        ({"expires_at": timestamp(now - 1)}, "override.expires_at"),
        ({"expires_at": timestamp(now)}, "override.expires_at"),
        ({"expires_at": Timestamp(seconds=-5)}, "override.expires_at"),
        ({"expires_at": Timestamp(seconds=2**63 - 1)}, "override.expires_at"),
        ({"value": math.nan}, "override.value"), ({"value": math.inf}, "override.value"),
        ({"value": -1.0}, "override.value"), ({"value": 1e308}, "override.value"),
        ({"kind": 99}, "override.kind"), ({"scope": 99}, "override.scope"), ({"regime": 99}, "override.regime"),
        ({"scope": pb.OVERRIDE_SCOPE_STRATEGY, "target": "nosuch"}, "override.target"),
        ({"scope": pb.OVERRIDE_SCOPE_GLOBAL, "target": "trend"}, "override.target"),
        ({"reason": "r" * 10_240}, "override.reason"), ({"set_by": "ops\x00"}, "override.set_by"),
        ({"set_by": ""}, "override.set_by"), ({"target": "AAA\n"}, "override.target"),
    ]
    for change, field in cases:
        request = apb.SetOverrideRequest(override=pb.Override(**{**good, **change}))
        _, error = await call(harness.admin.SetOverride, request, metadata=admin_metadata)
        assert error is not None and field in field_violations(error), (change, error)
    reloaded = await harness.admin.ReloadConfig(apb.ReloadConfigRequest(requested_by="fuzz"),
                                                metadata=admin_metadata, timeout=30)
    assert reloaded.reloaded and not reloaded.errors


async def test_sidecar_is_healthy_after_admin_rpc_fuzzing(harness, admin_metadata):
    await assert_healthy(harness, admin_metadata)
