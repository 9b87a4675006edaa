# -*- test-case-name: tests.test_tls -*-
"""
TLS settings: load a PEM certificate and key, or make a self-signed pair.

One L{CertificateOptions} serves STARTTLS and implicit-TLS listeners alike;
it refuses anything older than TLS 1.2.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from typing import Iterable

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

__all__ = [
    "TLSError",
    "generate_self_signed",
    "fingerprint",
    "certificate_options",
]

#: A generated certificate lasts this long (some clients refuse longer).
VALIDITY = datetime.timedelta(days=825)


class TLSError(Exception):
    """The certificate or key can't be used; the text says why."""


def _write_private(path: str, data: bytes) -> None:
    """Write a file only its owner can read, atomically."""
    tmp = f"{path}.tmp.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def generate_self_signed(
    cert_path: str, key_path: str, hostname: str, extra_names: Iterable[str] = ()
) -> None:
    """
    Write a new RSA-2048 key and a self-signed certificate for C{hostname}
    (plus localhost, 127.0.0.1 and ::1) as PEM files, both mode 0600.
    """
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    names: list[x509.GeneralName] = []
    for name in dict.fromkeys([hostname, "localhost", *extra_names]):
        if name:
            names.append(x509.DNSName(name))
    for address in ("127.0.0.1", "::1"):
        names.append(x509.IPAddress(ipaddress.ip_address(address)))
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, hostname[:64] or "localhost"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "imapd self-signed"),
        ]
    )
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    os.makedirs(os.path.dirname(os.path.abspath(key_path)), mode=0o700, exist_ok=True)
    _write_private(
        key_path,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    _write_private(cert_path, cert.public_bytes(serialization.Encoding.PEM))


def _load_pem_certificates(cert_path: str) -> list[x509.Certificate]:
    try:
        with open(cert_path, "rb") as f:
            certs = x509.load_pem_x509_certificates(f.read())
    except OSError as e:
        raise TLSError(f"cannot read {cert_path}: {e.strerror}") from None
    except ValueError as e:
        raise TLSError(f"{cert_path} holds no PEM certificate ({e})") from None
    return certs


def fingerprint(cert_path: str) -> str:
    """The SHA-256 fingerprint of the first certificate, as AA:BB:..."""
    digest = _load_pem_certificates(cert_path)[0].fingerprint(hashes.SHA256())
    return ":".join(f"{b:02X}" for b in digest)


def certificate_options(cert_path: str, key_path: str, min_version: str = "1.2"):
    """
    Build a L{twisted.internet.ssl.CertificateOptions} from PEM files.

    The certificate file may hold the chain after the server certificate.

    @param min_version: "1.2" or "1.3".
    @raises TLSError: unreadable or mismatched files.
    """
    from OpenSSL import crypto
    from twisted.internet.ssl import CertificateOptions, TLSVersion

    certs = _load_pem_certificates(cert_path)
    try:
        with open(key_path, "rb") as f:
            key = serialization.load_pem_private_key(f.read(), password=None)
    except OSError as e:
        raise TLSError(f"cannot read {key_path}: {e.strerror}") from None
    except (ValueError, TypeError) as e:
        raise TLSError(f"{key_path} holds no usable PEM private key ({e})") from None
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(
        serialization.Encoding.DER, public
    ) != certs[0].public_key().public_bytes(serialization.Encoding.DER, public):
        raise TLSError(f"the key in {key_path} does not belong to the certificate in {cert_path}")
    minimum = {"1.2": TLSVersion.TLSv1_2, "1.3": TLSVersion.TLSv1_3}[min_version]
    if not _takes_cryptography_objects():
        key = crypto.PKey.from_cryptography_key(key)
        certs = [crypto.X509.from_cryptography(c) for c in certs]
    return CertificateOptions(
        privateKey=key,
        certificate=certs[0],
        extraCertChain=certs[1:],
        raiseMinimumTo=minimum,
    )


def _takes_cryptography_objects() -> bool:
    """
    pyOpenSSL 24.3 and later take cryptography's keys and certificates (and
    deprecate its own); older ones need their own types.
    """
    import OpenSSL

    try:
        version = tuple(int(part) for part in OpenSSL.__version__.split(".")[:2])
    except ValueError:
        return True
    return version >= (24, 3)
