# -*- test-case-name: tests.process.test_process_wire -*-
"""
The reactor side of a control socket: L{Channel} sends and receives the
messages of L{imapd.process.wire}, descriptors included
(L{IUNIXTransport.sendFileDescriptor}, L{IFileDescriptorReceiver}).
"""

from __future__ import annotations

import itertools
import os
import socket
from typing import Callable, Optional

from twisted.internet import defer

from twisted.internet.interfaces import IFileDescriptorReceiver
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from zope.interface import implementer

from imapd.process.wire import Decoder, ProtocolError, frame
from imapd.writes import write_now

__all__ = ["Channel", "Requests", "adopt_channel"]

log = Logger(namespace="imapd.process")


@implementer(IFileDescriptorReceiver)
class Channel(Protocol):
    """
    One control socket.  C{on_message(channel, message, fds)} gets every
    message (the receiver owns the descriptors: it closes them);
    C{on_lost(channel)} is called once when the socket closes.
    """

    def __init__(self, on_message: Callable, on_lost: Optional[Callable] = None,
                 name: str = "control") -> None:
        self.on_message = on_message
        self.on_lost = on_lost
        self.name = name
        self.decoder = Decoder()
        self.connected_ = False
        self.lost = False

    def connectionMade(self) -> None:
        self.connected_ = True

    def fileDescriptorReceived(self, descriptor: int) -> None:
        self.decoder.add_fd(descriptor)

    def dataReceived(self, data: bytes) -> None:
        self.decoder.feed(data)
        try:
            for message, fds in self.decoder.messages():
                try:
                    self.on_message(self, message, fds)
                except Exception:
                    log.failure("handling {op} on {name}", op=message.get("op"), name=self.name)
                    for fd in fds:
                        _close(fd)
        except ProtocolError as e:
            log.error("{name}: {error}; closing", name=self.name, error=e)
            self.transport.loseConnection()

    def send(self, message: dict, fds=()) -> None:
        """
        Send C{message} with C{fds}.  The descriptors must stay open until
        the peer says it has them (Twisted sends them when it writes).
        """
        if self.lost or self.transport is None:
            return
        if not fds:
            # Most messages: sent at once (a delivery's request and answer
            # are on the critical path of the MTA's next command).
            write_now(self.transport, frame(message))
            return
        for fd in fds:
            self.transport.sendFileDescriptor(fd)
        self.transport.write(frame(message, len(fds)))

    def close(self) -> None:
        if self.transport is not None and not self.lost:
            self.transport.loseConnection()

    def connectionLost(self, reason=None) -> None:
        if self.lost:
            return
        self.lost = True
        self.decoder.close_fds()
        if self.on_lost is not None:
            self.on_lost(self)


def _close(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


def adopt_channel(reactor, fd: int, channel: Channel) -> Channel:
    """
    Run C{channel} on the connected UNIX socket C{fd} (which is closed
    here: the reactor works on a duplicate).
    """
    os.set_blocking(fd, False)
    try:
        reactor.adoptStreamConnection(fd, socket.AF_UNIX, Factory.forProtocol(lambda: channel))
    finally:
        _close(fd)
    return channel


class Requests:
    """
    A child's requests that wait for their reply, matched by their C{req}
    number (the login process's authentications and the services
    process's deliveries, to the master; deliveries on a link to a pool
    worker, L{imapd.process.delivery.DeliveryLinks}).
    """

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._pending: dict[int, defer.Deferred] = {}
        self._idle: list[Callable[[], object]] = []

    def pending(self) -> int:
        """How many requests wait for their reply."""
        return len(self._pending)

    def when_idle(self, callback: Callable[[], object]) -> None:
        """Call C{callback} once no request waits (at once if none does)."""
        self._idle.append(callback)
        self._check_idle()

    def _check_idle(self) -> None:
        if not self._pending:
            idle, self._idle = self._idle, []
            for callback in idle:
                callback()

    def send(self, control, message: dict, fds=()) -> defer.Deferred:
        """Send C{message} on C{control}: a Deferred of its reply."""
        req = next(self._ids)
        d = self._pending[req] = defer.Deferred()
        control.send(dict(message, req=req), fds)
        return d

    def answer(self, reply: dict) -> None:
        """A C{reply} came: fire its request's Deferred (none for an unknown C{req})."""
        d = self._pending.pop(reply.get("req"), None)
        if d is not None:
            d.callback(reply)
            self._check_idle()

    def fail_all(self, error: Exception) -> None:
        """The peer is gone: every request still waiting fails with C{error}."""
        pending, self._pending = self._pending, {}
        for d in pending.values():
            d.errback(error)
        self._check_idle()
