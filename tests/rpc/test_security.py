"""Token scopes (admin vs client), the transport's guards, and tokens kept out of what the sidecar shows."""

from __future__ import annotations

import asyncio
import os
import stat

import aiohttp
import grpc
import pytest
import structlog
import structlog.testing
from multidict import CIMultiDict
from google.protobuf import message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from riskbudget.v1 import risk_budget_admin_pb2 as apb
from riskbudget.v1 import risk_budget_service_pb2 as spb
from riskbudget.v1 import types_pb2 as pb
from riskbudget_client import AsyncRiskBudgetClient
from riskbudget_sidecar.app.serve import start, stop
from riskbudget_sidecar.engine.addresses import ListenAddress, parse_listen_address
from riskbudget_sidecar.engine.types import PriceTick
from riskbudget_sidecar.rpc.converters import timestamp
from riskbudget_sidecar.rpc.server import _bind
from riskbudget_sidecar.service.clock import ManualClock
from riskbudget_sidecar.service.config_file import ConfigError, load_config, parse_config
from tests.rpc.conftest import ADMIN_TOKEN, T0, config_data, start_harness, write_config

CLIENT_TOKEN = "client-token-9f8e7d6c5b4a"
SERVICE = spb.DESCRIPTOR.services_by_name["RiskBudgetService"]
ADMIN_SERVICE = apb.DESCRIPTOR.services_by_name["RiskBudgetAdminService"]


def bearer(token: str) -> tuple:
    return (("authorization", f"Bearer {token}"),)


def last_prices(running) -> dict[str, float]:
    return {s: running.sidecar.snapshot.symbols[s].last_price for s in running.sidecar.snapshot.symbols}


async def start_with_client_token(tmp_path, **overrides):
    token_file = tmp_path / "client-token"
    token_file.write_text(CLIENT_TOKEN + "\n")
    return await start_harness(tmp_path, sidecar__client_token_file=str(token_file), **overrides)


@pytest.fixture
async def guarded(tmp_path):
    """A sidecar with both tokens: the admin token and a client token."""
    running = await start_with_client_token(tmp_path)
    yield running
    await running.channel.close()
    await stop(running.sidecar, running.server)


async def call(channel: grpc.aio.Channel, method, metadata=None, **fields):
    """Call any method of either service with an empty request (or one of `fields`); the reply,
    or the RpcError."""
    request_type = message_factory.GetMessageClass(method.input_type)
    response_type = message_factory.GetMessageClass(method.output_type)
    path = f"/{method.containing_service.full_name}/{method.name}"
    kind = {(False, False): channel.unary_unary, (False, True): channel.unary_stream,
            (True, False): channel.stream_unary, (True, True): channel.stream_stream}[
        (method.client_streaming, method.server_streaming)]
    stub = kind(path, request_serializer=request_type.SerializeToString,
                response_deserializer=response_type.FromString)
    request = iter([request_type(**fields)]) if method.client_streaming else request_type(**fields)
    try:
        reply = stub(request, metadata=metadata, timeout=5)
        if method.server_streaming:
            return [item async for item in reply]
        return await reply
    except grpc.aio.AioRpcError as error:
        return error


# -- the client scope ----------------------------------------------------------------------

async def test_without_a_client_token_configured_service_calls_need_no_token(harness):
    await harness.publish_last_prices()

    reply = await harness.check("o-1", 10)

    assert not harness.server.grpc.auth.client_token_required
    assert reply.decision == pb.DECISION_APPROVED


@pytest.mark.parametrize("method", list(SERVICE.methods), ids=lambda m: m.name)
async def test_with_a_client_token_every_service_call_without_a_token_is_unauthenticated(guarded, method):
    error = await call(guarded.channel, method)

    assert isinstance(error, grpc.aio.AioRpcError)
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "client token" in error.details()


@pytest.mark.parametrize("method", list(SERVICE.methods), ids=lambda m: m.name)
async def test_with_a_client_token_every_service_call_with_a_wrong_token_is_permission_denied(guarded, method):
    error = await call(guarded.channel, method, bearer("not-the-client-token"))

    assert isinstance(error, grpc.aio.AioRpcError)
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error.details() == "the client token is not valid"


async def test_another_scheme_than_bearer_is_unauthenticated(guarded):
    error = await call(guarded.channel, SERVICE.methods_by_name["GetBudget"], (("authorization", CLIENT_TOKEN),))

    assert error.code() == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize("token", [CLIENT_TOKEN, ADMIN_TOKEN], ids=["client token", "admin token"])
async def test_the_client_token_or_the_admin_token_reach_check_trade(guarded, token):
    await guarded.stub.PublishMarketData(spb.PublishMarketDataRequest(ticks=[
        pb.PriceTick(symbol=s, price=p, time=timestamp(T0)) for s, p in last_prices(guarded).items()]),
        metadata=bearer(token))

    reply = await guarded.stub.CheckTrade(spb.CheckTradeRequest(
        client_order_id="o-1", strategy="trend", symbol="AAA", side=pb.SIDE_BUY, quantity=10),
        metadata=bearer(token))

    assert reply.decision == pb.DECISION_APPROVED
    assert reply.reserved


async def test_a_refused_check_trade_is_never_evaluated_and_reserves_nothing(guarded):
    before = len(guarded.sidecar._store.book.reservations())

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await guarded.stub.CheckTrade(spb.CheckTradeRequest(
            client_order_id="o-1", strategy="trend", symbol="AAA", side=pb.SIDE_BUY, quantity=10),
            metadata=bearer("wrong"))

    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert len(guarded.sidecar._store.book.reservations()) == before == 0


async def test_a_client_token_does_not_close_health_or_reflection(guarded):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    reply = await health_pb2_grpc.HealthStub(guarded.channel).Check(health_pb2.HealthCheckRequest())

    assert reply.status == health_pb2.HealthCheckResponse.SERVING


# -- the client token on admin calls -------------------------------------------------------

@pytest.mark.parametrize("method", list(ADMIN_SERVICE.methods), ids=lambda m: m.name)
async def test_the_client_token_is_refused_on_every_admin_call(guarded, method):
    error = await call(guarded.channel, method, bearer(CLIENT_TOKEN))

    assert isinstance(error, grpc.aio.AioRpcError)
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "client token cannot make admin calls" in error.details()


async def test_the_client_token_changes_nothing_through_admin_calls(guarded):
    bounds = guarded.sidecar.store.recommendation_bounds()
    halted = apb.SetTradingStateRequest(state=pb.TRADING_STATE_HALTED, reason="x", set_by="pytest")
    with pytest.raises(grpc.aio.AioRpcError):
        await guarded.admin.SetTradingState(halted, metadata=bearer(CLIENT_TOKEN))
    with pytest.raises(grpc.aio.AioRpcError):
        await guarded.admin.TriggerRebalance(apb.TriggerRebalanceRequest(reason="x", requested_by="y"),
                                             metadata=bearer(CLIENT_TOKEN))

    assert guarded.sidecar.trading_state().name == "ACTIVE"
    assert len(guarded.sidecar.overrides) == 0
    assert guarded.sidecar.store.recommendation_bounds() == bounds
    alerts = guarded.sidecar.alerts.recent(100, None)
    assert any("client token" in alert.message for alert in alerts)


async def test_the_admin_token_still_makes_admin_calls_beside_a_client_token(guarded):
    reply = await guarded.admin.ListOverrides(apb.ListOverridesRequest(), metadata=bearer(ADMIN_TOKEN))

    assert list(reply.overrides) == []


async def test_the_client_token_is_refused_on_the_http_controls(guarded):
    async with aiohttp.ClientSession(base_url=guarded.server.http_url) as http:
        async with http.post("/api/trading-state", json={"state": "TRADING_STATE_HALTED", "set_by": "pytest"},
                             headers={"Authorization": f"Bearer {CLIENT_TOKEN}"}) as response:
            body = await response.json()

    assert response.status == 403
    assert "client token cannot make admin calls" in body["error"]
    assert guarded.sidecar.trading_state().name == "ACTIVE"


@pytest.mark.parametrize("tokens", [(ADMIN_TOKEN, "wrong"), ("wrong", ADMIN_TOKEN)], ids=["admin first", "admin last"])
async def test_several_authorization_values_are_refused_by_every_check(guarded, tokens):
    """Found by a tester: the admin check read the last value and the client check the first,
    so each scope judged another token."""
    metadata = tuple(("authorization", f"Bearer {token}") for token in tokens)

    admin = await call(guarded.channel, ADMIN_SERVICE.methods_by_name["ListOverrides"], metadata)
    service = await call(guarded.channel, SERVICE.methods_by_name["GetBudget"], metadata)
    async with aiohttp.ClientSession(base_url=guarded.server.http_url) as http:
        async with http.post("/api/rebalance", json={"reason": "x", "requested_by": "y"},
                             headers=CIMultiDict(("Authorization", f"Bearer {token}") for token in tokens)) as response:
            body = await response.json()

    assert (admin.code(), admin.details()) == (grpc.StatusCode.UNAUTHENTICATED,
                                               "send one 'authorization' value, not several")
    assert (service.code(), service.details()) == (grpc.StatusCode.UNAUTHENTICATED,
                                                   "send one 'authorization' value, not several")
    assert (response.status, body["error"]) == (401, "send one 'authorization' value, not several")
    assert guarded.sidecar.store.recommendation_bounds() == (0, 0)  # the rebalance was not made


@pytest.mark.parametrize("mode, warned", [(0o644, True), (0o600, False)])
async def test_serve_warns_of_a_token_file_other_users_may_read(tmp_path, mode, warned):
    path = write_config(tmp_path)
    (tmp_path / "admin-token").chmod(mode)
    with structlog.testing.capture_logs() as logs:
        sidecar, servers = await start(load_config(path), clock=ManualClock(T0), config_path=str(path))
    await stop(sidecar, servers)

    exposed = [entry["problem"] for entry in logs if entry["event"] == "token_file_exposed"]
    assert exposed == ([f"sidecar.admin_token_file: {tmp_path}/admin-token (mode {mode:04o}) may be read by "
                        "other users: chmod 600 it, or 640 for a group of the sidecar's"] if warned else [])


async def test_a_reload_warns_of_a_token_file_other_users_may_read(tmp_path):
    """Found by a tester: a token rotated into a file written 0644 went unflagged until a restart."""
    running = await start_with_client_token(tmp_path)
    reload_config = ADMIN_SERVICE.methods_by_name["ReloadConfig"]
    try:
        (tmp_path / "admin-token").chmod(0o600)
        (tmp_path / "client-token").write_text("rotated-client-token-1\n")
        (tmp_path / "client-token").chmod(0o644)
        with structlog.testing.capture_logs() as logs:
            rotated = await call(running.channel, reload_config, bearer(ADMIN_TOKEN), requested_by="pytest")
    finally:
        await running.channel.close()
        await stop(running.sidecar, running.server)

    assert rotated.reloaded
    assert [entry["problem"] for entry in logs if entry["event"] == "token_file_exposed"] == [
        f"sidecar.client_token_file: {tmp_path}/client-token (mode 0644) may be read by other users: "
        "chmod 600 it, or 640 for a group of the sidecar's"]


# -- the Python client ---------------------------------------------------------------------

async def test_the_python_client_sends_its_client_token_on_service_calls(guarded):
    async with AsyncRiskBudgetClient(guarded.server.target, admin_token=ADMIN_TOKEN, client_token=CLIENT_TOKEN,
                                     check_trade_timeout=5) as client:
        await client.publish_market_data([(s, p, T0) for s, p in last_prices(guarded).items()])
        decision = await client.check_trade("o-1", "trend", "AAA", "buy", 10)
        budget = await client.get_budget()
        rebalance = await client.trigger_rebalance("drift", "ops")
        stream = client.stream_recommendations(after_sequence=0)
        streamed = await anext(stream)
        await stream.aclose()

    assert decision.decision == pb.DECISION_APPROVED
    assert budget.budget.ref.version >= 1
    assert streamed.sequence == rebalance.recommendation.sequence


async def test_the_python_client_without_the_client_token_rejects_its_orders_itself(guarded):
    async with AsyncRiskBudgetClient(guarded.server.target, admin_token=ADMIN_TOKEN,
                                     check_trade_timeout=5) as client:
        decision = await client.check_trade("o-1", "trend", "AAA", "buy", 10)

    assert decision.decision == pb.DECISION_REJECTED
    assert decision.approved_quantity == 0
    assert "UNAUTHENTICATED" in str(decision)


# -- configuration -------------------------------------------------------------------------

async def test_a_client_token_equal_to_the_admin_token_is_refused_at_start(tmp_path):
    token_file = tmp_path / "client-token"
    token_file.write_text(ADMIN_TOKEN)
    path = write_config(tmp_path, sidecar__client_token_file=str(token_file))

    with pytest.raises(ConfigError, match="sidecar.client_token_file: the client token must differ"):
        await start(load_config(path), clock=ManualClock(T0), config_path=str(path))


async def test_a_client_token_env_that_is_not_set_is_refused_at_start(tmp_path, monkeypatch):
    monkeypatch.delenv("RB_TEST_CLIENT_TOKEN", raising=False)
    path = write_config(tmp_path, sidecar__client_token_env="RB_TEST_CLIENT_TOKEN")

    with pytest.raises(ConfigError, match="sidecar.client_token_env: the environment variable "
                                          "RB_TEST_CLIENT_TOKEN is not set"):
        await start(load_config(path), clock=ManualClock(T0), config_path=str(path))


async def test_a_client_token_from_the_environment_guards_the_service(tmp_path, monkeypatch):
    monkeypatch.setenv("RB_TEST_CLIENT_TOKEN", CLIENT_TOKEN)
    running = await start_harness(tmp_path, sidecar__client_token_env="RB_TEST_CLIENT_TOKEN")
    try:
        refused = await call(running.channel, SERVICE.methods_by_name["GetBudget"])
        allowed = await call(running.channel, SERVICE.methods_by_name["GetBudget"], bearer(CLIENT_TOKEN))
    finally:
        await running.channel.close()
        await stop(running.sidecar, running.server)

    assert refused.code() == grpc.StatusCode.UNAUTHENTICATED
    assert allowed.budget.ref.version >= 1


@pytest.mark.parametrize("content", ["", "two words", "caf\u00e9"], ids=["empty", "space", "non-ascii"])
async def test_an_unusable_client_token_file_is_refused_naming_the_field(tmp_path, content):
    token_file = tmp_path / "client-token"
    token_file.write_text(content, encoding="utf-8")
    path = write_config(tmp_path, sidecar__client_token_file=str(token_file))

    with pytest.raises(ConfigError, match="sidecar.client_token_file: "):
        await start(load_config(path), clock=ManualClock(T0), config_path=str(path))


async def test_a_token_file_in_a_directory_others_may_write_is_refused_naming_the_field(tmp_path):
    """Found by a tester: another user replaced a 0600 admin token file in a directory open to
    all, and the next reload made their token the admin token, with no warning."""
    path = write_config(tmp_path)  # the admin token file beside it, in tmp_path
    (tmp_path / "admin-token").chmod(0o600)
    tmp_path.chmod(0o777)
    try:
        with pytest.raises(ConfigError, match=rf"sidecar.admin_token_file: the directory {tmp_path} \(mode 0777\) "
                                              "may be written by others"):
            await start(load_config(path), clock=ManualClock(T0), config_path=str(path))
    finally:
        tmp_path.chmod(0o700)


@pytest.mark.parametrize("section, key", [("sidecar", "client_token_file"), ("warmup", "path"),
                                          ("sidecar", "listen"), ("store", "path")])
@pytest.mark.parametrize("binary", [False, True], ids=["string", "!!binary"])
def test_a_nul_in_any_string_of_the_config_is_refused_naming_its_key(tmp_path, section, key, binary):
    """Found by reviewers: a NUL in a path raised ValueError past every check (start, check-config,
    reload), or named no field; then one written as `!!binary`, which becomes a string."""
    value = f"{tmp_path}/a\0b"
    path = write_config(tmp_path, **{f"{section}__{key}": value.encode() if binary else value})

    with pytest.raises(ConfigError, match=rf"{section}\.{key}: holds a NUL character"):
        load_config(path)


def test_aliases_chained_past_pythons_stack_are_refused_not_a_recursion_error(tmp_path):
    """Found by a reviewer: anchors 150 lists deep, each wrapping the one before, merged first
    into a mapping, took the NUL check past Python's stack (a traceback, exit 1)."""
    depth, links = 150, 6
    lines = ["extra:"] + [f"  k{i}: &a{i} " + "[" * depth + (f"*a{i - 1}" if i else "x") + "]" * depth
                          for i in range(links)] + [f"  <<: {{first: *a{links - 1}}}"]
    path = write_config(tmp_path)
    path.write_text(path.read_text() + "\n".join(lines) + "\n")

    with pytest.raises(ConfigError, match="not valid: nested too deeply"):
        load_config(path)


def test_a_yaml_alias_of_itself_is_refused_not_a_recursion_error(tmp_path):
    """Found by a reviewer: the NUL check walked `&a [*a]` for ever (RecursionError, a traceback)."""
    path = write_config(tmp_path)
    path.write_text(path.read_text() + "extra: &a [*a]\n")

    with pytest.raises(ConfigError, match="extra: unknown key"):
        load_config(path)


async def test_a_token_file_whose_path_changes_under_the_check_is_refused_naming_the_field(tmp_path, monkeypatch):
    """Found by a reviewer: a secret updated as it was read (its old directory gone mid-walk)
    raised FileNotFoundError, and a reload ended with no alert."""
    from riskbudget_sidecar.app import serve

    def gone(path):
        raise FileNotFoundError(2, "No such file or directory", str(path))
    monkeypatch.setattr(serve, "changeable_by_others", gone)
    path = write_config(tmp_path)

    with pytest.raises(ConfigError, match="sidecar.admin_token_file: cannot check who may change it: No such file"):
        await start(load_config(path), clock=ManualClock(T0), config_path=str(path))


async def test_a_reload_refuses_a_token_file_moved_where_others_may_change_it_and_keeps_the_tokens(tmp_path):
    running = await start_with_client_token(tmp_path)
    budget = SERVICE.methods_by_name["GetBudget"]
    reload_config = ADMIN_SERVICE.methods_by_name["ReloadConfig"]
    try:
        tmp_path.chmod(0o777)  # the directory of the token files, opened to everyone
        (tmp_path / "client-token").write_text("someone-elses-token\n")
        refused = await call(running.channel, reload_config, bearer(ADMIN_TOKEN), requested_by="pytest")
        theirs = await call(running.channel, budget, bearer("someone-elses-token"))
        kept = await call(running.channel, budget, bearer(CLIENT_TOKEN))
    finally:
        tmp_path.chmod(0o700)
        await running.channel.close()
        await stop(running.sidecar, running.server)

    assert not refused.reloaded
    assert refused.errors[0].startswith(f"sidecar.admin_token_file: the directory {tmp_path} (mode 0777) ")
    assert theirs.code() == grpc.StatusCode.PERMISSION_DENIED
    assert kept.budget.ref.version >= 1


@pytest.mark.parametrize("value", ["   ", "\n", ""], ids=["spaces", "newline", "empty"])
async def test_an_admin_token_env_of_blanks_turns_admin_off_and_spaces_grant_nothing(tmp_path, monkeypatch, value):
    monkeypatch.setenv("RB_TEST_ADMIN_TOKEN", value)
    data = config_data(sidecar__admin_token_env="RB_TEST_ADMIN_TOKEN", store__path=str(tmp_path / "state.sqlite3"))
    config = parse_config(data, source="test")
    sidecar, servers = await start(config, clock=ManualClock(T0))
    channel = grpc.aio.insecure_channel(servers.target)
    try:
        refused = await call(channel, ADMIN_SERVICE.methods_by_name["TriggerRebalance"], bearer("   "))
    finally:
        await channel.close()
        await stop(sidecar, servers)

    assert refused.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)


@pytest.mark.parametrize("value", ["two words", "caf\u00e9", "tab\tin"], ids=["space", "non-ascii", "tab"])
async def test_an_unusable_admin_token_is_refused_naming_the_field(tmp_path, monkeypatch, value):
    monkeypatch.setenv("RB_TEST_ADMIN_TOKEN", value)
    token_file = tmp_path / "admin-token"
    token_file.write_text(value, encoding="utf-8")
    from_env = parse_config(config_data(sidecar__admin_token_env="RB_TEST_ADMIN_TOKEN",
                                        store__path=str(tmp_path / "state.sqlite3")), source="test")
    from_file = load_config(write_config(tmp_path))
    token_file.write_text(value, encoding="utf-8")  # write_config wrote the test token there

    with pytest.raises(ConfigError, match="sidecar.admin_token_env: the token must be printable ASCII"):
        await start(from_env, clock=ManualClock(T0))
    with pytest.raises(ConfigError, match="sidecar.admin_token_file: the token must be printable ASCII"):
        await start(from_file, clock=ManualClock(T0))


# -- transport -----------------------------------------------------------------------------

async def test_the_unix_socket_is_0600_in_a_0700_directory(tmp_path):
    socket_path = tmp_path / "run" / "sidecar.sock"
    running = await start_harness(tmp_path, sidecar__listen=f"unix:{socket_path}")
    try:
        directory_mode = stat.S_IMODE(os.stat(socket_path.parent).st_mode)
        socket_mode = stat.S_IMODE(os.stat(socket_path).st_mode)
        is_socket = stat.S_ISSOCK(os.stat(socket_path).st_mode)
    finally:
        await running.channel.close()
        await stop(running.sidecar, running.server)

    assert (directory_mode, socket_mode, is_socket) == (0o700, 0o600, True)


async def test_every_socket_directory_the_sidecar_makes_is_0700_whatever_the_umask(tmp_path):
    """Found by a reviewer: under umask 000 the directories above the socket's were made 0777, and
    the sidecar refused the way it had made itself."""
    socket_path = tmp_path / "a" / "b" / "run" / "sidecar.sock"
    (tmp_path / "admin-token").touch(mode=0o600)  # rewritten, not made, under the umask below
    before = os.umask(0)
    try:
        running = await start_harness(tmp_path, sidecar__listen=f"unix:{socket_path}")
    finally:
        os.umask(before)
    try:
        modes = [stat.S_IMODE(os.stat(directory).st_mode)
                 for directory in (tmp_path / "a", tmp_path / "a" / "b", socket_path.parent)]
    finally:
        await running.channel.close()
        await stop(running.sidecar, running.server)

    assert modes == [0o700, 0o700, 0o700]


@pytest.mark.parametrize("mode", [0o755, 0o750, 0o701])
async def test_a_socket_directory_others_can_enter_is_refused_and_nothing_listens(tmp_path, mode):
    directory = tmp_path / "shared-run"
    directory.mkdir()
    directory.chmod(mode)

    with pytest.raises(OSError, match=rf"must belong to this user with mode 0700 \(it is uid \d+, mode 0{mode:o}\)"):
        await start_harness(tmp_path, sidecar__listen=f"unix:{directory / 'sidecar.sock'}")

    assert list(directory.iterdir()) == []


async def test_a_socket_path_through_a_directory_others_may_write_is_refused_and_nothing_listens(tmp_path):
    """Found by a tester: a link another user owned on the socket's path (the socket's own
    directory 0700, as required) let them swap in a socket of their own, which approved every
    order and read the client token. Every directory and link on the way is checked now."""
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    open_dir.chmod(0o777)

    with pytest.raises(OSError, match=rf"cannot listen on unix:{open_dir}/run/sidecar.sock: the directory "
                                      rf"{open_dir} \(mode 0777\) may be written by others"):
        await start_harness(tmp_path, sidecar__listen=f"unix:{open_dir / 'run' / 'sidecar.sock'}")

    assert not (open_dir / "run" / "sidecar.sock").exists()


@pytest.mark.parametrize("listen", ["unix:/tmp/pct%41dir/sidecar.sock", "unix://127.0.0.1/tmp/sidecar.sock"])
def test_a_unix_socket_path_grpc_would_read_as_a_uri_is_refused_naming_the_field(listen):
    """Found by a tester: gRPC decoded `%41` and bound `pctAdir`, not the directory checked."""
    with pytest.raises(ConfigError, match="sidecar.listen: a unix socket path may not hold '%' or begin with '//'"):
        parse_config(config_data(sidecar__listen=listen), source="c.yaml")


def test_a_unix_socket_path_longer_than_the_os_takes_is_refused_naming_the_field(tmp_path):
    directory = "/tmp/rb-" + "d" * 80 + "/"
    at_limit = directory + "s" * (107 - len(directory))
    too_long = at_limit + "s"

    parse_config(config_data(sidecar__listen=f"unix:{at_limit}"), source="c.yaml")
    with pytest.raises(ConfigError, match="sidecar.listen: the unix socket path is 108 bytes long; "
                                          "the OS takes at most 107"):
        parse_config(config_data(sidecar__listen=f"unix:{too_long}"), source="c.yaml")
    assert not os.path.exists(directory)


async def test_a_unix_socket_that_cannot_be_bound_is_an_error_naming_the_address(tmp_path):
    """Past the parsing (a ListenAddress made directly): gRPC's refusal, not its traceback."""
    directory = tmp_path / "run"
    directory.mkdir(mode=0o700)
    too_long = str(directory / ("s" * (108 - len(str(directory)) - 1)))
    server = grpc.aio.server()
    try:
        with pytest.raises(OSError, match=f"^cannot listen on unix:{too_long}: Failed to bind"):
            _bind(server, ListenAddress(None, None, too_long))
    finally:
        await server.stop(None)


async def test_a_socket_directory_that_cannot_be_made_is_an_error_naming_the_address(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    socket_path = blocker / "run" / "sidecar.sock"
    server = grpc.aio.server()
    try:
        with pytest.raises(OSError, match=f"^cannot listen on unix:{socket_path}: cannot create the "
                                          f"socket's directory {socket_path.parent}: Not a directory"):
            _bind(server, parse_listen_address(f"unix:{socket_path}"))
    finally:
        await server.stop(None)


@pytest.mark.parametrize("listen, refusal", [
    ("unix:@riskbudget", "abstract unix sockets are refused"),
    ("unix:\x00riskbudget", "holds a NUL character"),  # as any string of the config
], ids=["at", "nul"])
def test_an_abstract_unix_socket_is_refused_naming_the_field(listen, refusal):
    with pytest.raises(ConfigError, match=f"sidecar.listen: {refusal}"):
        parse_config(config_data(sidecar__listen=listen), source="c.yaml")


@pytest.mark.parametrize("listen", ["0.0.0.0:50051", "[::]:50051", "10.1.2.3:50051"])
def test_a_non_loopback_listen_without_tls_is_refused_naming_sidecar_tls(listen):
    data = config_data(sidecar__listen=listen, sidecar__allow_non_loopback=True)

    with pytest.raises(ConfigError, match=r"sidecar: sidecar.tls is required: listen .* is not loopback"):
        parse_config(data, source="c.yaml")


def test_a_non_loopback_listen_without_allow_non_loopback_is_refused():
    with pytest.raises(ConfigError, match="sidecar.listen: .*set sidecar.allow_non_loopback"):
        parse_config(config_data(sidecar__listen="0.0.0.0:50051"), source="c.yaml")


@pytest.mark.parametrize("listen", ["0.0.0.0:8081", "10.1.2.3:8081"])
def test_the_admin_http_port_off_loopback_is_refused_naming_the_field(listen):
    with pytest.raises(ConfigError, match="http.listen: the admin HTTP port binds loopback only"):
        parse_config(config_data(http__listen=listen), source="c.yaml")


async def test_a_non_loopback_listen_override_without_tls_is_refused_at_start(tmp_path):
    path = write_config(tmp_path, sidecar__allow_non_loopback=True)

    with pytest.raises(ConfigError, match="sidecar.tls is required: listen 0.0.0.0:0 is not loopback"):
        await start(load_config(path), listen="0.0.0.0:0", clock=ManualClock(T0), config_path=str(path))


async def test_the_bind_itself_refuses_a_non_loopback_address_without_tls():
    server = grpc.aio.server()

    with pytest.raises(ValueError, match="without TLS"):
        _bind(server, parse_listen_address("0.0.0.0:0", allow_non_loopback=True))
    await server.stop(None)


def test_the_default_config_still_loads_with_no_client_token_and_no_tls():
    config = load_config("config/default.yaml")

    assert config.sidecar.client_token_env is None and config.sidecar.client_token_file is None
    assert config.sidecar.tls is None


# -- tokens never logged -------------------------------------------------------------------

async def test_no_token_enters_a_log_event_whatever_the_renderer(guarded):
    """The event dicts themselves (what the JSON and the console renderers both print)."""
    wrong = "wr0ng-Token-5c3a1e"
    with structlog.testing.capture_logs() as events:
        for token in (wrong, CLIENT_TOKEN, ADMIN_TOKEN):
            await call(guarded.channel, ADMIN_SERVICE.methods_by_name["ListOverrides"], bearer(token))
            await call(guarded.channel, SERVICE.methods_by_name["GetBudget"], bearer(token))
            await call(guarded.channel, SERVICE.methods_by_name["StreamMarketData"], (("authorization", token),))
    rendered = [structlog.dev.ConsoleRenderer(colors=False)(None, "warning", dict(event)) for event in events] + [
        structlog.processors.JSONRenderer()(None, "warning", dict(event)) for event in events]

    assert {event["event"] for event in events} >= {"admin_refused", "admin_allowed", "client_refused"}
    for secret in (wrong, CLIENT_TOKEN, ADMIN_TOKEN):
        assert not any(secret in text for text in rendered)


# -- rotation ------------------------------------------------------------------------------

async def test_a_reload_rotates_the_tokens_in_their_files_and_keeps_them_when_a_file_is_unusable(tmp_path):
    running = await start_with_client_token(tmp_path)
    admin = ADMIN_SERVICE.methods_by_name["ListOverrides"]
    budget = SERVICE.methods_by_name["GetBudget"]
    reload_config = ADMIN_SERVICE.methods_by_name["ReloadConfig"]
    try:
        (tmp_path / "client-token").write_text("rotated-client-token-1\n")
        (tmp_path / "admin-token").write_text("rotated-admin-token-1\n")
        rotated = await call(running.channel, reload_config, bearer(ADMIN_TOKEN), requested_by="pytest")
        after = {name: await call(running.channel, method, bearer(token)) for name, method, token in (
            ("old client", budget, CLIENT_TOKEN), ("new client", budget, "rotated-client-token-1"),
            ("old admin", admin, ADMIN_TOKEN), ("new admin", admin, "rotated-admin-token-1"))}
        (tmp_path / "client-token").write_text("")
        refused = await call(running.channel, reload_config, bearer("rotated-admin-token-1"),
                             requested_by="pytest")
        kept = await call(running.channel, budget, bearer("rotated-client-token-1"))
        reloaded = [a.message for a in running.sidecar.alerts.recent(50, None)
                    if a.kind.name == "CONFIG_RELOADED"]
    finally:
        await running.channel.close()
        await stop(running.sidecar, running.server)

    assert rotated.reloaded
    assert after["old client"].code() == grpc.StatusCode.PERMISSION_DENIED
    assert after["new client"].budget.ref.version >= 1
    assert after["old admin"].code() == grpc.StatusCode.PERMISSION_DENIED
    assert isinstance(after["new admin"], apb.ListOverridesResponse)
    assert not refused.reloaded and refused.errors == ["sidecar.client_token_file: the file is empty"]
    assert kept.budget.ref.version >= 1
    assert reloaded == [f"config reloaded from {tmp_path / 'sidecar.yaml'} by pytest: changed sidecar tokens (rotated)"]


async def test_a_token_rotation_ends_the_streams_opened_before_it_with_their_resume_point(tmp_path):
    """Before, a recommendation stream opened with a token that a reload rotated out went on
    receiving recommendations, the leaked token still reading the firm's rebalancing."""
    running = await start_with_client_token(tmp_path)
    reload_config = ADMIN_SERVICE.methods_by_name["ReloadConfig"]
    try:
        await running.admin.TriggerRebalance(apb.TriggerRebalanceRequest(reason="r1", requested_by="pytest"),
                                             metadata=bearer(ADMIN_TOKEN))
        stream = running.stub.StreamRecommendations(spb.StreamRecommendationsRequest(), metadata=bearer(CLIENT_TOKEN))
        first = await stream.read()
        (tmp_path / "client-token").write_text("rotated-client-token-2\n")
        rotated = await call(running.channel, reload_config, bearer(ADMIN_TOKEN), requested_by="pytest")
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            await asyncio.wait_for(stream.read(), 30)  # a hang guard: without the rotation's end, it waits on
        trailing = dict(await stream.trailing_metadata() or ())
        again_old = running.stub.StreamRecommendations(spb.StreamRecommendationsRequest(), metadata=bearer(CLIENT_TOKEN))
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await again_old.read()
        again_new = running.stub.StreamRecommendations(spb.StreamRecommendationsRequest(),
                                                       metadata=bearer("rotated-client-token-2"))
        resumed = await again_new.read()
        again_new.cancel()
    finally:
        await running.channel.close()
        await stop(running.sidecar, running.server)

    assert rotated.reloaded and [r.sequence for r in first.recommendations] == [1]
    assert ended.value.code() == grpc.StatusCode.UNAVAILABLE and "tokens were rotated" in ended.value.details()
    assert trailing.get("riskbudget-resume-after") == "1"
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert [r.sequence for r in resumed.recommendations] == [1]


async def test_a_price_stream_opened_before_a_token_rotation_moves_no_price_after_it(tmp_path):
    """Found by a tester: a StreamMarketData call opened with the old client token went on
    publishing after the reload rotated it out."""
    running = await start_with_client_token(tmp_path)
    reload_config = ADMIN_SERVICE.methods_by_name["ReloadConfig"]
    rotated = asyncio.Event()
    try:
        prices = last_prices(running)

        async def batches():
            yield spb.StreamMarketDataRequest(ticks=[pb.PriceTick(symbol="AAA", price=prices["AAA"],
                                                                  time=timestamp(T0))])
            await rotated.wait()
            yield spb.StreamMarketDataRequest(ticks=[pb.PriceTick(symbol="AAA", price=prices["AAA"] * 1.04,
                                                                  time=timestamp(T0 + 1))])

        stream = running.stub.StreamMarketData(batches(), metadata=bearer(CLIENT_TOKEN))
        await asyncio.sleep(0.2)  # the first batch in
        (tmp_path / "client-token").write_text("rotated-client-token-3\n")
        reloaded = await call(running.channel, reload_config, bearer(ADMIN_TOKEN), requested_by="pytest")
        rotated.set()
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stream
        last = running.sidecar.snapshot.symbols["AAA"].last_price
    finally:
        await running.channel.close()
        await stop(running.sidecar, running.server)

    assert reloaded.reloaded
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED and "rotated" in refused.value.details()
    assert last == pytest.approx(prices["AAA"])  # the second batch moved nothing


async def test_streams_without_a_token_cannot_take_every_slot_from_the_trading_calls(tmp_path):
    running = await start_with_client_token(tmp_path, sidecar__max_concurrent_rpcs=8)  # 2 such streams at most
    health_stub = health_pb2_grpc.HealthStub(running.channel)
    reflection_stub = reflection_pb2_grpc.ServerReflectionStub(running.channel)
    asking = reflection_pb2.ServerReflectionRequest(list_services="")
    try:
        await running.sidecar.publish_prices(
            [PriceTick(symbol, price, T0) for symbol, price in last_prices(running).items()])
        watchers = [health_stub.Watch(health_pb2.HealthCheckRequest())]
        await watchers[-1].read()  # attached: it holds a slot
        watchers.append(reflection_stub.ServerReflectionInfo())
        await watchers[-1].write(asking)
        await watchers[-1].read()  # attached, and left open
        watchers.append(health_stub.Watch(health_pb2.HealthCheckRequest()))
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await watchers[-1].read()
        check = await running.stub.CheckTrade(spb.CheckTradeRequest(
            client_order_id="o-watched", strategy="trend", symbol="AAA", side=pb.SIDE_BUY, quantity=1),
            metadata=bearer(CLIENT_TOKEN))
        for watcher in watchers:
            watcher.cancel()
    finally:
        await running.channel.close()
        await stop(running.sidecar, running.server)

    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "health watchers and reflection streams" in refused.value.details()
    assert check.decision == pb.DECISION_APPROVED
