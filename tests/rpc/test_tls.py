"""sidecar.tls: the gRPC listener over TLS (and mutual TLS), with certificates from tests/pki.py."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from riskbudget.v1 import risk_budget_service_pb2 as spb
from riskbudget.v1 import risk_budget_service_pb2_grpc
from riskbudget.v1 import types_pb2 as pb
from riskbudget_client import AsyncRiskBudgetClient, RiskBudgetClient
from riskbudget_sidecar.app.serve import start, stop
from riskbudget_sidecar.engine.types import PriceTick
from riskbudget_sidecar.service.clock import ManualClock
from riskbudget_sidecar.service.config_file import ConfigError, load_config
from tests.pki import NAMED_SERVER, Pem, Pki, issue, make_pki
from tests.rpc.conftest import T0, write_config


@pytest.fixture
def pki(tmp_path) -> Pki:
    return make_pki(tmp_path / "pki")


async def start_tls_sidecar(tmp_path, pki: Pki, *, mutual: bool = False, certificate: Pem | None = None):
    """Listening with `certificate` (pki.server: for 127.0.0.1 and localhost)."""
    certificate = certificate or pki.server
    tls = {"cert_file": pki.write("server.pem", certificate.cert),
           "key_file": pki.write("server.key", certificate.key)}
    if mutual:
        tls["client_ca_file"] = pki.write("ca.pem", pki.ca.cert)
    path = write_config(tmp_path, sidecar__allow_non_loopback=True, sidecar__tls=tls)
    return await start(load_config(path), clock=ManualClock(T0), config_path=str(path))


async def budget_over_tls(tmp_path, pki: Pki, credentials: grpc.ChannelCredentials | None, *,
                          mutual: bool = False):
    """GetBudget from a sidecar listening with TLS, through a channel with `credentials`
    (None: plaintext)."""
    sidecar, servers = await start_tls_sidecar(tmp_path, pki, mutual=mutual)
    try:
        channel = (grpc.aio.insecure_channel(servers.target) if credentials is None
                   else grpc.aio.secure_channel(servers.target, credentials))
        async with channel:
            return await risk_budget_service_pb2_grpc.RiskBudgetServiceStub(channel).GetBudget(
                spb.GetBudgetRequest(), timeout=5)
    finally:
        await stop(sidecar, servers)


async def test_a_tls_listener_serves_a_client_that_trusts_its_certificate(tmp_path, pki):
    reply = await budget_over_tls(tmp_path, pki, grpc.ssl_channel_credentials(root_certificates=pki.ca.cert))

    assert reply.budget.ref.version >= 1


async def test_a_tls_listener_refuses_a_plaintext_client(tmp_path, pki):
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await budget_over_tls(tmp_path, pki, None)

    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_a_tls_listener_refuses_a_client_that_does_not_trust_its_certificate(tmp_path, pki):
    other_ca, _ = issue("another CA", ca=True)

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await budget_over_tls(tmp_path, pki, grpc.ssl_channel_credentials(root_certificates=other_ca.cert))

    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_the_python_client_checks_trades_over_tls(tmp_path, pki):
    sidecar, servers = await start_tls_sidecar(tmp_path, pki)
    try:
        prices = [(s, sidecar.snapshot.symbols[s].last_price, T0) for s in sidecar.snapshot.symbols]
        credentials = grpc.ssl_channel_credentials(root_certificates=pki.ca.cert)
        async with AsyncRiskBudgetClient(servers.target, credentials=credentials,
                                         check_trade_timeout=5) as client:
            await client.publish_market_data(prices)
            decision = await client.check_trade("o-1", "trend", "AAA", "buy", 10)
    finally:
        await stop(sidecar, servers)

    assert decision.decision == pb.DECISION_APPROVED


@pytest.mark.parametrize("client_class", [AsyncRiskBudgetClient, RiskBudgetClient])
@pytest.mark.parametrize("server_name, answered", [(NAMED_SERVER, True), (None, False), ("other.test", False)])
async def test_the_python_clients_reach_a_sidecar_whose_certificate_names_another_host_only_when_told_the_name(
        tmp_path, pki, client_class, server_name, answered):
    """The sidecar at 127.0.0.1 (as through a tunnel), its certificate for NAMED_SERVER alone:
    without the name, or with another, the handshake fails and the order is the client's own
    rejection."""
    sidecar, servers = await start_tls_sidecar(tmp_path, pki, certificate=pki.named_server)
    try:
        await sidecar.publish_prices([PriceTick(s, b.last_price, T0) for s, b in sidecar.snapshot.symbols.items()])
        credentials = grpc.ssl_channel_credentials(root_certificates=pki.ca.cert)
        client = client_class(servers.target, credentials=credentials, tls_server_name=server_name,
                              check_trade_timeout=5)
        try:
            if client_class is AsyncRiskBudgetClient:
                decision = await client.check_trade("o-1", "trend", "AAA", "buy", 10)
            else:  # the sidecar runs on this event loop: the blocking client calls from a thread
                decision = await asyncio.to_thread(client.check_trade, "o-1", "trend", "AAA", "buy", 10)
        finally:
            closed = client.close()
            if closed is not None:
                await closed
    finally:
        await stop(sidecar, servers)

    if answered:
        assert decision.decision == pb.DECISION_APPROVED
    else:
        assert decision.decision == pb.DECISION_REJECTED and decision.approved_quantity == 0
        assert [r.code for r in decision.reasons] == [pb.REASON_CODE_SIDECAR_UNAVAILABLE]


@pytest.mark.parametrize("client_class", [AsyncRiskBudgetClient, RiskBudgetClient])
@pytest.mark.parametrize("server_name, credentials, refusal", [
    ("riskbudget.test", None, "tls_server_name needs credentials"),
    ("", grpc.ssl_channel_credentials(), "tls_server_name must be a host name, got ''"),
    ("a b", grpc.ssl_channel_credentials(), "tls_server_name must be a host name, got 'a b'"),
    ("a\x00", grpc.ssl_channel_credentials(), "tls_server_name must be a host name"),
])
async def test_a_tls_server_name_that_cannot_be_used_is_refused_naming_it(client_class, server_name, credentials,
                                                                          refusal):
    with pytest.raises(ValueError, match=refusal):
        client_class("127.0.0.1:1", credentials=credentials, tls_server_name=server_name)


async def test_mutual_tls_serves_a_client_with_a_certificate_from_the_client_ca(tmp_path, pki):
    credentials = grpc.ssl_channel_credentials(
        root_certificates=pki.ca.cert, private_key=pki.client.key, certificate_chain=pki.client.cert)

    reply = await budget_over_tls(tmp_path, pki, credentials, mutual=True)

    assert reply.budget.ref.version >= 1


async def test_mutual_tls_refuses_a_client_without_a_certificate(tmp_path, pki):
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await budget_over_tls(tmp_path, pki, grpc.ssl_channel_credentials(root_certificates=pki.ca.cert),
                              mutual=True)

    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize("field", ["cert_file", "key_file", "client_ca_file"])
async def test_a_missing_tls_file_is_refused_at_start_naming_the_field(tmp_path, pki, field):
    tls = {"cert_file": pki.write("server.pem", pki.server.cert),
           "key_file": pki.write("server.key", pki.server.key),
           "client_ca_file": pki.write("ca.pem", pki.ca.cert)}
    tls[field] = str(tmp_path / "missing.pem")
    path = write_config(tmp_path, sidecar__allow_non_loopback=True, sidecar__tls=tls)

    with pytest.raises(ConfigError, match=f"sidecar.tls.{field}: cannot read .*missing.pem"):
        await start(load_config(path), clock=ManualClock(T0), config_path=str(path))


@pytest.mark.parametrize("field, kind", [("cert_file", "CERTIFICATE"), ("key_file", "PRIVATE KEY")])
async def test_a_tls_file_that_is_not_pem_is_refused_at_start_naming_the_field(tmp_path, pki, field, kind):
    tls = {"cert_file": pki.write("server.pem", pki.server.cert),
           "key_file": pki.write("server.key", pki.server.key)}
    tls[field] = pki.write("garbage", b"not a pem file\n")
    path = write_config(tmp_path, sidecar__allow_non_loopback=True, sidecar__tls=tls)

    with pytest.raises(ConfigError, match=f"sidecar.tls.{field}: .* holds no PEM {kind}"):
        await start(load_config(path), clock=ManualClock(T0), config_path=str(path))


def test_tls_without_a_key_file_is_refused_naming_the_field(tmp_path):
    from riskbudget_sidecar.service.config_file import parse_config
    from tests.rpc.conftest import config_data

    data = config_data(sidecar__tls={"cert_file": "/x/server.pem"})

    with pytest.raises(ConfigError, match="sidecar.tls.key_file: Field required"):
        parse_config(data, source="c.yaml")
