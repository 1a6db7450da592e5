"""Certificates made for tests: a CA, a server certificate for localhost and 127.0.0.1, one for
the name riskbudget.test alone, and a client certificate from the same CA, written to files
only their user may read."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass
class Pem:
    cert: bytes
    key: bytes


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


NAMED_SERVER = "riskbudget.test"
"""The one name Pki.named_server is for: a client reaching it at 127.0.0.1 must be told to
expect that name."""


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def issue(common_name: str, *, issuer: tuple[Pem, object] | None = None, ca: bool = False,
          names: tuple[str, ...] = ()) -> tuple[Pem, object]:
    """A certificate for `common_name`, signed by `issuer` (self-signed without one), and for
    `names` (host names and IP addresses: a server's subject alternative names)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    issuer_name, signing_key = _name(common_name), key
    if issuer is not None:
        issuer_name = x509.load_pem_x509_certificate(issuer[0].cert).subject
        signing_key = issuer[1]
    builder = (x509.CertificateBuilder().subject_name(_name(common_name)).issuer_name(issuer_name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([_general_name(name) for name in names]), critical=False)
    cert = builder.sign(signing_key, hashes.SHA256())
    pem = Pem(cert.public_bytes(serialization.Encoding.PEM),
              key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()))
    return pem, key


@dataclass
class Pki:
    ca: Pem
    server: Pem
    named_server: Pem
    """For NAMED_SERVER alone, not 127.0.0.1 nor localhost."""
    client: Pem
    folder: Path

    def write(self, name: str, data: bytes) -> str:
        path = self.folder / name
        path.write_bytes(data)
        path.chmod(0o600)
        return str(path)


def make_pki(folder: Path) -> Pki:
    """A fresh CA, with a server and a client certificate it signed; files go in `folder`."""
    ca = issue("riskbudget test CA", ca=True)
    server, _ = issue("localhost", issuer=ca, names=("localhost", "127.0.0.1"))
    named_server, _ = issue(NAMED_SERVER, issuer=ca, names=(NAMED_SERVER,))
    client, _ = issue("trading-engine", issuer=ca)
    folder.mkdir()
    return Pki(ca[0], server, named_server, client, folder)
