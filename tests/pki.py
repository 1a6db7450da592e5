"""Certificates made for tests: a CA, a server certificate for localhost and 127.0.0.1, and a
client certificate from the same CA, written to files only their user may read."""

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


def issue(common_name: str, *, issuer: tuple[Pem, object] | None = None, ca: bool = False,
          server: bool = False) -> tuple[Pem, object]:
    """A certificate for `common_name`, signed by `issuer` (self-signed without one)."""
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
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    cert = builder.sign(signing_key, hashes.SHA256())
    pem = Pem(cert.public_bytes(serialization.Encoding.PEM),
              key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()))
    return pem, key


@dataclass
class Pki:
    ca: Pem
    server: Pem
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
    server, _ = issue("localhost", issuer=ca, server=True)
    client, _ = issue("trading-engine", issuer=ca)
    folder.mkdir()
    return Pki(ca[0], server, client, folder)
