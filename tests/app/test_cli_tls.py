"""The `riskbudget` client commands over TLS: --tls-ca, --tls-cert/--tls-key, --tls,
--tls-server-name and the RISKBUDGET_TLS_* variables, against a sidecar listening with TLS
(certificates from tests/pki.py)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass

import pytest

from riskbudget_sidecar.app.cli import main
from riskbudget_sidecar.app.serve import stop
from riskbudget_sidecar.engine.types import PriceTick
from tests.pki import NAMED_SERVER, Pem, Pki, issue, make_pki
from tests.rpc.conftest import T0
from tests.rpc.test_tls import start_tls_sidecar

CHECK_TRADE = ["check-trade", "--strategy", "trend", "--symbol", "AAA", "--side", "buy", "--quantity", "10"]


@pytest.fixture
def pki(tmp_path) -> Pki:
    return make_pki(tmp_path / "pki")


@pytest.fixture(autouse=True)
def no_tls_environment(monkeypatch):
    for name in ("RISKBUDGET_TLS_CA", "RISKBUDGET_TLS_CERT", "RISKBUDGET_TLS_KEY", "RISKBUDGET_TLS_SERVER_NAME"):
        monkeypatch.delenv(name, raising=False)


@dataclass
class Run:
    code: int
    out: str
    err: str


async def cli_against_tls_sidecar(tmp_path, pki: Pki, capsys, *argv: str, mutual: bool = False,
                                  fresh_prices: bool = False, certificate: Pem | None = None) -> Run:
    """`riskbudget ARGV --target SIDECAR` run while a TLS sidecar serves (with `certificate`,
    pki.server by default); its exit code and output, without the sidecar's logs."""
    sidecar, servers = await start_tls_sidecar(tmp_path, pki, mutual=mutual, certificate=certificate)
    try:
        if fresh_prices:
            await sidecar.publish_prices(
                [PriceTick(s, b.last_price, T0) for s, b in sidecar.snapshot.symbols.items()])
        capsys.readouterr()
        code = await asyncio.to_thread(main, [*argv, "--target", servers.target])
        return Run(code, *capsys.readouterr())
    finally:
        await stop(sidecar, servers)


def assert_one_line_failure(run: Run, *fragments: str) -> None:
    assert run.code == 1
    assert run.out == ""
    assert run.err.startswith("riskbudget: GetBudget failed: UNAVAILABLE")
    assert run.err.count("\n") == 1
    for fragment in fragments:
        assert fragment in run.err


def the_ca(pki: Pki) -> list[str]:
    """--tls-ca with the CA that signed the sidecar's certificate."""
    return ["--tls-ca", pki.write("ca.pem", pki.ca.cert)]


def no_sidecar(tmp_path) -> list[str]:
    """A --target where nothing listens: these commands must stop before they connect."""
    return ["--target", f"unix:{tmp_path}/no-sidecar.sock"]


def client_certificate_options(pki: Pki) -> dict[str, str]:
    return {"--tls-cert": pki.write("client.pem", pki.client.cert),
            "--tls-key": pki.write("client.key", pki.client.key)}


def as_argv(options: dict[str, str]) -> list[str]:
    return [part for pair in options.items() for part in pair]


async def test_budget_with_the_ca_that_signed_the_sidecar_certificate(tmp_path, pki, capsys):
    run = await cli_against_tls_sidecar(tmp_path, pki, capsys, "budget", *the_ca(pki))

    assert (run.code, run.err) == (0, "")
    assert run.out.startswith("budget v1")


async def test_budget_without_tls_options_against_a_tls_sidecar_fails_in_one_line(tmp_path, pki, capsys):
    run = await cli_against_tls_sidecar(tmp_path, pki, capsys, "budget")

    assert_one_line_failure(run)


async def test_a_ca_that_did_not_sign_the_sidecar_certificate_is_refused(tmp_path, pki, capsys):
    other_ca, _ = issue("another CA", ca=True)

    run = await cli_against_tls_sidecar(tmp_path, pki, capsys, "budget",
                                        "--tls-ca", pki.write("other.pem", other_ca.cert))

    assert_one_line_failure(run, "CERTIFICATE_VERIFY_FAILED")


async def test_tls_alone_verifies_against_the_system_trust_store(tmp_path, pki, capsys):
    # The test CA is in no system trust store: a failed certificate check shows that TLS was on.
    run = await cli_against_tls_sidecar(tmp_path, pki, capsys, "budget", "--tls")

    assert_one_line_failure(run, "CERTIFICATE_VERIFY_FAILED")


async def test_mutual_tls_with_a_client_certificate(tmp_path, pki, capsys):
    run = await cli_against_tls_sidecar(tmp_path, pki, capsys, "budget", *the_ca(pki),
                                        *as_argv(client_certificate_options(pki)), mutual=True)

    assert (run.code, run.err) == (0, "")
    assert run.out.startswith("budget v1")


async def test_mutual_tls_without_a_client_certificate_is_refused(tmp_path, pki, capsys):
    run = await cli_against_tls_sidecar(tmp_path, pki, capsys, "budget", *the_ca(pki), mutual=True)

    assert_one_line_failure(run)


async def test_the_environment_gives_the_ca_and_the_client_certificate(tmp_path, pki, capsys, monkeypatch):
    monkeypatch.setenv("RISKBUDGET_TLS_CA", pki.write("ca.pem", pki.ca.cert))
    client = client_certificate_options(pki)
    monkeypatch.setenv("RISKBUDGET_TLS_CERT", client["--tls-cert"])
    monkeypatch.setenv("RISKBUDGET_TLS_KEY", client["--tls-key"])

    run = await cli_against_tls_sidecar(tmp_path, pki, capsys, "budget", mutual=True)

    assert (run.code, run.err) == (0, "")
    assert run.out.startswith("budget v1")


async def test_an_option_overrides_the_environment(tmp_path, pki, capsys, monkeypatch):
    other_ca, _ = issue("another CA", ca=True)
    monkeypatch.setenv("RISKBUDGET_TLS_CA", pki.write("other.pem", other_ca.cert))

    run = await cli_against_tls_sidecar(tmp_path, pki, capsys, "budget", *the_ca(pki))

    assert (run.code, run.err) == (0, "")
    assert run.out.startswith("budget v1")


async def test_check_trade_over_tls_approves(tmp_path, pki, capsys):
    run = await cli_against_tls_sidecar(tmp_path, pki, capsys, *CHECK_TRADE, *the_ca(pki), fresh_prices=True)

    assert run.code == 0
    assert json.loads(run.out)["decision"] == "DECISION_APPROVED"


async def test_check_trade_without_tls_against_a_tls_sidecar_rejects(tmp_path, pki, capsys):
    run = await cli_against_tls_sidecar(tmp_path, pki, capsys, *CHECK_TRADE, fresh_prices=True)

    assert run.code == 3
    reply = json.loads(run.out)
    assert reply["decision"] == "DECISION_REJECTED"
    assert [reason["code"] for reason in reply["reasons"]] == ["REASON_CODE_SIDECAR_UNAVAILABLE"]


async def test_check_trade_past_its_timeout_is_rejected_not_approved(tmp_path, pki, capsys):
    run = await cli_against_tls_sidecar(tmp_path, pki, capsys, *CHECK_TRADE, *the_ca(pki), "--timeout", "1e-6",
                                        fresh_prices=True)

    assert run.code == 3
    reply = json.loads(run.out)
    assert reply["decision"] == "DECISION_REJECTED"
    assert [reason["code"] for reason in reply["reasons"]] == ["REASON_CODE_SIDECAR_UNAVAILABLE"]
    assert "DEADLINE_EXCEEDED" in reply["reasons"][0]["message"]


@pytest.mark.parametrize("timeout", ["0", "-1", "nan", "inf", "soon"])
def test_a_check_trade_timeout_that_is_not_a_positive_number_of_seconds_exits_2(tmp_path, capsys, timeout):
    with pytest.raises(SystemExit) as exited:
        main([*CHECK_TRADE, "--timeout", timeout, *no_sidecar(tmp_path)])

    assert exited.value.code == 2
    number = "a finite number" if timeout == "inf" else "a number"
    assert f"--timeout: must be {number} of seconds > 0, got {timeout!r}" in capsys.readouterr().err


async def test_the_server_name_reaches_a_sidecar_whose_certificate_names_another_host(tmp_path, pki, capsys):
    run = await cli_against_tls_sidecar(tmp_path, pki, capsys, "budget", *the_ca(pki),
                                        "--tls-server-name", NAMED_SERVER, certificate=pki.named_server)

    assert (run.code, run.err) == (0, "")
    assert run.out.startswith("budget v1")


async def test_the_environment_gives_the_server_name(tmp_path, pki, capsys, monkeypatch):
    monkeypatch.setenv("RISKBUDGET_TLS_SERVER_NAME", NAMED_SERVER)

    run = await cli_against_tls_sidecar(tmp_path, pki, capsys, "budget", *the_ca(pki),
                                        certificate=pki.named_server)

    assert (run.code, run.err) == (0, "")


@pytest.mark.parametrize("server_name", [[], ["--tls-server-name", "other.test"]])
async def test_without_the_name_on_the_sidecar_certificate_the_command_fails_in_one_line(
        tmp_path, pki, capsys, server_name):
    run = await cli_against_tls_sidecar(tmp_path, pki, capsys, "budget", *the_ca(pki), *server_name,
                                        certificate=pki.named_server)

    assert_one_line_failure(run)


async def test_the_server_name_alone_turns_tls_on(tmp_path, pki, capsys):
    # Verified against the system's trust store, where the test CA is not.
    run = await cli_against_tls_sidecar(tmp_path, pki, capsys, "budget", "--tls-server-name", NAMED_SERVER,
                                        certificate=pki.named_server)

    assert_one_line_failure(run, "CERTIFICATE_VERIFY_FAILED")


@pytest.mark.parametrize("server_name", ["", "two words", "tab\there"])
def test_a_server_name_that_is_no_host_name_exits_2_naming_the_option(tmp_path, pki, capsys, server_name):
    code = main(["budget", *the_ca(pki), "--tls-server-name", server_name, *no_sidecar(tmp_path)])

    assert code == 2
    assert capsys.readouterr().err == (f"--tls-server-name: tls_server_name must be a host name, "
                                       f"got {server_name!r}\n")


@pytest.mark.parametrize("given, missing", [("--tls-cert", "--tls-key"), ("--tls-key", "--tls-cert")])
def test_a_client_certificate_without_its_key_or_the_reverse_exits_2(tmp_path, pki, capsys, given, missing):
    code = main(["budget", given, client_certificate_options(pki)[given], *no_sidecar(tmp_path)])

    assert code == 2
    assert capsys.readouterr().err == (f"{given} needs {missing}: mutual TLS takes a client certificate "
                                       "and its key\n")


@pytest.mark.parametrize("option", ["--tls-ca", "--tls-cert", "--tls-key"])
def test_a_missing_file_exits_2_naming_the_option(tmp_path, pki, capsys, option):
    options = client_certificate_options(pki)
    options[option] = str(tmp_path / "missing.pem")

    code = main(["status", *as_argv(options), *no_sidecar(tmp_path)])

    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{option}: cannot read {tmp_path / 'missing.pem'}: ")
    assert err.count("\n") == 1


@pytest.mark.parametrize("content", ["not PEM", "the other PEM kind"])
@pytest.mark.parametrize("option, kind", [("--tls-ca", "CERTIFICATE"), ("--tls-cert", "CERTIFICATE"),
                                          ("--tls-key", "PRIVATE KEY")])
def test_a_file_without_the_right_pem_block_exits_2_naming_the_option(tmp_path, pki, capsys, option, kind,
                                                                       content):
    other_kind = pki.client.cert if kind == "PRIVATE KEY" else pki.client.key
    options = client_certificate_options(pki)
    options[option] = pki.write("wrong.pem", b"not a pem file\n" if content == "not PEM" else other_kind)

    code = main(["alerts", *as_argv(options), *no_sidecar(tmp_path)])

    assert code == 2
    assert capsys.readouterr().err == f"{option}: {options[option]} holds no PEM {kind}\n"


@pytest.mark.parametrize("command, failure", [
    ("budget", "riskbudget: GetBudget failed: UNAVAILABLE"),
    ("status", "riskbudget status: no answer from the sidecar at 127.0.0.1:"),  # imports grpc first
])
async def test_a_failed_handshake_prints_one_line_and_no_grpc_core_log(tmp_path, pki, command, failure):
    """As a shell runs it: a process of its own, where gRPC core's logging is not yet set up."""
    other_ca, _ = issue("another CA", ca=True)
    sidecar, servers = await start_tls_sidecar(tmp_path, pki)
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "riskbudget_sidecar.app.cli", command, "--target", servers.target,
            "--tls-ca", pki.write("other.pem", other_ca.cert),
            env={name: value for name, value in os.environ.items() if name != "GRPC_VERBOSITY"},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await process.communicate()
    finally:
        await stop(sidecar, servers)

    assert process.returncode == 1 and out == b""
    assert err.decode().startswith(failure)
    assert err.decode().count("\n") == 1 and "CERTIFICATE_VERIFY_FAILED" in err.decode()
