"""The controls: the admin RPCs' requests as JSON, the same token check, validation and calls as gRPC."""

from __future__ import annotations

import pytest
import structlog
from aiohttp.test_utils import TestClient, TestServer
from yarl import URL

from riskbudget.v1 import risk_budget_admin_pb2 as apb
from riskbudget.v1 import risk_budget_service_pb2 as spb
from riskbudget.v1 import types_pb2 as pb
from riskbudget_sidecar.engine.types import AlertKind, TradingState
from riskbudget_sidecar.http.server import build_app
from riskbudget_sidecar.rpc.auth import AdminAuth
from riskbudget_sidecar.rpc.converters import timestamp
from riskbudget_sidecar.store.errors import StoreError
from tests.rpc.conftest import ADMIN_TOKEN, T0

from .conftest import ADMIN_HEADERS

RESTRICT_AAA = {"override": {"scope": "OVERRIDE_SCOPE_SYMBOL", "target": "AAA",
                             "kind": "OVERRIDE_KIND_RESTRICT_SYMBOL", "set_by": "ops", "reason": "news"}}

# (name, method, path, a good body, a bad body, the field the bad body is refused for)
CONTROLS = [
    ("set override", "POST", "/api/overrides", RESTRICT_AAA,
     {"override": {**RESTRICT_AAA["override"], "scope": "OVERRIDE_SCOPE_PLANET"}}, "override.scope"),
    ("clear override", "DELETE", "/api/overrides/ovr-unknown", {"cleared_by": "ops", "reason": "done"},
     {"cleared_by": "ops", "reason": 5}, "reason"),
    ("set trading state", "POST", "/api/trading-state",
     {"state": "TRADING_STATE_HALTED", "reason": "drill", "set_by": "ops"},
     {"state": "TRADING_STATE_HALTED", "strategy": "nope", "set_by": "ops"}, "strategy"),
    ("trigger rebalance", "POST", "/api/rebalance", {"reason": "month end", "requested_by": "ops"},
     {"requested_by": "ops"}, "reason"),
]
IDS = [control[0] for control in CONTROLS]


async def call(http, method: str, path: str, body=None, headers=None) -> tuple[int, dict]:
    async with http.request(method, path, json=body, headers=headers) as response:
        return response.status, await response.json()


@pytest.mark.parametrize(("name", "method", "path", "good", "bad", "field"), CONTROLS, ids=IDS)
async def test_each_control_with_the_right_token_succeeds(harness, http, name, method, path, good, bad, field):
    status, reply = await call(http, method, path, good, ADMIN_HEADERS)

    assert status == 200, reply


@pytest.mark.parametrize(("name", "method", "path", "good", "bad", "field"), CONTROLS, ids=IDS)
async def test_each_control_without_a_token_is_401_and_changes_nothing(harness, http, name, method, path, good,
                                                                       bad, field):
    version = harness.sidecar.snapshot.version

    async with http.request(method, path, json=good) as response:
        status, reply = response.status, await response.json()
        challenge = response.headers.get("WWW-Authenticate", "")

    assert status == 401
    assert challenge.startswith("Bearer")
    assert reply == {"error": "admin calls need 'authorization: Bearer <token>'", "field_violations": []}
    assert harness.sidecar.overrides == () and harness.sidecar.trading_state() is TradingState.ACTIVE
    assert harness.sidecar.store.recommendation_bounds() == (0, 0)
    assert harness.sidecar.snapshot.version == version


@pytest.mark.parametrize(("name", "method", "path", "good", "bad", "field"), CONTROLS, ids=IDS)
async def test_each_control_with_a_wrong_token_is_403_audited_alerted_and_never_echoed(
        harness, http, name, method, path, good, bad, field):
    with structlog.testing.capture_logs() as logs:
        status, reply = await call(http, method, path, good, {"Authorization": "Bearer guess-123"})

    assert status == 403
    assert reply["error"] == "the admin token is not valid"
    refused = [entry for entry in logs if entry["event"] == "admin_refused"]
    assert refused and refused[0]["why"] == "wrong token" and refused[0]["peer"].startswith("http:127.0.0.1")
    assert "guess-123" not in repr(logs) and ADMIN_TOKEN not in repr(logs)
    assert harness.sidecar.alerts.recent(1)[0].kind is AlertKind.ADMIN_REFUSED
    assert harness.sidecar.overrides == () and harness.sidecar.trading_state() is TradingState.ACTIVE


@pytest.mark.parametrize(("name", "method", "path", "good", "bad", "field"), CONTROLS, ids=IDS)
async def test_each_control_with_a_bad_body_is_400_naming_the_field(harness, http, name, method, path, good, bad,
                                                                    field):
    status, reply = await call(http, method, path, bad, ADMIN_HEADERS)

    assert status == 400, reply
    assert [v["field"] for v in reply["field_violations"]] == [field]
    assert reply["field_violations"][0]["description"]
    assert field in reply["error"]


@pytest.mark.parametrize(("body", "field"), [
    ({"override": {**RESTRICT_AAA["override"], "set_by": ""}}, "override.set_by"),
    ({"override": {**RESTRICT_AAA["override"], "target": "ZZZ"}}, "override.target"),
    ({"override": {**RESTRICT_AAA["override"], "value": "lots"}}, "override.value"),
    ({"override": {"scope": "OVERRIDE_SCOPE_GLOBAL", "kind": "OVERRIDE_KIND_FORCE_REGIME", "set_by": "ops",
                   "reason": "drill"}}, "override.regime"),
    ({**RESTRICT_AAA, "colour": "red"}, "colour"),
    ({**RESTRICT_AAA, "expires_in": -5}, "expires_in"),
    ({**RESTRICT_AAA, "expires_in": "soon"}, "expires_in"),
    ({"override": {**RESTRICT_AAA["override"], "expires_at": "2027-01-15T09:00:00Z"}, "expires_in": 60},
     "expires_in"),
    ([RESTRICT_AAA], "body"),
], ids=["no author", "unknown symbol", "value not a number", "force without regime", "unknown field",
        "negative expiry", "expiry not a number", "two expiries", "not an object"])
async def test_a_bad_override_is_refused_with_the_same_field_names_as_grpc(harness, http, body, field):
    status, reply = await call(http, "POST", "/api/overrides", body, ADMIN_HEADERS)

    assert status == 400, reply
    assert field in [v["field"] for v in reply["field_violations"]]
    assert harness.sidecar.overrides == ()


async def test_an_expires_in_out_of_range_names_its_bound_in_whole_seconds(harness, http):
    """Found by a tester: the bound read "(0, 3.16224e+08]"."""
    status, reply = await call(http, "POST", "/api/overrides", {**RESTRICT_AAA, "expires_in": -5}, ADMIN_HEADERS)

    assert (status, reply["field_violations"]) == (400, [
        {"field": "expires_in", "description": "must be a number of seconds in (0, 316,224,000]"}])


@pytest.mark.parametrize("expires_in", [1e-12, 1e-9], ids=["1e-12", "1e-9"])
async def test_an_expires_in_too_short_to_outlast_the_setting_is_refused_naming_expires_in(
        harness, http, expires_in):
    """The sidecar's clock stands still here: now + expires_in is not after now."""
    body = {"override": {**RESTRICT_AAA["override"], "target": "ZZZ"}, "expires_in": expires_in}

    status, reply = await call(http, "POST", "/api/overrides", body, ADMIN_HEADERS)

    assert status == 400, reply
    assert reply["field_violations"] == [
        {"field": "override.target", "description": "unknown symbol 'ZZZ'"},
        {"field": "expires_in",
         "description": f"is too short: {expires_in:g} s from now had passed when the override was set"}]
    assert harness.sidecar.overrides == ()


async def test_a_body_that_is_not_json_is_400(harness, http):
    async with http.post("/api/rebalance", data=b"{reason: month end", headers=ADMIN_HEADERS) as response:
        assert response.status == 400
        [violation] = (await response.json())["field_violations"]
        assert violation["field"] == "body"
        assert violation["description"].startswith("is not valid JSON: Expecting property name")


@pytest.mark.parametrize(("name", "method", "path", "good", "bad", "field"), CONTROLS, ids=IDS)
@pytest.mark.parametrize("opening, closing", [("[", "]"), ('{"a":', "}")], ids=["arrays", "objects"])
async def test_a_body_nested_too_deeply_is_400_naming_the_body_and_logs_no_traceback(
        harness, http, name, method, path, good, bad, field, opening, closing):
    depth = 60_000 // len(opening + closing)  # 60 KB, under the body limit; deeper than the parser's stack
    body = (opening * depth + "1" + closing * depth).encode()

    with structlog.testing.capture_logs() as logs:
        async with http.request(method, path, data=body, headers=ADMIN_HEADERS) as response:
            status, reply = response.status, await response.json()

    assert status == 400, reply
    assert reply["field_violations"] == [{"field": "body", "description": "is not valid JSON: nested too deeply"}]
    assert not [entry for entry in logs if entry.get("exc_info") or entry["log_level"] in ("error", "critical")]


async def test_a_body_that_is_json_but_not_an_object_is_400(harness, http):
    async with http.post("/api/rebalance", data=b"[1, 2]", headers=ADMIN_HEADERS) as response:
        assert response.status == 400
        assert (await response.json())["field_violations"] == [{"field": "body",
                                                                "description": "must be a JSON object"}]


# (name, method, path, a body complete but for its actor, the actor's field)
ACTORLESS = [
    ("clear override", "DELETE", "/api/overrides/{id}", {"reason": "done"}, "cleared_by"),
    ("set trading state", "POST", "/api/trading-state", {"state": "TRADING_STATE_HALTED", "reason": "drill"},
     "set_by"),
    ("trigger rebalance", "POST", "/api/rebalance", {"reason": "month end"}, "requested_by"),
]


@pytest.mark.parametrize("actor", [None, ""], ids=["missing", "empty"])
@pytest.mark.parametrize(("name", "method", "path", "body", "field"), ACTORLESS, ids=[c[0] for c in ACTORLESS])
async def test_each_control_without_an_actor_is_400_naming_the_field_and_changes_nothing(
        harness, http, name, method, path, body, field, actor):
    override = (await harness.admin.SetOverride(apb.SetOverrideRequest(override=pb.Override(
        scope=pb.OVERRIDE_SCOPE_SYMBOL, target="AAA", kind=pb.OVERRIDE_KIND_RESTRICT_SYMBOL, set_by="ops",
        reason="news")), metadata=harness.admin_metadata)).override
    bounds = harness.sidecar.store.recommendation_bounds()
    alerts = len(harness.sidecar.alerts.recent(1000))

    status, reply = await call(http, method, path.format(id=override.id),
                               body if actor is None else {**body, field: actor}, ADMIN_HEADERS)

    assert status == 400, reply
    assert reply["field_violations"] == [{"field": field, "description": "must not be empty"}]
    assert field in reply["error"]
    assert [o.id for o in harness.sidecar.overrides] == [override.id]  # the override is still there
    assert harness.sidecar.trading_state() is TradingState.ACTIVE  # the state is unchanged
    assert harness.sidecar.store.recommendation_bounds() == bounds  # no recommendation made
    assert len(harness.sidecar.alerts.recent(1000)) == alerts  # nothing audited as a change


async def test_an_override_set_over_http_is_the_one_grpc_lists_and_it_takes_effect(harness, http):
    await harness.publish_last_prices()

    status, reply = await call(http, "POST", "/api/overrides", {**RESTRICT_AAA, "expires_in": 600}, ADMIN_HEADERS)
    listed = (await harness.admin.ListOverrides(apb.ListOverridesRequest(), metadata=harness.admin_metadata)).overrides
    decision = await harness.check("after-override", 1)

    assert status == 200
    (override,) = listed
    assert reply["override"]["id"] == override.id
    assert (override.scope, override.target, override.kind) == (
        pb.OVERRIDE_SCOPE_SYMBOL, "AAA", pb.OVERRIDE_KIND_RESTRICT_SYMBOL)
    assert (override.set_by, override.reason) == ("ops", "news")
    assert override.expires_at == timestamp(T0 + 600)  # expires_in counts from the sidecar's clock
    assert decision.decision == pb.DECISION_REJECTED
    assert pb.REASON_CODE_RESTRICTED_SYMBOL in [r.code for r in decision.reasons]
    assert override.id in decision.override_ids


async def test_an_override_set_over_grpc_is_cleared_over_http(harness, http):
    override = (await harness.admin.SetOverride(apb.SetOverrideRequest(override=pb.Override(
        scope=pb.OVERRIDE_SCOPE_GLOBAL, kind=pb.OVERRIDE_KIND_FORCE_REGIME, regime=pb.REGIME_CRISIS,
        set_by="ops", reason="drill")), metadata=harness.admin_metadata)).override
    assert harness.sidecar.snapshot.regime.name == "CRISIS"

    status, reply = await call(http, "DELETE", f"/api/overrides/{override.id}",
                               {"cleared_by": "ops", "reason": "drill over"}, ADMIN_HEADERS)
    again = await call(http, "DELETE", f"/api/overrides/{override.id}", {"cleared_by": "ops"}, ADMIN_HEADERS)
    listed = (await harness.admin.ListOverrides(apb.ListOverridesRequest(), metadata=harness.admin_metadata)).overrides

    assert (status, reply) == (200, {"cleared": True})
    assert again == (200, {"cleared": False})
    assert list(listed) == []
    assert harness.sidecar.snapshot.regime.name != "CRISIS"
    assert f"override {override.id} cleared by ops: drill over" in [a.message for a in harness.sidecar.alerts.recent(5)]


async def test_halting_a_strategy_over_http_rejects_its_increases_over_grpc(harness, http):
    await harness.publish_last_prices()

    status, reply = await call(http, "POST", "/api/trading-state",
                               {"state": "TRADING_STATE_HALTED", "strategy": "trend", "reason": "drill",
                                "set_by": "ops"}, ADMIN_HEADERS)
    decision = await harness.check("halted-1", 1)
    budget = (await harness.stub.GetBudget(spb.GetBudgetRequest(strategy="trend"))).budget

    assert status == 200
    assert (reply["state"], reply["strategy"]) == ("TRADING_STATE_HALTED", "trend")
    assert reply["set_at"] == "2027-01-15T08:00:00Z"
    assert decision.decision == pb.DECISION_REJECTED
    assert pb.REASON_CODE_TRADING_HALTED in [r.code for r in decision.reasons]
    assert budget.strategies[0].trading_state == pb.TRADING_STATE_HALTED


async def test_a_rebalance_over_http_reaches_the_stream_subscribers(harness, http):
    status, reply = await call(http, "POST", "/api/rebalance", {"reason": "month end", "requested_by": "ops"},
                               ADMIN_HEADERS)
    stream = harness.stub.StreamRecommendations(spb.StreamRecommendationsRequest(after_sequence=0))
    first = await stream.read()
    stream.cancel()

    assert status == 200
    assert reply["recommendation"]["triggers"] == ["RECOMMENDATION_TRIGGER_MANUAL"]
    assert first.recommendations[0].sequence == int(reply["recommendation"]["sequence"]) == 1
    assert first.recommendations[0].reason == "month end (requested by ops)"


async def test_a_change_the_store_cannot_record_is_503(harness, http, monkeypatch):
    async def refuse(override):
        raise StoreError("disk full")

    monkeypatch.setattr(harness.sidecar.store, "add_override", refuse)

    status, reply = await call(http, "POST", "/api/overrides", RESTRICT_AAA, ADMIN_HEADERS)

    assert status == 503
    assert "disk full" in reply["error"]
    assert harness.sidecar.overrides == ()


async def test_without_an_admin_token_configured_every_control_is_403(harness):
    app = build_app(harness.sidecar, health=harness.server.grpc, auth=AdminAuth(None))
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        async with client.post("/api/rebalance", json={"reason": "x", "requested_by": "ops"},
                               headers=ADMIN_HEADERS) as response:
            status, reply = response.status, await response.json()

    assert status == 403
    assert "no admin token configured" in reply["error"]


async def test_a_request_naming_another_host_is_refused(harness, http):
    port = URL(harness.server.http_url).port

    async with http.get("/api/status", headers={"Host": f"rebound.example:{port}"}) as response:
        status = response.status

    assert status == 421


def test_the_http_error_table_maps_each_domain_error_a_control_can_raise():
    from riskbudget_sidecar.http.errors import STATUS_FOR_ERROR

    assert {kind.__name__: code for kind, code in STATUS_FOR_ERROR.items()} == {
        "InvalidInput": 400, "Unauthenticated": 401, "PermissionDenied": 403, "NotReady": 503,
        "StateUnavailable": 503}


async def test_a_body_that_cannot_be_decoded_is_400_naming_the_body_and_changes_nothing(harness, http):
    """Found by a reviewer: a gzip body that is not gzip reached the handler as a 500."""
    before = harness.sidecar.store.recommendation_bounds()
    async with http.post("/api/rebalance", data=b"not gzip at all",
                         headers={**ADMIN_HEADERS, "Content-Encoding": "gzip",
                                  "Content-Type": "application/json"}) as response:
        reply = await response.json()

    assert response.status == 400, reply
    assert [v["field"] for v in reply["field_violations"]] == ["body"]
    assert harness.sidecar.store.recommendation_bounds() == before


@pytest.mark.parametrize("path, body, field", [
    ("/api/trading-state", b'{"state": 1e999, "set_by": "ops"}', "body"),
    ("/api/trading-state", b'{"state": -1e400, "set_by": "ops"}', "body"),
    ("/api/overrides", b'{"override": {"scope": "OVERRIDE_SCOPE_SYMBOL", "target": "AAA", '
                       b'"kind": "OVERRIDE_KIND_RESTRICT_SYMBOL", "set_by": "ops", "reason": "x"}, "expires_in": '
                       + b"9" * 400 + b"}", "expires_in"),
], ids=["state 1e999", "state -1e400", "expires_in of 400 digits"])
async def test_a_number_past_a_doubles_range_is_400_naming_the_field(harness, http, path, body, field):
    """Found by a tester: these were 500s."""
    async with http.post(path, data=body, headers={**ADMIN_HEADERS, "Content-Type": "application/json"}) as response:
        reply = await response.json()

    assert response.status == 400, reply
    assert [v["field"] for v in reply["field_violations"]] == [field]
    assert harness.sidecar.trading_state().name == "ACTIVE" and not harness.sidecar.overrides
