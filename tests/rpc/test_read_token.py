"""The read token: the RiskBudgetService calls that change nothing, and nothing else."""

from __future__ import annotations

import contextlib

import aiohttp
import grpc
import pytest
import structlog
import structlog.testing

from riskbudget.v1 import risk_budget_admin_pb2 as apb
from riskbudget.v1 import risk_budget_service_pb2 as spb
from riskbudget.v1 import types_pb2 as pb
from riskbudget_client import AsyncRiskBudgetClient
from riskbudget_sidecar.app.serve import start, stop
from riskbudget_sidecar.rpc.auth import AdminAuth
from riskbudget_sidecar.rpc.converters import timestamp
from riskbudget_sidecar.service.clock import ManualClock
from riskbudget_sidecar.service.config_file import ConfigError, load_config
from tests.rpc.conftest import ADMIN_TOKEN, T0, start_harness, write_config
from tests.rpc.test_reload_and_alerts import edit_config, reload
from tests.rpc.test_security import ADMIN_SERVICE, CLIENT_TOKEN, SERVICE, bearer, call
from tests.rpc.test_service_rpcs import field_violations

READ_TOKEN = "read-token-3c2b1a0f9e8d"
READS = ("GetBudget", "GetUtilization", "StreamRecommendations", "ListAlerts", "GetStatus")
CHANGES = ("PublishMarketData", "StreamMarketData", "ReportFill", "SetPositions", "ReleaseOrder")
READER, CLIENT, ADMIN = bearer(READ_TOKEN), bearer(CLIENT_TOKEN), bearer(ADMIN_TOKEN)


def token_files(tmp_path, client: str = CLIENT_TOKEN, read: str = READ_TOKEN) -> dict[str, str]:
    (tmp_path / "client-token").write_text(client + "\n")
    (tmp_path / "read-token").write_text(read + "\n")
    return {"sidecar__client_token_file": str(tmp_path / "client-token"),
            "sidecar__read_token_file": str(tmp_path / "read-token")}


def read_token_env(tmp_path, variable: str) -> dict[str, str | None]:
    """The client token in a file, the read token in environment variable `variable`."""
    return {**token_files(tmp_path), "sidecar__read_token_file": None, "sidecar__read_token_env": variable}


@pytest.fixture
async def guarded(tmp_path):
    """A sidecar with all three tokens, fresh prices, and order o-1 reserved with the client token."""
    running = await start_harness(tmp_path, **token_files(tmp_path))
    await running.stub.PublishMarketData(spb.PublishMarketDataRequest(ticks=[
        tick(s, p, T0) for s, p in last_prices(running).items()]), metadata=CLIENT)
    reply = await running.stub.CheckTrade(order("o-1"), metadata=CLIENT)
    assert reply.reserved
    yield running
    await running.channel.close()
    await stop(running.sidecar, running.server)


def tick(symbol: str, price: float, at: float) -> pb.PriceTick:
    return pb.PriceTick(symbol=symbol, price=price, time=timestamp(at))


def last_prices(running) -> dict[str, float]:
    return {s: running.sidecar.snapshot.symbols[s].last_price for s in running.sidecar.snapshot.symbols}


def order(order_id: str, quantity: float = 10, **fields) -> spb.CheckTradeRequest:
    return spb.CheckTradeRequest(client_order_id=order_id, strategy="trend", symbol="AAA",
                                 side=pb.SIDE_BUY, quantity=quantity, **fields)


def book(running) -> tuple:
    """What a change would show in: positions, reservations, last prices, remembered checks."""
    store = running.sidecar.store
    return (sorted((p.strategy, p.symbol, p.quantity) for p in store.book.positions()),
            sorted((r.client_order_id, r.signed_quantity) for r in store.book.reservations()),
            last_prices(running), store.remembered("o-2"))


def logged_order_ids(running) -> list[str]:
    store = running.sidecar.store
    assert store.flush(5)
    return [record["order"]["client_order_id"] for record in store.decisions(100)]


# -- what the read token may call ----------------------------------------------------------

async def read(running, name: str, metadata):
    """Make read call `name`, with something to read; the reply (the stream's first message),
    or the RpcError."""
    running.sidecar.trigger_rebalance("drift", "ops")  # a recommendation
    with contextlib.suppress(grpc.aio.AioRpcError):  # an alert
        await running.admin.ListOverrides(apb.ListOverridesRequest(), metadata=bearer("wrong"))
    try:
        if name == "StreamRecommendations":
            stream = running.stub.StreamRecommendations(spb.StreamRecommendationsRequest(), metadata=metadata)
            first = await stream.read()
            stream.cancel()
            return first
        request_type = getattr(spb, f"{name}Request")
        return await getattr(running.stub, name)(request_type(), metadata=metadata, timeout=5)
    except grpc.aio.AioRpcError as error:
        return error


@pytest.mark.parametrize("name", READS)
async def test_the_read_token_makes_every_read_call(guarded, name):
    reply = await read(guarded, name, READER)

    assert not isinstance(reply, grpc.aio.AioRpcError), reply
    assert reply.ByteSize() > 0


async def test_a_call_without_a_token_names_the_tokens_that_may_make_it(guarded):
    """Found by a tester: a read without a token said it needs the client token, though the read
    token makes it too."""
    reading = await read(guarded, "GetBudget", ())
    with pytest.raises(grpc.aio.AioRpcError) as changing:
        await change(guarded, "ReleaseOrder", ())

    assert reading.details() == "this call needs 'authorization: Bearer <client or read token>'"
    assert changing.value.details() == "this call needs 'authorization: Bearer <client token>'"


@pytest.mark.parametrize("name", READS)
async def test_a_wrong_token_still_cannot_make_the_read_calls(guarded, name):
    reply = await read(guarded, name, bearer(READ_TOKEN + "x"))

    assert reply.code() == grpc.StatusCode.PERMISSION_DENIED
    assert reply.details() == "the client token is not valid"


def test_every_call_of_the_service_is_a_read_a_check_or_a_change():
    """A call added to the contract must be placed here: the read token is refused it until then."""
    assert sorted(SERVICE.methods_by_name) == sorted((*READS, "CheckTrade", *CHANGES))


async def test_a_dry_run_with_the_read_token_evaluates_and_changes_nothing(guarded):
    before = book(guarded)
    utilization = await guarded.stub.GetUtilization(spb.GetUtilizationRequest(), metadata=READER)

    reply = await guarded.stub.CheckTrade(order("o-2", dry_run=True), metadata=READER)

    assert reply.decision == pb.DECISION_APPROVED and reply.approved_quantity == 10
    assert not reply.reserved
    assert book(guarded) == before
    assert await guarded.stub.GetUtilization(spb.GetUtilizationRequest(), metadata=READER) == utilization


async def test_a_check_that_reserves_is_refused_to_the_read_token_before_it_is_evaluated(guarded):
    before = book(guarded)

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await guarded.stub.CheckTrade(order("o-2"), metadata=READER)
    await guarded.stub.CheckTrade(order("o-3", dry_run=True), metadata=READER)

    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert refused.value.details() == ("the read token can call CheckTrade only with dry_run: "
                                       "a check that reserves needs the client token")
    assert book(guarded) == before
    assert logged_order_ids(guarded) == ["o-1", "o-3"]  # the dry run is logged, the refused check is not


async def test_a_check_whose_body_does_not_parse_is_invalid_argument_with_the_read_token_too(guarded):
    """Found by a tester: the read token's gate read `dry_run` of a body that did not parse, and
    answered UNKNOWN with an error-level traceback in the log for every such call."""
    check_trade = guarded.channel.unary_unary(f"/{SERVICE.full_name}/CheckTrade")  # bytes in and out

    with structlog.testing.capture_logs() as events:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await check_trade(b"\xff\xff\xff", metadata=READER)

    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "(request body)" in refused.value.details()
    assert [e for e in events if e["log_level"] in ("error", "critical")] == []


async def test_after_a_refused_check_the_same_check_with_the_client_token_is_new(guarded):
    with pytest.raises(grpc.aio.AioRpcError):
        await guarded.stub.CheckTrade(order("o-2"), metadata=READER)

    reply = await guarded.stub.CheckTrade(order("o-2"), metadata=CLIENT)

    assert reply.decision == pb.DECISION_APPROVED and reply.reserved
    assert not reply.replayed


# -- what it may not call ------------------------------------------------------------------

def change(running, name: str, metadata):
    """A valid request of change call `name`: with the client token, it changes `book`."""
    price, now = last_prices(running)["AAA"] * 1.01, running.clock.now()
    stub = running.stub
    if name == "PublishMarketData":
        return stub.PublishMarketData(spb.PublishMarketDataRequest(ticks=[tick("AAA", price, now)]),
                                      metadata=metadata)
    if name == "StreamMarketData":
        return stub.StreamMarketData(iter([spb.StreamMarketDataRequest(ticks=[tick("AAA", price, now)])]),
                                     metadata=metadata)
    if name == "ReportFill":
        return stub.ReportFill(spb.ReportFillRequest(
            client_order_id="o-1", strategy="trend", symbol="AAA", side=pb.SIDE_BUY, quantity=5,
            price=price, time=timestamp(now)), metadata=metadata)
    if name == "SetPositions":
        return stub.SetPositions(spb.SetPositionsRequest(
            strategy="trend", positions=[pb.Position(strategy="trend", symbol="BBB", quantity=100)]),
            metadata=metadata)
    return stub.ReleaseOrder(spb.ReleaseOrderRequest(client_order_id="o-1"), metadata=metadata)


@pytest.mark.parametrize("name", CHANGES)
async def test_every_change_is_refused_to_the_read_token_and_changes_nothing(guarded, name):
    before = book(guarded)

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await change(guarded, name, READER)
    unchanged = book(guarded)
    await change(guarded, name, CLIENT)  # the same request is a change with the client token

    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert refused.value.details() == f"the read token cannot call {name}: it needs the client token"
    assert unchanged == before
    assert book(guarded) != before


@pytest.mark.parametrize("method", list(ADMIN_SERVICE.methods), ids=lambda m: m.name)
async def test_the_read_token_is_refused_on_every_admin_call(guarded, method):
    error = await call(guarded.channel, method, READER)

    assert isinstance(error, grpc.aio.AioRpcError)
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error.details() == "the read token cannot make admin calls: they need the admin token"


async def test_a_refused_admin_call_with_the_read_token_changes_nothing_and_raises_an_alert(guarded):
    with pytest.raises(grpc.aio.AioRpcError):
        await guarded.admin.SetTradingState(apb.SetTradingStateRequest(
            state=pb.TRADING_STATE_HALTED, reason="x", set_by="pytest"), metadata=READER)

    assert guarded.sidecar.trading_state().name == "ACTIVE"
    alerts = guarded.sidecar.alerts.recent(100, None)
    assert any(alert.message.endswith("refused: read token") for alert in alerts)


async def test_the_http_port_refuses_its_controls_to_the_read_token_and_serves_its_status(guarded):
    async with aiohttp.ClientSession(base_url=guarded.server.http_url) as http:
        async with http.post("/api/trading-state", json={"state": "TRADING_STATE_HALTED"},
                             headers={"Authorization": f"Bearer {READ_TOKEN}"}) as control:
            refusal = await control.json()
        async with http.get("/api/status", headers={"Authorization": f"Bearer {READ_TOKEN}"}) as status:
            await status.json()

    assert control.status == 403
    assert refusal["error"] == "the read token cannot make admin calls: they need the admin token"
    assert status.status == 200
    assert guarded.sidecar.trading_state().name == "ACTIVE"


HTTP_READS = ("/api/status", "/metrics")


@pytest.mark.parametrize("path", HTTP_READS)
@pytest.mark.parametrize("token", [READ_TOKEN, CLIENT_TOKEN, ADMIN_TOKEN])
async def test_the_http_ports_reads_serve_the_read_client_and_admin_tokens(guarded, path, token):
    async with aiohttp.ClientSession(base_url=guarded.server.http_url) as http:
        async with http.get(path, headers={"Authorization": f"Bearer {token}"}) as reply:
            await reply.read()

    assert reply.status == 200


@pytest.mark.parametrize("path", HTTP_READS)
@pytest.mark.parametrize("headers, status, error", [
    ({}, 401, "this sidecar's reads need 'Authorization: Bearer <read, client or admin token>'"),
    ({"Authorization": "Basic cmVhZDpyZWFk"}, 401,
     "this sidecar's reads need 'Authorization: Bearer <read, client or admin token>'"),
    ({"Authorization": "Bearer not-a-token"}, 403, "the token is not valid"),
], ids=["no token", "not bearer", "wrong token"])
async def test_with_a_client_token_the_http_ports_reads_need_a_token_as_grpcs_do(guarded, path, headers, status,
                                                                                  error):
    """Found in a review against the security requirements: `/api/status` showed any process on
    the host the recent decisions and their order ids while gRPC's reads needed a token."""
    with structlog.testing.capture_logs() as events:
        async with aiohttp.ClientSession(base_url=guarded.server.http_url) as http:
            async with http.get(path, headers=headers) as reply:
                body = await reply.json()

    assert (reply.status, body["error"]) == (status, error)
    assert "decisions" not in body and "riskbudget_" not in str(body)
    refusals = [e for e in events if e["event"] == "client_refused"]
    assert [(e["action"], e["peer"].startswith("http:")) for e in refusals] == [(f"http {path.rsplit('/', 1)[1]}",
                                                                                True)]


async def test_several_authorization_headers_are_refused_on_the_http_ports_reads(guarded):
    async with aiohttp.ClientSession(base_url=guarded.server.http_url) as http:
        async with http.get("/api/status", headers=[("Authorization", f"Bearer {READ_TOKEN}"),
                                                    ("Authorization", f"Bearer {ADMIN_TOKEN}")]) as reply:
            body = await reply.json()

    assert (reply.status, body["error"]) == (401, "send one 'Authorization' value, not several")


@pytest.mark.parametrize("path", ["/", "/healthz", "/readyz", "/static/app.js"])
async def test_the_dashboards_page_and_the_health_probes_need_no_token(guarded, path):
    """They carry no figures: a probe or a browser gets them, and the page asks for a token."""
    async with aiohttp.ClientSession(base_url=guarded.server.http_url) as http:
        async with http.get(path) as reply:
            await reply.read()

    assert reply.status == 200


# -- the Python client ---------------------------------------------------------------------

async def test_the_python_client_with_the_read_token_reads_and_dry_runs_but_cannot_reserve(guarded):
    async with AsyncRiskBudgetClient(guarded.server.target, client_token=READ_TOKEN,
                                     check_trade_timeout=5) as client:
        budget = await client.get_budget()
        dry_run = await client.check_trade("o-2", "trend", "AAA", "buy", 10, dry_run=True)
        reserving = await client.check_trade("o-3", "trend", "AAA", "buy", 10)

    assert budget.budget.ref.version >= 1
    assert dry_run.decision == pb.DECISION_APPROVED and not dry_run.reserved
    assert reserving.decision == pb.DECISION_REJECTED and reserving.approved_quantity == 0
    assert "PERMISSION_DENIED" in str(reserving)
    assert [r.client_order_id for r in guarded.sidecar.store.book.reservations()] == ["o-1"]


# -- the token never shows -----------------------------------------------------------------

async def test_the_read_token_enters_no_log_event_and_no_error(guarded):
    with structlog.testing.capture_logs() as events:
        errors = [await call(guarded.channel, SERVICE.methods_by_name["ReportFill"], READER),
                  await call(guarded.channel, ADMIN_SERVICE.methods_by_name["ListOverrides"], READER)]
        with pytest.raises(grpc.aio.AioRpcError) as refused_check:
            await guarded.stub.CheckTrade(order("o-2"), metadata=READER)
        errors.append(refused_check.value)
        await guarded.stub.CheckTrade(order("o-3", dry_run=True), metadata=READER)
    rendered = [structlog.processors.JSONRenderer()(None, "warning", dict(event)) for event in events]
    shown = [f"{error.details()} {error.debug_error_string()} {error.trailing_metadata()}" for error in errors]

    refusals = {(event["event"], event.get("action"), event.get("why")) for event in events}
    assert refusals >= {("client_refused", "ReportFill", "read token"),
                        ("client_refused", "CheckTrade", "read token without dry_run"),
                        ("admin_refused", "ListOverrides", "read token")}
    assert not any(READ_TOKEN in text for text in rendered + shown)


# -- configuration -------------------------------------------------------------------------

async def test_a_read_token_without_a_client_token_is_refused_at_load_naming_the_field(tmp_path):
    (tmp_path / "read-token").write_text(READ_TOKEN)
    path = write_config(tmp_path, sidecar__read_token_file=str(tmp_path / "read-token"))

    with pytest.raises(ConfigError, match="sidecar.read_token_file: a read token needs a client token"):
        load_config(path)


@pytest.mark.parametrize("equal_to,token", [("client", CLIENT_TOKEN), ("admin", ADMIN_TOKEN)])
async def test_a_read_token_equal_to_another_token_is_refused_at_start(tmp_path, equal_to, token):
    path = write_config(tmp_path, **token_files(tmp_path, read=token))

    with pytest.raises(ConfigError, match=f"sidecar.read_token_file: the read token must differ "
                                          f"from the {equal_to} token"):
        await start(load_config(path), clock=ManualClock(T0), config_path=str(path))


async def test_a_read_token_env_that_is_not_set_is_refused_at_start(tmp_path, monkeypatch):
    monkeypatch.delenv("RB_TEST_READ_TOKEN", raising=False)
    path = write_config(tmp_path, **read_token_env(tmp_path, "RB_TEST_READ_TOKEN"))

    with pytest.raises(ConfigError, match="sidecar.read_token_env: the environment variable "
                                          "RB_TEST_READ_TOKEN is not set"):
        await start(load_config(path), clock=ManualClock(T0), config_path=str(path))


async def test_a_read_token_from_the_environment_reads(tmp_path, monkeypatch):
    monkeypatch.setenv("RB_TEST_READ_TOKEN", READ_TOKEN)
    running = await start_harness(tmp_path, **read_token_env(tmp_path, "RB_TEST_READ_TOKEN"))
    try:
        reply = await running.stub.GetBudget(spb.GetBudgetRequest(), metadata=READER)
        refused = await call(running.channel, SERVICE.methods_by_name["SetPositions"], READER)
    finally:
        await running.channel.close()
        await stop(running.sidecar, running.server)

    assert reply.budget.ref.version >= 1
    assert refused.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_a_reload_cannot_change_the_read_token(guarded, tmp_path):
    (tmp_path / "other-read-token").write_text("another-read-token-77")
    edit_config(guarded, lambda data: data["sidecar"].update(read_token_file=str(tmp_path / "other-read-token")))

    reply = await reload(guarded)

    assert not reply.reloaded
    assert "sidecar.read_token_file: changes need a restart" in reply.errors


@pytest.mark.parametrize("tokens,message", [
    ({"read_token": "r"}, "a read token needs a client token"),
    ({"client_token": "c", "read_token": "c"}, "the read token must differ"),
    ({"client_token": "c", "read_token": ADMIN_TOKEN}, "the read token must differ"),
], ids=["no client token", "equal to the client token", "equal to the admin token"])
def test_the_auth_itself_refuses_a_read_token_it_cannot_honour(tokens, message):
    with pytest.raises(ValueError, match=message):
        AdminAuth(ADMIN_TOKEN, **tokens)


# -- a token typed where a name or a reason goes --------------------------------------------

TOKEN_IN_TEXT = "holds one of the sidecar's tokens: it would be logged and shown in the status"


@pytest.mark.parametrize("call, field", [
    (lambda admin, token: admin.SetTradingState(apb.SetTradingStateRequest(
        state=pb.TRADING_STATE_HALTED, reason="x", set_by=token), metadata=ADMIN), "set_by"),
    (lambda admin, token: admin.TriggerRebalance(apb.TriggerRebalanceRequest(
        reason=f"pasted {token} by mistake", requested_by="ada"), metadata=ADMIN), "reason"),
    (lambda admin, token: admin.SetOverride(apb.SetOverrideRequest(override=pb.Override(
        scope=pb.OVERRIDE_SCOPE_SYMBOL, kind=pb.OVERRIDE_KIND_RESTRICT_SYMBOL, target="AAA",
        reason=token, set_by="ada")), metadata=ADMIN), "override.reason"),
    (lambda admin, token: admin.ReloadConfig(apb.ReloadConfigRequest(requested_by=token), metadata=ADMIN),
     "requested_by"),
], ids=["set_by", "reason", "override.reason", "requested_by"])
@pytest.mark.parametrize("token", [ADMIN_TOKEN, CLIENT_TOKEN, READ_TOKEN], ids=["admin", "client", "read"])
async def test_an_admin_call_with_a_token_in_its_text_is_refused_naming_the_field(guarded, call, field, token):
    """Found by a tester: a token typed into the dashboard's name field, beside the token's own,
    went into the log and /api/status, which the read token reads."""
    with structlog.testing.capture_logs() as events:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call(guarded.admin, token)
    after = await guarded.stub.GetStatus(spb.GetStatusRequest(), metadata=CLIENT)

    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations = field_violations(refused.value)
    assert list(violations) == [field] and violations[field].startswith(TOKEN_IN_TEXT)
    assert token not in refused.value.details() and token not in str(events) and token not in str(after)
    assert guarded.sidecar.trading_state().name == "ACTIVE" and guarded.sidecar.overrides == ()


async def test_an_http_control_with_a_token_in_its_text_is_refused_naming_the_field(guarded):
    async with aiohttp.ClientSession(base_url=guarded.server.http_url) as http:
        async with http.post("/api/rebalance", json={"reason": "weekly", "requested_by": ADMIN_TOKEN},
                             headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as reply:
            body = await reply.json()

    assert reply.status == 400
    assert [v["field"] for v in body["field_violations"]] == ["requested_by"]
    assert body["field_violations"][0]["description"].startswith(TOKEN_IN_TEXT)
    assert ADMIN_TOKEN not in str(body)


@pytest.mark.parametrize("method, path, body", [
    ("DELETE", f"/api/overrides/{READ_TOKEN}", {"cleared_by": "ada", "reason": "r"}),
    ("POST", "/api/overrides", {"override": {"scope": "OVERRIDE_SCOPE_SYMBOL", "kind": READ_TOKEN, "target": "AAA",
                                             "reason": "r", "set_by": "ada"}}),
    ("POST", "/api/rebalance", {READ_TOKEN: "x", "reason": "r", "requested_by": "ada"}),
], ids=["override id", "enum value", "field name"])
async def test_a_refused_http_control_logs_no_token_it_quoted(guarded, method, path, body):
    """Found by a reviewer: the refusal's log line carried the path and the parser's message,
    each quoting what the caller sent."""
    with structlog.testing.capture_logs() as events:
        async with aiohttp.ClientSession(base_url=guarded.server.http_url) as http:
            async with http.request(method, path, json=body,
                                    headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as reply:
                await reply.read()

    refused = [e for e in events if e["event"] == "http_refused"]
    assert reply.status in (400, 404) and len(refused) == 1
    assert READ_TOKEN not in str(events)


async def test_without_a_client_token_the_http_reads_take_any_authorization(harness):
    """As gRPC's reads do (found by a reviewer: two Authorization headers were refused, 401)."""
    async with aiohttp.ClientSession(base_url=harness.server.http_url) as http:
        async with http.get("/api/status", headers=[("Authorization", "Bearer a"), ("Authorization", "Bearer b")]
                            ) as reply:
            await reply.read()

    assert reply.status == 200


async def test_a_long_token_a_refused_control_quoted_is_redacted_before_it_is_clipped(tmp_path):
    """Found by a reviewer: the refusal's text was clipped to 160 characters, then redacted, and a
    200-character token, clipped, was no longer the token: 157 of its characters were logged."""
    long_token = "r" + "0123456789" * 20
    running = await start_harness(tmp_path, **token_files(tmp_path, read=long_token))
    try:
        with structlog.testing.capture_logs() as events:
            async with aiohttp.ClientSession(base_url=running.server.http_url) as http:
                async with http.post("/api/rebalance", json={long_token: "x", "reason": "r", "requested_by": "ada"},
                                     headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as reply:
                    await reply.read()
    finally:
        await running.channel.close()
        await stop(running.sidecar, running.server)

    assert reply.status == 400
    assert long_token[:40] not in str(events)
