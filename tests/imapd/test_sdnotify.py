"""
systemd's readiness datagrams (L{imapd.sdnotify}), received on a fake
C{$NOTIFY_SOCKET}.
"""

from __future__ import annotations

import os
import socket

import pytest

from imapd import sdnotify


@pytest.fixture
def notify_socket(tmp_path, monkeypatch):
    """A datagram socket standing in for systemd's, named by NOTIFY_SOCKET."""
    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(5)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    yield sock
    sock.close()


def _fields(datagram: bytes) -> dict[str, str]:
    return dict(line.split("=", 1) for line in datagram.decode().split("\n"))


def test_ready_datagram(notify_socket):
    """READY=1 with the main pid and a one-line STATUS."""
    assert sdnotify.ready("Serving tcp:143,\n tls:993")
    fields = _fields(notify_socket.recv(4096))
    assert fields == {"READY": "1", "STATUS": "Serving tcp:143, tls:993",
                      "MAINPID": str(os.getpid())}


def test_reloading_and_stopping(notify_socket):
    """RELOADING=1 carries MONOTONIC_USEC (Type=notify-reload); STOPPING=1."""
    assert sdnotify.reloading()
    fields = _fields(notify_socket.recv(4096))
    assert fields["RELOADING"] == "1" and int(fields["MONOTONIC_USEC"]) > 0
    assert sdnotify.stopping()
    assert _fields(notify_socket.recv(4096))["STOPPING"] == "1"


def test_abstract_namespace(monkeypatch):
    """C{@name} is a socket in the abstract namespace, as sd_notify(3) says."""
    name = f"imapd-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert sdnotify.notify("READY=1")
        assert sock.recv(100) == b"READY=1"


def test_without_systemd(tmp_path, monkeypatch):
    """No NOTIFY_SOCKET, or a socket that is gone: nothing sent, no error."""
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sdnotify.ready("x") is False
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone"))
    assert sdnotify.ready("x") is False
