"""The Node.js client's `tls` option against real sidecar processes listening with `sidecar.tls`
(one with server TLS, one with mutual TLS, one whose certificate names only NAMED_SERVER), with
certificates from tests/pki.py: its test client/node/test/sidecar/tls.test.js, under Node's test
runner."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.e2e.test_crash_recovery import ADMIN_TOKEN
from tests.pki import NAMED_SERVER, Pki, issue, make_pki

from .conftest import CLIENT_TOKEN, RestartableSidecar, running_sidecar
from .test_node_client import run_node


@pytest.fixture
def pki(tmp_path) -> Pki:
    return make_pki(tmp_path / "pki")


def tls_settings(pki: Pki, token_file: Path, *, mutual: bool = False, named: bool = False) -> dict:
    """`sidecar` settings: TLS on an ephemeral loopback port, every call needing CLIENT_TOKEN, with
    the certificate for localhost and 127.0.0.1 (for NAMED_SERVER alone when `named`)."""
    server, stem = (pki.named_server, "named-server") if named else (pki.server, "server")
    tls = {"cert_file": pki.write(f"{stem}.pem", server.cert), "key_file": pki.write(f"{stem}.key", server.key)}
    if mutual:
        tls["client_ca_file"] = pki.write("ca.pem", pki.ca.cert)
    return {"listen": "127.0.0.1:0", "client_token_file": str(token_file), "tls": tls}


@pytest.fixture
def token_file(tmp_path) -> Path:
    path = tmp_path / "client.token"
    path.write_text(CLIENT_TOKEN)
    return path


def own_config(config_path: Path, folder: Path) -> Path:
    """A copy of the config at `config_path` in `folder`, with its state there: for a sidecar
    beside tls_sidecar."""
    folder.mkdir()
    config = yaml.safe_load(config_path.read_text())
    config["store"] = {"path": str(folder / "state.sqlite3")}
    path = folder / "sidecar.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def tls_sidecar(config_path, pki, token_file) -> Iterator[RestartableSidecar]:
    yield from running_sidecar(config_path, tls_settings(pki, token_file))


@pytest.fixture
def mutual_tls_sidecar(config_path, pki, token_file, tmp_path) -> Iterator[RestartableSidecar]:
    """With `client_ca_file`: a client must present a certificate the test CA signed. Its own
    config and state, beside tls_sidecar's."""
    yield from running_sidecar(own_config(config_path, tmp_path / "mutual"),
                               tls_settings(pki, token_file, mutual=True))


@pytest.fixture
def named_tls_sidecar(config_path, pki, token_file, tmp_path) -> Iterator[RestartableSidecar]:
    """Server TLS with a certificate for NAMED_SERVER alone, listening on 127.0.0.1 all the same:
    a client must be told that name. Its own config and state, beside tls_sidecar's."""
    yield from running_sidecar(own_config(config_path, tmp_path / "named"),
                               tls_settings(pki, token_file, named=True))


def test_the_node_client_checks_trades_over_tls_and_mutual_tls_and_fails_closed_on_an_untrusted_peer(
        tls_sidecar, mutual_tls_sidecar, named_tls_sidecar, pki):
    other_ca = issue("another CA", ca=True)
    intruder, _ = issue("intruder", issuer=other_ca)
    environment = {
        "RISKBUDGET_TLS_TARGET": tls_sidecar.target,
        "RISKBUDGET_MUTUAL_TLS_TARGET": mutual_tls_sidecar.target,
        "RISKBUDGET_NAMED_TLS_TARGET": named_tls_sidecar.target,
        "RISKBUDGET_TLS_SERVER_NAME": NAMED_SERVER,
        "RISKBUDGET_CLIENT_TOKEN": CLIENT_TOKEN,
        "RISKBUDGET_ADMIN_TOKEN": ADMIN_TOKEN,
        "RISKBUDGET_TLS_CA_FILE": pki.write("ca.pem", pki.ca.cert),
        "RISKBUDGET_TLS_OTHER_CA_FILE": pki.write("other-ca.pem", other_ca[0].cert),
        "RISKBUDGET_TLS_CLIENT_CERT_FILE": pki.write("client.pem", pki.client.cert),
        "RISKBUDGET_TLS_CLIENT_KEY_FILE": pki.write("client.key", pki.client.key),
        "RISKBUDGET_TLS_INTRUDER_CERT_FILE": pki.write("intruder.pem", intruder.cert),
        "RISKBUDGET_TLS_INTRUDER_KEY_FILE": pki.write("intruder.key", intruder.key),
    }

    completed = run_node("--test", "test/sidecar/tls.test.js", env=environment)

    assert "# pass 12" in completed.stdout
    assert "# fail 0" in completed.stdout
