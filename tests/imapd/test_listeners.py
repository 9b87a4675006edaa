"""
Binding listeners (L{imapd.listeners}, issue 16 items 5 and 6): IPv4 and
IPv6 for an address-less TCP listener, one-line errors for every bad
value a sysadmin can write.
"""

from __future__ import annotations

import os
import re
import socket
import tomllib

import pytest

from conf.endpoints import check_endpoint
from imapd.listeners import ListenError, bind_listeners


def _free_port() -> int:
    """A port free on both 0.0.0.0 and :: a moment ago."""
    for _ in range(50):
        with socket.socket() as s4:
            s4.bind(("", 0))
            port = s4.getsockname()[1]
            try:
                with socket.socket(socket.AF_INET6) as s6:
                    s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                    s6.bind(("::", port))
            except OSError:
                continue
            return port
    raise AssertionError("no port free on both families")


def _close(sockets) -> None:
    for sock in sockets:
        sock.close()


def test_tcp_without_interface_listens_on_ipv4_and_ipv6():
    """
    Issue 16 item 6: C{tcp:PORT} is Dovecot's C{*, ::}: an IPv4 and an
    IPv6 socket (the IPv6 one only IPv6, so IPv4 peers keep their plain
    addresses), and clients of both families connect.
    """
    port = _free_port()
    sockets = bind_listeners(f"tcp:{port}")
    try:
        families = sorted(s.family for s in sockets)
        assert families == sorted([socket.AF_INET, socket.AF_INET6])
        v6 = next(s for s in sockets if s.family == socket.AF_INET6)
        assert v6.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 1
        for host in ("127.0.0.1", "::1"):
            with socket.create_connection((host, port), timeout=5):
                pass
    finally:
        _close(sockets)


@pytest.mark.parametrize("description, family", [
    ("tcp:{port}:interface=127.0.0.1", socket.AF_INET),
    ("tcp:{port}:interface=\\:\\:1", socket.AF_INET6),
    ("tcp6:{port}", socket.AF_INET6),
])
def test_one_address_one_socket(description, family):
    """An interface, or tcp6:, is one socket of that family."""
    sockets = bind_listeners(description.format(port=_free_port()))
    try:
        assert [s.family for s in sockets] == [family]
    finally:
        _close(sockets)


def test_port_out_of_range_is_one_line():
    """Issue 16 item 5: C{tcp:99999} is refused when read, without a traceback."""
    with pytest.raises(ValueError) as caught:
        check_endpoint("tcp:99999")
    assert str(caught.value) == "'tcp:99999': port 99999 is not between 0 and 65535"
    with pytest.raises(ListenError):
        bind_listeners("tcp:99999")


def test_unix_socket_in_missing_directory(tmp_path):
    """Issue 16 item 5: a UNIX socket in a missing directory is one line naming it."""
    path = tmp_path / "nodir" / "imap.sock"
    with pytest.raises(ListenError) as caught:
        bind_listeners(f"unix:{path}")
    assert str(caught.value) == (f"cannot listen on {path}: the directory "
                                 f"{tmp_path / 'nodir'} does not exist")


def test_busy_unix_socket_is_text(tmp_path):
    """
    Issue 16 item 5: a UNIX socket another server answers on is refused
    in words, never as a Python bytes value; a stale one is replaced.
    """
    path = str(tmp_path / "imap.sock")
    sockets = bind_listeners(f"unix:{path}")
    try:
        with pytest.raises(ListenError) as caught:
            bind_listeners(f"unix:{path}")
        message = str(caught.value)
        assert message.startswith(f"cannot listen on {path}: Address already in use")
        assert "b'" not in message
    finally:
        _close(sockets)
    # The first server is gone, its socket file left: the next one binds.
    assert os.path.exists(path)
    _close(bind_listeners(f"unix:{path}"))


def test_port_in_use_names_the_address():
    """A busy TCP port: the address and the system's reason, one line."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ListenError) as caught:
            bind_listeners(f"tcp:{port}:interface=127.0.0.1")
    assert str(caught.value) == f"cannot listen on 127.0.0.1:{port}: Address already in use"


def test_readme_ipv6_example_is_valid_toml():
    """
    Issue 16 item 6: the README's IPv6 listener example is valid TOML and
    names an IPv6 address.
    """
    readme = os.path.join(os.path.dirname(__file__), "..", "..", "README.md")
    with open(readme, encoding="utf-8") as f:
        text = f.read()
    blocks = re.findall(r"```toml\n(.*?)```", text, re.S)
    examples = [b for b in blocks if "interface=" in b and "::" in b.replace("\\", "")]
    assert examples, "no IPv6 listener example"
    for block in examples:
        listen = tomllib.loads(block)["listen"]
        for description in listen:
            check_endpoint(description)
        assert any(":" in (d.split("interface=")[1].replace("\\:", ":")) for d in listen)
