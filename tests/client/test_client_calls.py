"""Every call other than CheckTrade: what it sends, what it returns, how it
fails and which carry the admin token. Every test runs against both clients."""

import tempfile
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from riskbudget.v1 import risk_budget_admin_pb2 as admin_pb2
from riskbudget.v1 import risk_budget_service_pb2 as service_pb2
from riskbudget.v1 import types_pb2
from riskbudget_client import RiskBudgetClient, RiskBudgetError

ADMIN_CALLS = {
    "SetTradingState": lambda client: client.set_trading_state("halted", reason="drill"),
    "SetOverride": lambda client: client.set_override("global", "cap_leverage", value=1.0),
    "ClearOverride": lambda client: client.clear_override("ovr-1"),
    "ListOverrides": lambda client: client.list_overrides(),
    "TriggerRebalance": lambda client: client.trigger_rebalance("drift", "ops"),
    "ReloadConfig": lambda client: client.reload_config(),
}
READ_AND_FEED_CALLS = {
    "GetBudget": lambda client: client.get_budget(),
    "GetUtilization": lambda client: client.get_utilization(),
    "CheckTrade": lambda client: client.check_trade("o-1", "momentum", "AAPL", "buy", 1.0),
    "PublishMarketData": lambda client: client.publish_market_data([("AAPL", 187.5, 1.0)]),
    "ReportFill": lambda client: client.report_fill(
        "o-1", "momentum", "AAPL", "buy", 1, 187.5, 1.0
    ),
    "SetPositions": lambda client: client.set_positions([("momentum", "AAPL", 10.0)]),
    "ReleaseOrder": lambda client: client.release_order("o-1"),
    "ListAlerts": lambda client: client.list_alerts(),
    "GetStatus": lambda client: client.get_status(),
}


def timestamp(seconds, nanos=0):
    return Timestamp(seconds=seconds, nanos=nanos)


def test_get_budget_returns_the_budget_of_the_strategy_asked_for(client, sidecar):
    sidecar.budget = types_pb2.Budget(ref=types_pb2.BudgetRef(version=3), net_asset_value=1e6)

    response = client.get_budget("momentum")

    assert response.budget == sidecar.budget
    assert sidecar.requests["GetBudget"].strategy == "momentum"


def test_get_utilization_returns_the_reply(client, sidecar):
    response = client.get_utilization("momentum")

    assert response.near_limit_fraction == 0.8
    assert sidecar.requests["GetUtilization"].strategy == "momentum"


def test_a_failed_call_raises_risk_budget_error_with_code_and_details(client, sidecar):
    sidecar.failure = (grpc.StatusCode.FAILED_PRECONDITION, "no budget yet")

    with pytest.raises(RiskBudgetError) as raised:
        client.get_budget()

    assert raised.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert raised.value.details == "no budget yet"
    assert str(raised.value) == "GetBudget failed: FAILED_PRECONDITION: no budget yet"


def test_a_call_without_a_sidecar_raises_risk_budget_error(connect, dead_target):
    client = connect(dead_target)

    with pytest.raises(RiskBudgetError) as raised:
        client.release_order("o-1")

    assert raised.value.method == "ReleaseOrder"
    assert raised.value.code == grpc.StatusCode.UNAVAILABLE


def test_publish_market_data_sends_datetime_and_epoch_times(client, sidecar):
    noon = datetime(2024, 5, 1, 12, tzinfo=UTC)
    two_pm_in_paris = datetime(2024, 5, 1, 14, tzinfo=timezone(timedelta(hours=2)))

    response = client.publish_market_data(
        [("AAPL", 187.5, noon), ("MSFT", 402.0, 1714564800.25), ("SPY", 501.0, two_pm_in_paris)]
    )

    assert response.accepted == 3
    assert list(sidecar.requests["PublishMarketData"].ticks) == [
        types_pb2.PriceTick(symbol="AAPL", price=187.5, time=timestamp(1714564800)),
        types_pb2.PriceTick(symbol="MSFT", price=402.0, time=timestamp(1714564800, 250_000_000)),
        types_pb2.PriceTick(symbol="SPY", price=501.0, time=timestamp(1714564800)),
    ]


@pytest.mark.parametrize("time", [datetime(2024, 5, 1, 12), float("nan"), "2024-05-01", None])
def test_publish_market_data_refuses_a_time_that_is_not_a_moment(client, sidecar, time):
    with pytest.raises(ValueError, match="tick time must be"):
        client.publish_market_data([("AAPL", 187.5, time)])

    assert "PublishMarketData" not in sidecar.requests


def test_report_fill_sends_the_fill(client, sidecar):
    response = client.report_fill("o-1", "momentum", "AAPL", "sell", 40.0, 187.5, 1714564800)

    assert response.position.quantity == 40.0
    assert sidecar.requests["ReportFill"] == service_pb2.ReportFillRequest(
        client_order_id="o-1",
        strategy="momentum",
        symbol="AAPL",
        side=types_pb2.SIDE_SELL,
        quantity=40.0,
        price=187.5,
        time=timestamp(1714564800),
    )


def test_report_fill_sends_the_execution_id_given(client, sidecar):
    client.report_fill("o-1", "momentum", "AAPL", "buy", 1.0, 187.5, 1.0, execution_id="exec-9")

    assert sidecar.requests["ReportFill"].execution_id == "exec-9"


def test_set_positions_sends_the_rows_and_the_scope(client, sidecar):
    response = client.set_positions(
        [("momentum", "AAPL", 100.0), ("momentum", "MSFT", -20.0)], strategy="momentum"
    )

    assert response.positions == 2
    assert sidecar.requests["SetPositions"] == service_pb2.SetPositionsRequest(
        strategy="momentum",
        positions=[
            types_pb2.Position(strategy="momentum", symbol="AAPL", quantity=100.0),
            types_pb2.Position(strategy="momentum", symbol="MSFT", quantity=-20.0),
        ],
    )


def test_release_order_returns_whether_a_reservation_was_freed(client, sidecar):
    response = client.release_order("o-1")

    assert response.released
    assert sidecar.requests["ReleaseOrder"].client_order_id == "o-1"


def test_set_trading_state_sends_the_state_by_name(client, sidecar):
    response = client.set_trading_state(
        "reducing", strategy="momentum", reason="drill", set_by="ops"
    )

    assert response.state == types_pb2.TRADING_STATE_REDUCING
    assert sidecar.requests["SetTradingState"] == admin_pb2.SetTradingStateRequest(
        state=types_pb2.TRADING_STATE_REDUCING, strategy="momentum", reason="drill", set_by="ops"
    )


def test_set_trading_state_refuses_an_unknown_state(client):
    with pytest.raises(ValueError, match="state must be one of 'active', 'reducing', 'halted'"):
        client.set_trading_state("paused")


def test_set_override_sends_the_override(client, sidecar):
    expiry = datetime(2024, 5, 2, tzinfo=UTC)

    response = client.set_override(
        "global",
        types_pb2.OVERRIDE_KIND_FORCE_REGIME,
        regime="crisis",
        set_by="ops",
        reason="drill",
        expires_at=expiry,
    )

    assert response.override.id == "ovr-1"
    assert sidecar.requests["SetOverride"].override == types_pb2.Override(
        scope=types_pb2.OVERRIDE_SCOPE_GLOBAL,
        kind=types_pb2.OVERRIDE_KIND_FORCE_REGIME,
        regime=types_pb2.REGIME_CRISIS,
        set_by="ops",
        reason="drill",
        expires_at=timestamp(1714608000),
    )


def test_set_override_without_regime_or_expiry_leaves_them_unset(client, sidecar):
    client.set_override("symbol", "cap_symbol_position", target="AAPL", value=5e4)

    sent = sidecar.requests["SetOverride"].override
    assert (sent.target, sent.value, sent.regime) == ("AAPL", 5e4, types_pb2.REGIME_UNSPECIFIED)
    assert not sent.HasField("expires_at")


def test_clear_override_sends_the_id(client, sidecar):
    response = client.clear_override("ovr-1", cleared_by="ops", reason="done")

    assert response.cleared
    assert sidecar.requests["ClearOverride"] == admin_pb2.ClearOverrideRequest(
        id="ovr-1", cleared_by="ops", reason="done"
    )


def test_list_overrides_returns_them(client):
    response = client.list_overrides()

    assert [override.id for override in response.overrides] == ["ovr-1"]


def test_list_alerts_by_default_asks_for_every_severity_at_the_default_limit(client, sidecar):
    sidecar.alerts = [
        types_pb2.Alert(id=2, kind=types_pb2.ALERT_KIND_LIMIT_BREACHED),
        types_pb2.Alert(id=1, kind=types_pb2.ALERT_KIND_REGIME_CHANGE),
    ]

    response = client.list_alerts()

    assert [alert.id for alert in response.alerts] == [2, 1]
    assert sidecar.requests["ListAlerts"] == service_pb2.ListAlertsRequest(
        limit=0, min_severity=types_pb2.ALERT_SEVERITY_UNSPECIFIED
    )


@pytest.mark.parametrize("severity", ["warning", "ALERT_SEVERITY_WARNING", 2])
def test_list_alerts_sends_the_limit_and_the_least_severity(client, sidecar, severity):
    client.list_alerts(limit=10, min_severity=severity)

    assert sidecar.requests["ListAlerts"] == service_pb2.ListAlertsRequest(
        limit=10, min_severity=types_pb2.ALERT_SEVERITY_WARNING
    )


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"limit": -1}, "limit must be a whole number"),
        ({"limit": 2.5}, "limit must be a whole number"),
        ({"min_severity": "loud"}, "min_severity must be one of 'info', 'warning', 'critical'"),
        ({"min_severity": "unspecified"}, "min_severity must be one of"),
    ],
)
def test_list_alerts_refuses_a_bad_limit_or_severity(client, sidecar, arguments, message):
    with pytest.raises(ValueError, match=message):
        client.list_alerts(**arguments)

    assert "ListAlerts" not in sidecar.requests


def test_get_status_returns_the_sidecars_state(client, sidecar):
    sidecar.status = service_pb2.GetStatusResponse(
        last_recommendation_sequence=42, oldest_recommendation_sequence=7, subscribers=2
    )

    response = client.get_status()

    assert response == sidecar.status
    assert sidecar.requests["GetStatus"] == service_pb2.GetStatusRequest()


def test_trigger_rebalance_returns_the_recommendation(client, sidecar):
    response = client.trigger_rebalance("drift", "ops")

    assert response.recommendation.reason == "drift"
    assert sidecar.requests["TriggerRebalance"].requested_by == "ops"


def test_reload_config_returns_the_result(client):
    response = client.reload_config()

    assert response.reloaded


@pytest.mark.parametrize("method", ADMIN_CALLS)
def test_admin_calls_carry_the_admin_token(client, sidecar, method):
    ADMIN_CALLS[method](client)

    assert sidecar.metadata[method]["authorization"] == "Bearer test-admin-token"


@pytest.mark.parametrize("method", READ_AND_FEED_CALLS)
def test_other_calls_do_not_carry_the_admin_token(client, sidecar, method):
    READ_AND_FEED_CALLS[method](client)

    assert "authorization" not in sidecar.metadata[method]


def test_admin_calls_without_a_token_carry_no_authorization(connect, sidecar, target):
    client = connect(target, admin_token=None)

    client.reload_config()

    assert "authorization" not in sidecar.metadata["ReloadConfig"]


@pytest.mark.parametrize("option", ["admin_token", "client_token"])
@pytest.mark.parametrize("token", ["s3cret\n", "s3 cret", "", "s\u00e9cret"], ids=["newline", "space", "empty", "non-ascii"])
def test_a_token_that_cannot_be_a_header_is_refused_naming_it(connect, target, option, token):
    with pytest.raises(ValueError, match=f"{option} must be printable ASCII"):
        connect(target, **{option: token})


def test_a_client_reaches_the_sidecar_over_a_unix_socket(connect, sidecar, start_server):
    with tempfile.TemporaryDirectory(prefix="rb-") as folder:
        path = Path(folder) / "sidecar.sock"
        start_server(f"unix:{path}")
        client = connect(f"unix:{path}")

        response = client.check_trade("o-1", "momentum", "AAPL", "buy", 10.0)

    assert response.decision == types_pb2.DECISION_APPROVED


@pytest.mark.parametrize("option", ["timeout", "check_trade_timeout"])
@pytest.mark.parametrize("seconds", [0, -1.0, float("inf"), float("nan")])
def test_a_client_refuses_a_timeout_that_is_not_positive_seconds(option, seconds):
    with pytest.raises(ValueError, match=f"{option} must be a positive number of seconds"):
        RiskBudgetClient("127.0.0.1:1", **{option: seconds})


def test_a_client_closes_when_its_with_block_ends(target):
    with RiskBudgetClient(target) as client:
        client.get_budget()

    with pytest.raises(ValueError, match="closed channel"):
        client.get_budget()
