"""TLS for the embedded emulator: a private CA made at start, and a server certificate it signs.

:func:`make_tls` generates, in memory, a CA (an ECDSA P-256 key that signs one certificate and is then
forgotten) and a server certificate for the emulator's loopback names (``127.0.0.1``, ``localhost``),
writes the CA's certificate as a PEM bundle into a private temporary directory (mode 0700), and returns
the server-side :class:`ssl.SSLContext`. Clients trust the emulator through that bundle and nothing
else: boto3/botocore and the Terraform AWS provider read it from the standard ``AWS_CA_BUNDLE``
environment variable. ``EmulatorTLS.remove()`` deletes the directory (``Emulator.stop()`` calls it).

The server's private key exists on disk only for the moment :meth:`ssl.SSLContext.load_cert_chain`
reads it (the standard library loads keys from files only); the CA's key never does.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import shutil
import ssl
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography.x509 import GeneralName

VALIDITY = dt.timedelta(days=30)
CLOCK_SKEW = dt.timedelta(minutes=5)  # not_before lies a little in the past, for a client's slow clock
HOSTS = ("127.0.0.1", "localhost")


@dataclass
class EmulatorTLS:
    """The emulator's TLS material: where the CA bundle is, and the server's context."""

    directory: Path
    ca_bundle: Path
    context: ssl.SSLContext

    def remove(self) -> None:
        """Delete the private directory (and the CA bundle in it)."""
        shutil.rmtree(self.directory, ignore_errors=True)


def _names(hosts: Sequence[str]) -> list[GeneralName]:
    from cryptography import x509

    names: list[GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def make_tls(hosts: Sequence[str] = HOSTS) -> EmulatorTLS:
    """A fresh CA and a server certificate for ``hosts`` (IP addresses and DNS names), the CA bundle
    written to a new private directory, and the server's TLS context (TLS 1.2 or later)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)
    not_before, not_after = now - CLOCK_SKEW, now + VALIDITY

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "migrator emulator"),
            x509.NameAttribute(NameOID.COMMON_NAME, "migrator emulator CA"),
        ]
    )
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(_names(hosts)), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(server_key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    directory = Path(tempfile.mkdtemp(prefix="migrator-emulator-tls-"))
    try:
        os.chmod(directory, 0o700)
        ca_bundle = directory / "ca.pem"
        ca_bundle.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        chain, key = directory / "server.pem", directory / "server.key"
        chain.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(
                server_key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
        try:
            context.load_cert_chain(chain, key)
        finally:
            key.unlink()
            chain.unlink()
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    return EmulatorTLS(directory, ca_bundle, context)
