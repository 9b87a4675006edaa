"""
The real daemon over the network: greeting, CAPABILITY, STARTTLS, implicit
TLS and LOGIN, with imaplib, imapclient and openssl s_client as clients.
"""

from __future__ import annotations

import imaplib
import re
import socket
import ssl
import subprocess

import pytest
from imapclient import IMAPClient
from imapclient.exceptions import LoginError

from e2e_helpers import openssl_session, read_greeting


def converse(host: str, port: int, lines: list[bytes]) -> bytes:
    """Send raw lines after the greeting; return everything until the last tag."""
    with socket.create_connection((host, port), timeout=10) as s:
        data = b""
        for line in [None, *lines]:
            if line is not None:
                s.sendall(line + b"\r\n")
                tag = line.split(b" ", 1)[0]
                done = re.compile(rb"(^|\n)" + re.escape(tag) + rb" [^\n]*\n")
            else:
                done = re.compile(rb"^\* OK[^\n]*\n")
            while not done.search(data):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        return data


def test_greeting_and_capability(imapd_server):
    """The plain port greets with OK and lists IMAP4rev1 and STARTTLS."""
    s = imapd_server
    assert read_greeting(s.host, s.port).startswith(b"* OK")
    reply = converse(s.host, s.port, [b"a1 CAPABILITY", b"a2 LOGOUT"])
    caps = re.search(rb"\* CAPABILITY ([^\r\n]*)", reply).group(1).split()
    assert b"IMAP4rev1" in caps and b"STARTTLS" in caps
    assert b"a1 OK" in reply and b"* BYE" in reply and b"a2 OK" in reply


def test_starttls_with_openssl(imapd_server):
    """openssl s_client -starttls imap negotiates TLS >= 1.2 with our certificate."""
    s = imapd_server
    out = openssl_session(
        ["-starttls", "imap", "-connect", f"{s.host}:{s.port}", "-CAfile", s.cert,
         "-verify_return_error", "-verify_hostname", "localhost"],
        ["a1 CAPABILITY", f"a2 LOGIN {s.user} \"{s.password}\"", "a3 LOGOUT"],
        greeting=False,
    )
    assert "Verify return code: 0 (ok)" in out
    assert re.search(r"Protocol *: *TLSv1\.[23]|New, TLSv1\.[23]", out), out
    capability = re.search(r"\* CAPABILITY ([^\r\n]*)", out).group(1).split()
    assert "IMAP4rev1" in capability and "STARTTLS" not in capability
    assert re.search(r"\na2 OK", out) and re.search(r"\na3 OK", out)


def test_implicit_tls_with_openssl(imapd_server):
    """The tls: listener speaks TLS at once, then greets."""
    s = imapd_server
    out = openssl_session(
        ["-connect", f"{s.host}:{s.tls_port}", "-CAfile", s.cert, "-verify_return_error"],
        ["a1 CAPABILITY", "a2 LOGOUT"],
    )
    assert "Verify return code: 0 (ok)" in out
    assert re.search(r"\n\* OK", out)
    capability = re.search(r"\* CAPABILITY ([^\r\n]*)", out).group(1).split()
    assert "STARTTLS" not in capability
    assert re.search(r"\na2 OK", out)


def test_login_after_starttls_with_imaplib(imapd_server):
    """imaplib: STARTTLS, LOGIN, SELECT INBOX, LOGOUT."""
    s = imapd_server
    client = imaplib.IMAP4(s.host, s.port)
    try:
        client.starttls(s.ssl_context())
        assert client.login(s.user, s.password)[0] == "OK"
        assert client.select("INBOX")[0] == "OK"
    finally:
        assert client.logout()[0] == "BYE"


def test_login_over_implicit_tls_with_imapclient(imapd_server):
    """imapclient over implicit TLS: LOGIN, list folders, LOGOUT."""
    s = imapd_server
    with IMAPClient(s.host, port=s.tls_port, ssl=True, ssl_context=s.ssl_context()) as client:
        client.login(s.user, s.password)
        assert any(name == "INBOX" for _, _, name in client.list_folders())
        client.logout()
    assert f"login user={s.user}" in s.daemon.log()


def test_wrong_password_refused(imapd_server):
    """A wrong password gets NO, over TLS too."""
    s = imapd_server
    with IMAPClient(s.host, port=s.tls_port, ssl=True, ssl_context=s.ssl_context()) as client:
        with pytest.raises(LoginError):
            client.login(s.user, "wrong")


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
def test_tls_below_12_refused(imapd_server):
    """A client that speaks at most TLS 1.1 cannot connect; TLS 1.2 can."""
    s = imapd_server
    old = s.ssl_context()
    old.set_ciphers("DEFAULT:@SECLEVEL=0")
    old.minimum_version = ssl.TLSVersion.TLSv1
    old.maximum_version = ssl.TLSVersion.TLSv1_1
    with socket.create_connection((s.host, s.tls_port), timeout=10) as raw:
        with pytest.raises(ssl.SSLError) as refused:
            old.wrap_socket(raw, server_hostname="localhost").recv(1)
    # The server refused the version; the client was willing.
    assert "NO_PROTOCOLS_AVAILABLE" not in str(refused.value)
    tls12 = s.ssl_context(maximum_version=ssl.TLSVersion.TLSv1_2)
    with socket.create_connection((s.host, s.tls_port), timeout=10) as raw:
        with tls12.wrap_socket(raw, server_hostname="localhost") as conn:
            assert conn.version() == "TLSv1.2"
            assert conn.recv(4096).startswith(b"* OK")


def test_plaintext_login_refused_when_configured(start_imapd):
    """auth.allow_plaintext = false: LOGINDISABLED before TLS, LOGIN works after."""
    s = start_imapd({"auth": {"allow_plaintext": False}})
    reply = converse(s.host, s.port, [b"a1 CAPABILITY", f"a2 LOGIN {s.user} x".encode()])
    assert b"LOGINDISABLED" in reply
    assert re.search(rb"\na2 NO", reply)
    client = imaplib.IMAP4(s.host, s.port)
    client.starttls(s.ssl_context())
    assert client.login(s.user, s.password)[0] == "OK"
    client.logout()
    assert "Plaintext logins refused (auth.allow_plaintext)" in s.daemon.log()


def test_certificate_served_is_configured_one(imapd_server):
    """The implicit-TLS port presents exactly the configured certificate."""
    s = imapd_server
    pem = ssl.get_server_certificate((s.host, s.tls_port))
    served = ssl.PEM_cert_to_DER_cert(pem)
    assert served == ssl.PEM_cert_to_DER_cert(open(s.cert).read())
    subprocess.run(["openssl", "version"], check=True, capture_output=True)
