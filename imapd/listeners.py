# -*- test-case-name: tests.imapd.test_listeners -*-
"""
Binding the listeners of C{listen} (and C{lmtp_listen}, the cluster's
C{*_listen}): the one place that turns a listener description into
listening sockets, for the master of the multi-process server and for
the single process alike (issue 16).

    tcp:143, tls:993 (no interface)  two sockets, as Dovecot's
                                     C{listen = *, ::}: 0.0.0.0 and ::
                                     (IPv6 only), so that IPv4 clients
                                     keep their plain addresses
    tcp:143:interface=ADDR           one socket, IPv4 or IPv6 by ADDR
    tcp6:143                         one IPv6 socket
    unix:/path[:mode=0660]           one UNIX socket (a stale one, left
                                     by a server that is gone, is removed)

Every failure is a L{ListenError} whose text is one line for a sysadmin
(the address, and the reason as the system gives it), never a traceback.
"""

from __future__ import annotations

import errno
import os
import socket
import stat

from twisted.logger import Logger

__all__ = ["ListenError", "bind_listeners", "ssl_context", "BINDABLE"]

log = Logger(namespace="imapd.start")

#: The listener kinds bound here; others (systemd:, endpoint plugins) are
#: left to Twisted's endpoints in the single process.
BINDABLE = ("tcp", "tcp6", "tls", "ssl", "unix")

#: Errors that mean "this machine has no IPv6" (a kernel without it, or
#: IPv6 turned off): a wildcard listener then serves IPv4 alone.
_NO_IPV6 = (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL, errno.EPROTONOSUPPORT)


class ListenError(Exception):
    def __init__(self, address: str, reason: str) -> None:
        super().__init__(f"cannot listen on {address}: {reason}")
        self.address = address
        self.reason = reason


def _reason(error: OSError) -> str:
    return error.strerror or str(error)


def _tcp_socket(family: int, interface: str, port: int, backlog: int,
                v6only: bool | None = None) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if v6only is not None:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(v6only))
        sock.bind((interface, port))
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    return sock


def _unix_socket(path: str, mode: int, backlog: int) -> socket.socket:
    directory = os.path.dirname(path) or "."
    if not os.path.isdir(directory):
        raise ListenError(path, f"the directory {directory} does not exist")
    try:
        if stat.S_ISSOCK(os.stat(path).st_mode):
            probe = socket.socket(socket.AF_UNIX)
            try:
                probe.connect(path)
            except OSError:
                os.unlink(path)  # left by a server that is gone
            else:
                raise ListenError(path, "Address already in use (another server answers there)")
            finally:
                probe.close()
    except FileNotFoundError:
        pass
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        os.chmod(path, mode)
        sock.listen(backlog)
    except OSError as e:
        sock.close()
        raise ListenError(path, _reason(e)) from None
    return sock


def bind_listeners(description: str) -> list[socket.socket]:
    """
    The listening sockets (non-blocking) for one listener description.

    @raises ListenError: the address is in use, not ours to use, or the
        directory of a UNIX socket is missing.
    @raises ValueError: a kind of listener not bound here (L{BINDABLE}).
    """
    from conf.endpoints import interface_of, split_endpoint

    kind, args, kwargs = split_endpoint(description)
    backlog = int(kwargs.get("backlog", 50))
    if kind in ("tcp", "tcp6", "tls", "ssl"):
        port = int(kwargs.get("port") or args[0])
        interface = (interface_of(description) or "").strip("[]")
        if not 0 <= port <= 65535:
            raise ListenError(f"{interface or '*'}:{port}", "not a port number (0-65535)")
        if interface or kind == "tcp6":
            family = socket.AF_INET6 if kind == "tcp6" or ":" in interface else socket.AF_INET
            interface = interface or "::"
            try:
                sockets = [_tcp_socket(family, interface, port, backlog)]
            except OSError as e:
                raise ListenError(f"{interface}:{port}", _reason(e)) from None
        else:
            # Every address: IPv4 and IPv6, as two sockets (Dovecot's
            # "*, ::"); the IPv6 one with IPV6_V6ONLY, so that it does not
            # take IPv4 connections as ::ffff:a.b.c.d whatever the
            # system's net.ipv6.bindv6only says.
            try:
                sockets = [_tcp_socket(socket.AF_INET, "", port, backlog)]
            except OSError as e:
                raise ListenError(f"*:{port}", _reason(e)) from None
            try:
                sockets.append(_tcp_socket(socket.AF_INET6, "::", port, backlog, v6only=True))
            except OSError as e:
                if e.errno not in _NO_IPV6:
                    sockets[0].close()
                    raise ListenError(f"[::]:{port}", _reason(e)) from None
                log.info("No IPv6 on this machine ({reason}): {description} listens on IPv4 only",
                         reason=_reason(e), description=description)
    elif kind == "unix":
        path = kwargs.get("address") or args[0]
        sockets = [_unix_socket(path, int(kwargs.get("mode", "666"), 8), backlog)]
    else:
        raise ValueError(f"{description!r}: a {kind or 'plugin'} listener needs "
                         "[service] single_process = true")
    for sock in sockets:
        sock.setblocking(False)
    return sockets


class _NoReactor:
    """The endpoint parser only stores the reactor."""


def ssl_context(description: str):
    """The TLS context an C{ssl:} listener description names."""
    from twisted.internet.endpoints import serverFromString

    from conf.endpoints import proxy_protocol

    endpoint = serverFromString(_NoReactor(), proxy_protocol(description)[1])
    return endpoint._sslContextFactory
