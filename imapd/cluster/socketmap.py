# -*- test-case-name: tests.imapd.cluster.test_socketmap -*-
"""
A Postfix socketmap server (socketmap_table(5)): where to deliver a
recipient's mail.

Postfix sends a netstring C{"<name> <key>"} and reads one netstring back:
C{"OK <data>"}, C{"NOTFOUND "}, C{"TEMP <reason>"}, C{"TIMEOUT <reason>"}
or C{"PERM <reason>"}; it keeps the connection for further requests.
Maps we answer (the name Postfix is configured with,
C{socketmap:inet:HOST:PORT:NAME}):

    transport   lmtp:inet:<owner>:<lmtp port>  (transport_maps)
    host        <owner address>                (for scripts and webmail)

A key without an "@" (Postfix also looks up the bare domain and parent
domains in transport_maps) is NOTFOUND, so Postfix falls back to its
default.  The key's extension (C{user+detail}) is dropped before hashing,
since every address of one user must reach the same node.  A delivery
lookup places the user (Dovecot's director places users on LMTP lookups
too), so a user first seen by the MTA is then logged in on the same node.
"""

from __future__ import annotations

from twisted.internet import defer, threads
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.protocols.basic import NetstringReceiver

from imapd.cluster.exports import transport_nexthop

__all__ = ["SocketmapFactory", "SocketmapProtocol", "answer"]

log = Logger(namespace="imapd.cluster.socketmap")

#: socketmap_table(5): Postfix refuses replies longer than this.
MAX_REPLY = 100000


def strip_extension(address: str, delimiter: str) -> str:
    """C{user+detail@domain} -> C{user@domain} (first delimiter character)."""
    if not delimiter:
        return address
    local, at, domain = address.rpartition("@")
    for i, char in enumerate(local):
        if char in delimiter:
            return local[:i] + at + domain
    return address


def answer(directory, name: str, key: str, delimiter: str = "+") -> str:
    """
    The reply to one request (blocking: it reads the host table).
    """
    if name not in ("transport", "host"):
        return f"PERM unknown map {name!r}: this server answers 'transport' and 'host'"
    if "@" not in key or key.startswith("@"):
        return "NOTFOUND "
    user = strip_extension(key, delimiter)
    from imapd.cluster.table import TableError

    try:
        host = directory.owner(user)
    except TableError as e:
        return f"TEMP {e}"
    if host is None:
        return "TEMP no imapd host is up"
    return "OK " + (transport_nexthop(host) if name == "transport" else host.address)


class SocketmapProtocol(NetstringReceiver):
    """One Postfix connection; requests are answered in order."""

    def connectionMade(self) -> None:
        self._queue = defer.succeed(None)

    def stringReceived(self, request: bytes) -> None:
        self._queue.addCallback(lambda _: self._handle(request))

    def _handle(self, request: bytes):
        try:
            text = request.decode("utf-8")
        except UnicodeDecodeError:
            return self._send("PERM the request is not UTF-8")
        name, sep, key = text.partition(" ")
        if not sep or not key:
            return self._send("PERM a request is '<name> <key>'")
        d = self.factory.runner(answer, self.factory.directory, name, key,
                                self.factory.delimiter)

        def failed(failure):
            log.failure("socketmap lookup of {key!r} failed", failure, key=key)
            return "TEMP internal error"
        d.addErrback(failed)
        d.addCallback(self._send)
        return d

    def _send(self, reply: str) -> None:
        data = reply.encode("utf-8")
        if len(data) > MAX_REPLY:
            data = b"PERM reply too long"
        # After the connection is lost the transport drops the write.
        self.sendString(data)


class SocketmapFactory(Factory):
    protocol = SocketmapProtocol

    def __init__(self, directory, delimiter: str = "+", runner=None) -> None:
        """
        @param runner: C{runner(f, *args)} runs the blocking lookup and
            returns a Deferred (default: in the reactor's thread pool).
        """
        self.directory = directory
        self.delimiter = delimiter
        self.runner = threads.deferToThread if runner is None else runner
