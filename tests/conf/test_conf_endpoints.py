"""
Listener descriptions (conf.endpoints): splitting, tls: and locality.
"""

from __future__ import annotations

import pytest

from conf.endpoints import (
    check_endpoint,
    is_implicit_tls,
    is_local,
    split_endpoint,
    twisted_description,
    uses_tls_section,
)


def test_split_like_twisted():
    """Fields split on ':', keywords on the first '=', backslash escapes."""
    assert split_endpoint(r"tcp:993:interface=\:\:1") == ("tcp", ["993"], {"interface": "::1"})
    assert split_endpoint("SSL:993:privateKey=a=b.pem") == ("ssl", ["993"], {"privateKey": "a=b.pem"})
    assert split_endpoint("unix:/run/x.sock:mode=660") == ("unix", ["/run/x.sock"], {"mode": "660"})


def test_tls_shorthand():
    """tls: is implicit TLS with [tls]'s certificate, listening like tcp:."""
    assert twisted_description("tls:993:interface=127.0.0.1") == "tcp:993:interface=127.0.0.1"
    assert twisted_description("tcp:143") == "tcp:143"
    assert is_implicit_tls("tls:993") and is_implicit_tls("ssl:993:privateKey=k")
    assert not is_implicit_tls("tcp:143")
    assert uses_tls_section("tls:993") and not uses_tls_section("ssl:993")


@pytest.mark.parametrize(
    "description, local",
    [
        ("tcp:143:interface=127.0.0.1", True),
        ("tcp:143:interface=127.3.4.5", True),
        (r"tcp:143:interface=\:\:1", True),
        ("tcp:143:localhost", True),
        ("tls:993:interface=localhost", True),
        ("unix:/run/imapd.sock", True),
        ("tcp:143", False),
        ("tcp:143:interface=0.0.0.0", False),
        ("tcp:143:interface=192.0.2.1", False),
        ("ssl:993:privateKey=k.pem", False),
        ("systemd:domain=INET:index=0", False),
    ],
)
def test_is_local(description, local):
    """Only loopback TCP listeners and UNIX sockets count as local."""
    assert is_local(description) is local


@pytest.mark.parametrize(
    "description", ["tcp:143", "tcp:0:interface=127.0.0.1", "tls:993", "unix:/tmp/x.sock", "tcp6:143"]
)
def test_valid_endpoints(description):
    """Endpoint strings Twisted accepts pass the check without listening."""
    check_endpoint(description)


def test_ssl_endpoint_with_real_files(tls_files):
    """ssl: endpoints are checked by loading their files."""
    cert, key = tls_files
    check_endpoint(f"ssl:993:privateKey={key}:certKey={cert}")
