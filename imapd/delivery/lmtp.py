# -*- test-case-name: tests.delivery.test_lmtp -*-
"""
An LMTP server (RFC 2033): how an MTA (Postfix's C{lmtp:unix:} and
C{lmtp:inet:} transports, Exim, sendmail's mailer) hands mail to the
stores of this server.

Invariants of this protocol module:
 1. Commands are handled one at a time, in the order they arrived; while
    one waits for the storage pool (a recipient lookup, the deliveries
    after DATA) later pipelined commands (RFC 2920) wait in the buffer.
    So replies come in command order.  The transport is paused only when
    that buffer outgrows L{_HOLD_BACK}: pausing and resuming for every
    command cost two C{epoll_ctl} calls each, more than a small command.
 2. Nothing blocking runs on the reactor thread: user lookups and
    deliveries run in the storage pool (L{imapd.server.StoragePool}),
    under the recipient's share.
 3. Everything a client controls is bounded: a command line
    (L{LMTPSettings.max_line}), recipients per transaction, the message
    size (refused at MAIL FROM when SIZE= says it is too big, else
    counted while DATA streams in and never stored beyond the limit),
    and the time a connection may stay silent.  The message itself is
    never held whole in memory beyond L{imapd.delivery.core.Message.MEMORY}.
 4. After DATA, one reply per accepted recipient, in RCPT order (RFC 2033
    section 4.2), each saying whether that recipient has the message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from twisted.internet import defer
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from imapd.auth.errors import AuthUnavailable
from imapd.delivery.batch import DeliveryQueue
from imapd.delivery.core import DeliveryError, Message, TemporaryFailure
from imapd.mailwatch import watcher_for
from imapd.writes import write_now
from imapd.delivery.syntax import Lhlo, MailFrom, RcptTo, Simple, SyntaxProblem, Vrfy, parse_command

__all__ = ["LMTPSettings", "LMTPFactory", "LMTPServer", "build_lmtp_factory"]

_log = Logger(namespace="imapd.lmtp")


@dataclass(frozen=True)
class LMTPSettings:
    """Limits of the LMTP listeners (C{[lmtp]}; sizes in octets)."""

    #: Largest message accepted (advertised as SIZE, RFC 1870).
    max_message_size: int = 64 * 1024 * 1024
    #: RCPT TO commands accepted per transaction; RFC 5321 section
    #: 4.5.3.1.8 asks for at least 100.
    max_recipients: int = 100
    #: Longest command line with its CRLF.  RFC 5321 section 4.5.3.1.4
    #: allows 512; MAIL FROM with parameters may need more (section 4.5.3.1.4
    #: lets extensions raise it), so a little room is left.
    max_line: int = 2048
    #: Seconds a connection may stay silent (RFC 5321 section 4.5.3.2.7
    #: gives the server 5 minutes).
    timeout: float = 300.0
    #: Seconds one delivery may take before the recipient gets 451: a hung
    #: store must not hold the MTA for ever.
    delivery_timeout: float = 60.0
    #: Open LMTP connections; the next one is answered 421 and closed (the
    #: MTA tries again later).  Postfix opens up to 20 per destination.
    max_connections: int = 100


class LMTPFactory(Factory):
    """
    One L{LMTPServer} per connection.

    @param deliverer: the L{imapd.delivery.core.Deliverer}.
    @param reactor: time and threads (a L{task.Clock} in tests).
    @param pool: the L{imapd.server.StoragePool}, or None to run the
        blocking work inline (unit tests).
    """

    def __init__(self, deliverer, settings: LMTPSettings, reactor, pool=None,
                 hostname: str = "localhost", deliver: Optional[Callable] = None) -> None:
        self.deliverer = deliverer
        self.settings = settings
        self.reactor = reactor
        self.pool = pool
        self.hostname = hostname
        #: C{deliver(recipient, message, sender) -> Deferred[(mailbox, uid)]}:
        #: where the store work runs.  None: here, in the storage pool (the
        #: single process); the services process passes one that runs it in
        #: the recipient's mail worker (L{imapd.process.services}).
        self._deliver = deliver
        #: Deliveries here share a transaction when they come together
        #: (L{imapd.delivery.batch}).
        self.queue = DeliveryQueue(deliverer, self.run)

        #: Open connections (L{LMTPSettings.max_connections}).
        self.connections = 0
        #: Full-text settings (L{imapd.fts.FtsSettings}) where delivered
        #: mail is indexed by this process after the reply: the single
        #: process, whose sessions use the same index.  None elsewhere:
        #: in the multi-process server the user's mail worker, the one
        #: writer of the user's index, indexes it when it sees it.
        self.fts = None

    def buildProtocol(self, addr):
        if self.connections >= self.settings.max_connections:
            return _Busy(self.hostname)
        proto = LMTPServer(self)
        proto.factory = self
        return proto

    def deliver(self, recipient, message: Message, sender: str) -> defer.Deferred:
        """Store C{message} for C{recipient}: a Deferred of (mailbox, UID)."""
        if self._deliver is not None:
            return self._deliver(recipient, message, sender)
        return self.queue.deliver(recipient, message, sender)

    def run(self, user: str, fn: Callable, *args) -> defer.Deferred:
        """Run blocking C{fn} under C{user}'s share of the storage pool."""
        if self.pool is None:
            return defer.maybeDeferred(fn, *args)
        return self.pool.run(self.reactor, (user, None), fn, *args)


class _Busy(Protocol):
    """A connection beyond the limit: RFC 5321 section 3.8's 421, then close."""

    def __init__(self, hostname: str) -> None:
        self.hostname = hostname

    def connectionMade(self) -> None:
        self.transport.write(f"421 4.3.2 {self.hostname} Too many connections, try again "
                             f"later\r\n".encode("utf-8", "replace"))
        self.transport.loseConnection()


#: Input held back while a command waits for the pool before reading
#: stops (a pipelined transaction is a few hundred octets; a client that
#: sends its message before the 354 is held to this much).
_HOLD_BACK = 64 * 1024


def _reply(code: int, status: str, text: str) -> bytes:
    # RFC 2034: the enhanced status code follows the reply code.
    return f"{code} {status} {text}\r\n".encode("utf-8", "replace")


class LMTPServer(Protocol):
    """One LMTP connection (see the module docstring's invariants)."""

    def __init__(self, factory: LMTPFactory) -> None:
        self.factory = factory
        self.settings = factory.settings
        self._buffer = b""
        self._busy = False
        #: Reading stopped: the input held back reached L{_HOLD_BACK}.
        self._paused = False
        self._closed = False
        self._greeted = False
        self._discarding = False
        self._timer = None
        self._reset()
        #: In DATA: the message being received and the parser's state.
        self._message: Optional[Message] = None
        self._too_big = False
        self._received = 0

    def _reset(self) -> None:
        """RFC 5321 section 4.1.1.5: forget the transaction."""
        self._sender: Optional[str] = None
        self._recipients: list = []

    # -- connection --------------------------------------------------------

    def connectionMade(self) -> None:
        self.factory.connections += 1
        # RFC 2034 section 3: no enhanced status code in the greeting.
        self._send(f"220 {self.factory.hostname} LMTP ready\r\n".encode("utf-8", "replace"))
        self._touch()

    def connectionLost(self, reason=None) -> None:
        self.factory.connections -= 1
        self._closed = True
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        if self._message is not None and not self._busy:
            self._message.close()
            self._message = None

    def _touch(self) -> None:
        clock = self.factory.reactor
        if self._timer is not None and self._timer.active():
            self._timer.reset(self.settings.timeout)
        else:
            self._timer = clock.callLater(self.settings.timeout, self._timed_out)

    def _timed_out(self) -> None:
        if self._busy:
            # Our own delivery is slow, not the client: wait for it.
            self._touch()
            return
        self._send(_reply(421, "4.4.2", f"{self.factory.hostname} Timeout, closing"))
        self._close()

    def _send(self, data: bytes) -> None:
        if not self._closed and self.transport is not None:
            write_now(self.transport, data)

    def _close(self) -> None:
        self._closed = True
        self.transport.loseConnection()

    def dataReceived(self, data: bytes) -> None:
        if self._closed:
            return
        self._touch()
        self._buffer += data
        if self._busy:
            if len(self._buffer) > _HOLD_BACK and not self._paused:
                self._paused = True
                self.transport.pauseProducing()
            return
        self._process()

    # -- input -------------------------------------------------------------

    def _process(self) -> None:
        while not self._busy and not self._closed and self._buffer:
            if self._message is not None:
                if not self._feed_data():
                    return
                continue
            end = self._buffer.find(b"\n")
            if end < 0:
                if len(self._buffer) > self.settings.max_line:
                    # Drop what we have; the rest of the line goes too.
                    self._buffer = b""
                    if not self._discarding:
                        self._discarding = True
                        self._send(_reply(500, "5.5.2", "Line too long"))
                return
            line, self._buffer = self._buffer[:end], self._buffer[end + 1:]
            if self._discarding:
                self._discarding = False
                continue
            if len(line) + 1 > self.settings.max_line:
                self._send(_reply(500, "5.5.2", "Line too long"))
                continue
            self._command(line.rstrip(b"\r"))

    def _feed_data(self) -> bool:
        """
        Move DATA from the buffer into the message, undoing the dot
        stuffing (RFC 5321 section 4.5.2), until the line C{.} ends it.
        Lines end only in CRLF here: a bare LF is content, and C{LF.LF} is
        no end (the "SMTP smuggling" ambiguity).  Answers whether the end
        was seen (False: more input is needed).
        """
        buf = self._buffer
        pos, size = 0, len(buf)
        while pos < size:
            if self._at_line_start:
                if buf[pos:pos + 1] == b".":
                    if size - pos < 3 and b".\r\n".startswith(buf[pos:]):
                        break  # maybe the end, maybe not: wait for more
                    if buf.startswith(b".\r\n", pos):
                        self._buffer = buf[pos + 3:]
                        self._end_of_data()
                        return True
                    pos += 1  # a stuffed dot
                self._at_line_start = False
            # Whole runs of lines at once: only a line that starts with a
            # dot needs a look (per line, a large message would cost
            # a copy of the rest of the buffer for each of its lines).
            found = buf.find(b"\r\n.", pos)
            if found >= 0:
                self._store(buf[pos:found + 2])
                pos = found + 2
                self._at_line_start = True
            elif buf.endswith(b"\r\n"):
                self._store(buf[pos:])
                pos = size
                self._at_line_start = True
            else:
                # Keep a trailing CR: it may begin the CRLF before a dot.
                keep = 1 if buf.endswith(b"\r") else 0
                self._store(buf[pos:size - keep])
                pos = size - keep
                break
        self._buffer = buf[pos:]
        return False

    def _store(self, data: bytes) -> None:
        if not data:
            return
        self._received += len(data)
        if self._received > self.settings.max_message_size:
            # Read on to the end (to stay in step with the client), keep nothing.
            self._too_big = True
            return
        self._message.write(data)

    # -- commands ----------------------------------------------------------

    def _command(self, line: bytes) -> None:
        try:
            cmd = parse_command(line)
        except SyntaxProblem as e:
            self._send(_reply(e.code, e.status, e.text))
            return
        if isinstance(cmd, Lhlo):
            self._lhlo(cmd)
        elif isinstance(cmd, MailFrom):
            self._mail(cmd)
        elif isinstance(cmd, RcptTo):
            self._rcpt(cmd)
        elif isinstance(cmd, Vrfy):
            # RFC 5321 section 3.5.3: 252 when we will not verify.
            self._send(_reply(252, "2.5.0", "Cannot verify; send the message and see"))
        elif isinstance(cmd, Simple):
            self._simple(cmd.verb)

    def _lhlo(self, cmd: Lhlo) -> None:
        # RFC 2033 section 4.1: LHLO is EHLO; it resets any transaction.
        self._reset()
        self._greeted = True
        lines = [self.factory.hostname, "PIPELINING", "ENHANCEDSTATUSCODES", "8BITMIME",
                 f"SIZE {self.settings.max_message_size}"]
        out = [f"250-{line}\r\n" for line in lines[:-1]] + [f"250 {lines[-1]}\r\n"]
        self._send("".join(out).encode())

    def _mail(self, cmd: MailFrom) -> None:
        if not self._greeted:
            self._send(_reply(503, "5.5.1", "Send LHLO first"))
        elif self._sender is not None:
            self._send(_reply(503, "5.5.1", "Nested MAIL command"))
        elif cmd.size is not None and cmd.size > self.settings.max_message_size:
            # RFC 1870 section 6.1: refused before a byte of it is sent.
            self._send(_reply(552, "5.3.4", "Message size exceeds fixed maximum message size"))
        else:
            self._sender = cmd.sender
            self._send(_reply(250, "2.1.0", "Ok"))

    def _rcpt(self, cmd: RcptTo) -> None:
        if self._sender is None:
            self._send(_reply(503, "5.5.1", "Send MAIL FROM first"))
            return
        if len(self._recipients) >= self.settings.max_recipients:
            # RFC 5321 section 4.5.3.1.10: 452 for too many recipients.
            self._send(_reply(452, "4.5.3", "Too many recipients"))
            return
        deliverer = self.factory.deliverer
        d = self._wait(self.factory.run("", deliverer.resolve, cmd.address))

        def found(recipient) -> None:
            self._recipients.append(recipient)
            self._send(_reply(250, "2.1.5", "Ok"))

        def failed(failure) -> None:
            error = failure.check(DeliveryError) and failure.value
            if not error:
                if failure.check(AuthUnavailable):
                    # The directory is down: the MTA retries later.
                    _log.error("Looking up {address}: {reason}", address=cmd.address,
                               reason=str(failure.value))
                else:
                    _log.failure("Looking up {address}", failure, address=cmd.address)
                error = TemporaryFailure("Temporary lookup failure")
            self._send(_reply(error.code, error.status, error.text))
        d.addCallbacks(found, failed)
        d.addBoth(self._done)

    def _simple(self, verb: str) -> None:
        if verb == "NOOP":
            self._send(_reply(250, "2.0.0", "Ok"))
        elif verb == "RSET":
            self._reset()
            self._send(_reply(250, "2.0.0", "Ok"))
        elif verb == "QUIT":
            self._send(_reply(221, "2.0.0", "Bye"))
            self._close()
        elif verb == "DATA":
            if self._sender is None:
                self._send(_reply(503, "5.5.1", "Send MAIL FROM first"))
            elif not self._recipients:
                # RFC 2033 section 4.2: no successful RCPT, DATA fails with 503.
                self._send(_reply(503, "5.5.1", "No valid recipients"))
            else:
                self._message = Message()
                self._received = 0
                self._too_big = False
                self._at_line_start = True
                self._send(b"354 Start mail input; end with <CRLF>.<CRLF>\r\n")

    # -- delivery ----------------------------------------------------------

    def _end_of_data(self) -> None:
        message, self._message = self._message, None
        recipients, sender = self._recipients, self._sender
        self._reset()
        if self._too_big:
            message.close()
            for _r in recipients:
                self._send(_reply(552, "5.3.4", "Message too big"))
            return
        # All recipients at once (each in its own share of the pool); the
        # replies still go out in RCPT order.
        jobs = [self._deliver_one(r, message, sender) for r in recipients]
        # The message stays until every job ended, even a hung one
        # answered already with 451.
        defer.DeferredList([inner for inner, _outer in jobs], consumeErrors=True) \
            .addBoth(lambda _: message.close())
        self._wait(self._replies(recipients, [outer for _inner, outer in jobs], sender)) \
            .addBoth(self._done)

    def _deliver_one(self, recipient, message: Message, sender: str):
        """
        Start one delivery: (the pool's Deferred, one that fires with its
        outcome or with a 451 once C{delivery_timeout} has passed).
        """
        inner = self.factory.deliver(recipient, message, sender)
        outer: defer.Deferred = defer.Deferred()
        clock = self.factory.reactor

        def timed_out() -> None:
            if not outer.called:
                _log.error("Delivery to {user} has taken {seconds}s; answered 451",
                           user=recipient.user, seconds=self.settings.delivery_timeout)
                outer.errback(TemporaryFailure("Mail store not responding, try again later",
                                               451, "4.3.0"))
        call = clock.callLater(self.settings.delivery_timeout, timed_out)

        def finished(result):
            if call.active():
                call.cancel()
            if not outer.called:
                outer.callback(result)
            elif not isinstance(result, Failure):
                # The MTA heard 451 and will send it again: say so.
                _log.warn("Delivery to {user} completed after its 451 reply; a retry "
                          "will duplicate it", user=recipient.user)
            return None
        inner.addBoth(finished)
        return inner, outer

    async def _replies(self, recipients, outcomes, sender: str) -> None:
        for recipient, d in zip(recipients, outcomes):
            try:
                mailbox, uid = await d
            except DeliveryError as e:
                self._send(_reply(e.code, e.status, f"<{recipient.address}> {e.text}"))
                continue
            except Exception:
                _log.failure("Delivery to {user}", user=recipient.user)
                self._send(_reply(451, "4.3.0",
                                  f"<{recipient.address}> Temporary internal error"))
                continue
            # The reply first: in the multi-process shape the log line
            # crosses to the master, and the MTA need not wait for that.
            self._send(_reply(250, "2.0.0", f"<{recipient.address}> Saved"))
            _log.info("Delivered to {user} ({mailbox} UID {uid}), from <{sender}>",
                      user=recipient.user, mailbox=mailbox, uid=uid, sender=sender)
            self._index_later(recipient, mailbox)
            # Sessions of this user in IDLE look now, not at their poll.
            watcher_for(self.factory.reactor).changed(recipient.user)

    def _index_later(self, recipient, mailbox: str) -> None:
        # After the reply, in the background (imapd.fts.indexer).
        factory = self.factory
        deliverer = factory.deliverer
        if factory.fts is None or not deliverer.index_dir:
            return
        from imapd.fts.indexer import index_later

        def store():
            return deliverer.open_store(recipient)
        index_later(factory.reactor, factory.pool, store, recipient.user, deliverer.index_dir,
                    mailbox, factory.fts)

    # -- pausing while the pool works --------------------------------------

    def _wait(self, work) -> defer.Deferred:
        """Hold further commands until C{work} is done."""
        self._busy = True
        return defer.ensureDeferred(work) if not isinstance(work, defer.Deferred) else work

    def _done(self, result) -> None:
        self._busy = False
        if self._closed:
            return None
        if self._paused:
            self._paused = False
            self.transport.resumeProducing()
        self._process()
        return None


def build_lmtp_factory(config, effective, reactor, pool, deliver=None) -> LMTPFactory:
    """
    The LMTP factory from the configuration (the C{[lmtp]} table, the mail
    location, the user database of the logins and C{[quota]}), for L{imapd.tap} and for a
    process that runs delivery on its own.

    @param effective: L{imapd.defaults.Effective} (paths after defaults).
    @param pool: the storage pool the lookups (and, without C{deliver},
        the deliveries) run in.
    @param deliver: see L{LMTPFactory}.
    """
    from imapd.delivery.core import Deliverer, delivery_lookup
    from imapd.tap import _quota_policy

    section = config.lmtp
    deliverer = Deliverer(effective.mail_location, delivery_lookup(config, effective),
                          effective.index_dir, _quota_policy(config.quota),
                          section.recipient_delimiter, hostname=effective.hostname)
    settings = LMTPSettings(
        max_message_size=section.max_message_size or config.limits.max_literal,
        max_recipients=section.max_recipients,
        timeout=section.timeout,
        delivery_timeout=section.delivery_timeout,
        max_connections=section.max_connections,
    )
    return LMTPFactory(deliverer, settings, reactor, pool, hostname=effective.hostname,
                       deliver=deliver)
