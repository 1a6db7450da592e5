"""Tokens never show: a real `riskbudget serve` with an admin, a client and a read token, called with
right, wrong and misplaced tokens over gRPC and HTTP; no token string appears in its JSON log,
in an error returned to a caller, in the alerts, the status or the Prometheus metrics."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request

import grpc
import pytest
import yaml

from riskbudget.v1 import risk_budget_admin_pb2 as apb
from riskbudget.v1 import risk_budget_admin_pb2_grpc
from riskbudget.v1 import risk_budget_service_pb2 as spb
from riskbudget.v1 import risk_budget_service_pb2_grpc
from riskbudget_client import RiskBudgetClient, RiskBudgetError

from .test_serve_process import ROOT, read_events

ADMIN_TOKEN = "adm1n-s3cret-Token-4f1c9a"
CLIENT_TOKEN = "cl1ent-s3cret-Token-7b2e0d"
READ_TOKEN = "r3ad-s3cret-Token-2a8c5f"
WRONG_TOKENS = ("wr0ng-guess-Token-19ab37", "adm1n-s3cret-Token-4f1c9b")
SECRETS = (ADMIN_TOKEN, CLIENT_TOKEN, READ_TOKEN, *WRONG_TOKENS)


@pytest.fixture
def sidecar(tmp_path):
    config = yaml.safe_load((ROOT / "config" / "default.yaml").read_text())
    config["sidecar"].update(listen="127.0.0.1:0", log_level="debug", client_token_env="RB_E2E_CLIENT_TOKEN",
                             read_token_env="RB_E2E_READ_TOKEN")
    config["http"] = {"listen": "127.0.0.1:0"}
    config["store"] = {"path": str(tmp_path / "state.sqlite3")}
    path = tmp_path / "sidecar.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {**os.environ, "RISKBUDGET_ADMIN_TOKEN": ADMIN_TOKEN, "RB_E2E_CLIENT_TOKEN": CLIENT_TOKEN,
           "RB_E2E_READ_TOKEN": READ_TOKEN}
    process = subprocess.Popen(
        [sys.executable, "-m", "riskbudget_sidecar.app.cli", "serve", "--config", str(path)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        started = read_events(process, "serving")
        yield process, [json.dumps(event) for event in started], started[-1]
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)


def bearer(token: str) -> tuple:
    return (("authorization", f"Bearer {token}"),)


def grpc_error_text(call) -> str:
    """Everything a refused gRPC caller sees of its error."""
    try:
        call()
    except grpc.RpcError as error:
        return " ".join(str(part) for part in (
            error.code(), error.details(), error.debug_error_string(), error.trailing_metadata(),
            error.initial_metadata(), error))
    return ""


def http(url: str, path: str, token: str | None, method: str = "POST", body: dict | None = None) -> str:
    """Status, headers and body of an admin HTTP request, whatever its status."""
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body or {}).encode() if method != "GET" else None
    request = urllib.request.Request(url + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return f"{response.status} {dict(response.headers)} {response.read().decode()}"
    except urllib.error.HTTPError as error:
        return f"{error.code} {dict(error.headers)} {error.read().decode()}"


def test_no_token_shows_in_logs_errors_alerts_status_or_metrics(sidecar):
    process, lines, serving = sidecar
    target, url = serving["target"], serving["http_url"]
    seen: list[str] = []  # everything a caller was shown

    with grpc.insecure_channel(target) as channel:
        service = risk_budget_service_pb2_grpc.RiskBudgetServiceStub(channel)
        admin = risk_budget_admin_pb2_grpc.RiskBudgetAdminServiceStub(channel)
        check = spb.CheckTradeRequest(client_order_id="s-1", strategy="equity_momentum", symbol="SPY",
                                      side=1, quantity=1)
        for token in (*WRONG_TOKENS, CLIENT_TOKEN, READ_TOKEN):  # admin calls with wrong or misplaced tokens
            seen.append(grpc_error_text(lambda: admin.ListOverrides(apb.ListOverridesRequest(),
                                                                    metadata=bearer(token), timeout=10)))
            seen.append(grpc_error_text(lambda: admin.SetTradingState(
                apb.SetTradingStateRequest(state=3, reason="t"), metadata=bearer(token), timeout=10)))
        seen.append(grpc_error_text(lambda: admin.ListOverrides(
            apb.ListOverridesRequest(), metadata=(("authorization", ADMIN_TOKEN),), timeout=10)))
        for token in WRONG_TOKENS:  # client calls with wrong tokens, one as a bare value
            seen.append(grpc_error_text(lambda: service.CheckTrade(check, metadata=bearer(token), timeout=10)))
            seen.append(grpc_error_text(lambda: service.GetBudget(
                spb.GetBudgetRequest(), metadata=(("authorization", token),), timeout=10)))
            seen.append(grpc_error_text(lambda: list(service.StreamRecommendations(
                spb.StreamRecommendationsRequest(), metadata=bearer(token), timeout=10))))
        seen.append(grpc_error_text(lambda: service.CheckTrade(check, timeout=10)))
        # the read token beyond its scope: a check that reserves, a price
        seen.append(grpc_error_text(lambda: service.CheckTrade(check, metadata=bearer(READ_TOKEN), timeout=10)))
        seen.append(grpc_error_text(lambda: service.PublishMarketData(
            spb.PublishMarketDataRequest(), metadata=bearer(READ_TOKEN), timeout=10)))
        # the right tokens, each in its scope
        admin.ListOverrides(apb.ListOverridesRequest(), metadata=bearer(ADMIN_TOKEN), timeout=10)
        service.GetBudget(spb.GetBudgetRequest(), metadata=bearer(CLIENT_TOKEN), timeout=10)
        service.GetBudget(spb.GetBudgetRequest(), metadata=bearer(ADMIN_TOKEN), timeout=10)
        service.GetBudget(spb.GetBudgetRequest(), metadata=bearer(READ_TOKEN), timeout=10)
        dry_run = spb.CheckTradeRequest(client_order_id="s-4", strategy="equity_momentum", symbol="SPY",
                                        side=1, quantity=1, dry_run=True)
        seen.append(str(service.CheckTrade(dry_run, metadata=bearer(READ_TOKEN), timeout=10)))
        seen.append(str(service.CheckTrade(check, metadata=bearer(CLIENT_TOKEN), timeout=10)))

    with RiskBudgetClient(target, admin_token=WRONG_TOKENS[0], client_token=WRONG_TOKENS[1]) as client:
        seen.append(str(client.check_trade("s-2", "equity_momentum", "SPY", "buy", 1)))
        with pytest.raises(RiskBudgetError) as refused:
            client.list_overrides()
        seen.append(str(refused.value))
    with RiskBudgetClient(target, admin_token=ADMIN_TOKEN, client_token=CLIENT_TOKEN) as client:
        seen.append(str(client.list_alerts(limit=100)))
        seen.append(str(client.get_status()))
        seen.append(str(client.check_trade("s-3", "equity_momentum", "SPY", "buy", 1)))

    for token in (*WRONG_TOKENS, CLIENT_TOKEN, READ_TOKEN, None):
        seen.append(http(url, "/api/trading-state", token, body={"state": "TRADING_STATE_HALTED"}))
        seen.append(http(url, "/api/rebalance", token, body={"reason": "t", "requested_by": "t"}))
    seen.append(http(url, "/api/rebalance", ADMIN_TOKEN, body={"reason": "t", "requested_by": "t"}))
    for token in (*WRONG_TOKENS, None):
        seen.append(http(url, "/api/status", token, method="GET"))
        seen.append(http(url, "/metrics", token, method="GET"))
    seen.append(http(url, "/api/status", READ_TOKEN, method="GET"))
    metrics = http(url, "/metrics", READ_TOKEN, method="GET")
    seen.append(metrics)

    process.send_signal(signal.SIGTERM)
    rest = [json.dumps(event) for event in read_events(process, "stopped")]
    log = "".join(lines + rest)

    assert "admin_refused" in log and "client_refused" in log and "admin_allowed" in log  # it did log them
    assert "client token cannot make admin calls" in " ".join(seen)  # the refusals were made
    assert "read token cannot make admin calls" in " ".join(seen)
    assert "read token can call CheckTrade only with dry_run" in " ".join(seen)
    assert "read token cannot call PublishMarketData" in " ".join(seen)
    assert "riskbudget_" in metrics
    for secret in SECRETS:
        assert secret not in log, f"a token is in the log: {secret}"
        for text in seen:
            assert secret not in text, f"a token was shown to a caller: {secret} in {text[:300]}"
