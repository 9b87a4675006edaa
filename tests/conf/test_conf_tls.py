"""
TLS files (imapd.tls): self-signed generation, loading, fingerprints.
"""

from __future__ import annotations

import os
import ssl
import stat
import subprocess

import pytest

from imapd.tls import TLSError, certificate_options, fingerprint, generate_self_signed


def test_generated_pair_is_private_and_loads(tmp_path):
    """A generated key and certificate are 0600 PEM files that load together."""
    cert, key = str(tmp_path / "tls" / "cert.pem"), str(tmp_path / "tls" / "key.pem")
    generate_self_signed(cert, key, "imap.example.org")
    for path in (cert, key):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    options = certificate_options(cert, key)
    assert options.getContext() is not None
    # The certificate names the host and loopback, for clients that check.
    info = ssl._ssl._test_decode_cert(cert)
    names = {value for _, value in info["subjectAltName"]}
    assert {"imap.example.org", "localhost", "127.0.0.1"} <= names


def test_fingerprint_matches_openssl(tls_files):
    """The logged fingerprint is the one openssl shows."""
    cert, _ = tls_files
    out = subprocess.run(
        ["openssl", "x509", "-noout", "-fingerprint", "-sha256", "-in", cert],
        capture_output=True, text=True, check=True,
    ).stdout
    assert out.strip().split("=", 1)[1] == fingerprint(cert)


def test_minimum_version_is_tls12(tls_files):
    """Older protocol versions are switched off in the context."""
    from OpenSSL import SSL

    # set_options(0) adds nothing and returns the options in force.
    options = certificate_options(*tls_files).getContext().set_options(0)
    for flag in ("OP_NO_TLSv1", "OP_NO_TLSv1_1"):
        assert options & getattr(SSL, flag), flag
    assert not options & SSL.OP_NO_TLSv1_2
    options13 = certificate_options(*tls_files, min_version="1.3").getContext().set_options(0)
    assert options13 & SSL.OP_NO_TLSv1_2


def test_mismatched_and_broken_files(tmp_path, tls_files):
    """A key of another certificate, or a non-PEM file, is refused with a reason."""
    other_cert, other_key = str(tmp_path / "c.pem"), str(tmp_path / "k.pem")
    generate_self_signed(other_cert, other_key, "other")
    with pytest.raises(TLSError, match="does not belong"):
        certificate_options(tls_files[0], other_key)
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(TLSError, match="no PEM certificate"):
        certificate_options(str(junk), tls_files[1])
    with pytest.raises(TLSError, match="no usable PEM private key"):
        certificate_options(tls_files[0], str(junk))
    with pytest.raises(TLSError, match="cannot read"):
        certificate_options(str(tmp_path / "missing.pem"), tls_files[1])


def test_chain_in_cert_file(tmp_path, tls_files):
    """Certificates after the first one in the file are sent as the chain."""
    cert, key = tls_files
    other_cert, other_key = str(tmp_path / "c.pem"), str(tmp_path / "k.pem")
    generate_self_signed(other_cert, other_key, "intermediate")
    chained = tmp_path / "chain.pem"
    chained.write_text(open(cert).read() + open(other_cert).read())
    options = certificate_options(str(chained), key)
    assert len(options.extraCertChain) == 1
