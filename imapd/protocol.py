# -*- test-case-name: tests.imapd.test_protocol -*-
"""
The IMAP server protocol: bytes in, typed commands to handlers, responses
out.

Standing rule (issue 18): work and memory that a client or a message
controls are linear in their input, bounded by a limit, or run in the
storage pool with a deadline.  Never a backtracking regular expression
over client text, never recursion whose depth the client picks, never an
unbounded loop in one reactor turn, never a buffer without a limit.

Invariants of the protocol layer (keep them true; handlers rely on them):

 1. One command at a time per connection.  Commands the client pipelines
    are parsed as they arrive and queued; the next starts only when the
    previous one's tagged response has been written.  Too much queued
    input (or compressed input not yet inflated) pauses the transport,
    and so does a client that does not read its responses.  The command
    pump is a loop, never a recursion, and yields to the reactor after
    L{_TURN_COMMANDS} commands, so that one connection's pipeline (or
    its compression bomb, L{imapd.compress}) cannot starve the others.
 2. The parser does no I/O and the handlers do no parsing: the parser turns
    bytes into L{imapd.parser.types} objects, handlers turn those into
    responses.  The dispatcher (L{IMAPServerProtocol._dispatch}) checks the
    session state against the command table once, before any handler runs.
 3. Every blocking call into a store runs in the storage thread pool
    (L{IMAPServerProtocol.run}); the reactor thread never touches mail
    files.  Responses are written only from the reactor thread, so a
    session never writes to a client while a store holds a lock.
 4. Errors become NO/BAD/BYE in one place, L{imapd.errors.to_response}.  An
    unexpected exception is a C{NO [SERVERBUG]} plus a log entry with the
    traceback; the client never sees internals.
 5. The selected mailbox changes in the session's view only through
    L{imapd.selected.SelectedView}; after each command the view is re-synced
    with the store, and EXPUNGE is withheld after commands that use
    sequence numbers (RFC 3501 section 7.4.1).
 6. No credentials travel in clear text unless the configuration allows
    it (RFC 3501 section 6.2.3, LOGINDISABLED); STARTTLS drops whatever the
    client pipelined after it (RFC 3501 section 6.2.1).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from typing import Any, Callable, Iterable, Optional

from twisted.internet import defer
from twisted.internet.protocol import Protocol
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure

from storage.errors import StoreError

from imapd import cancel, errors, metrics
from imapd.logtext import log_safe
from imapd.parser import Parser, ParserLimits
from imapd.parser.types import Command, ContinuationNeeded, ParseError, RawLine
from imapd.server import StoragePool

__all__ = ["IMAPServerProtocol"]

_session_ids = itertools.count(1)

#: Queued events beyond which the transport is paused (invariant 1).
_MAX_QUEUED = 64
#: Commands one connection runs in one reactor turn before it lets the
#: other connections have theirs (invariant 1).
_TURN_COMMANDS = 32
#: Input held back from the parser (L{IMAPServerProtocol._holding_input})
#: beyond which reading pauses.
_MAX_UNFED = 64 * 1024
#: Pieces of compressed input (L{imapd.compress.CHUNK} octets of plain
#: text each) inflated at most per reactor turn while no command is queued.
_TURN_INFLATE = 4
#: Tracebacks of unexpected errors logged per connection; a client that
#: can trigger one can trigger thousands (issue 18 item 2).
_MAX_TRACEBACKS = 3
#: Parts of a streamed response (L{IMAPServerProtocol.run_streaming})
#: that may wait for the reactor, and how long a worker waits for room.
_STREAM_WINDOW = 4
_STREAM_STALL = 60.0
#: Octets per part of a long response written by L{IMAPServerProtocol.send_parts}.
_SEND_PART = 1 << 16


class IMAPServerProtocol(Protocol):
    """
    One client connection.  Handlers receive this object as their
    C{session} argument and use the small API below (send, run, read_line,
    state, account, selected).
    """

    log = Logger()

    def __init__(self, context, implicit_tls: bool = False) -> None:
        self.context = context
        self.limits = context.limits
        self.clock = context.reactor
        self.tls_active = implicit_tls
        self.state = "nonauth"
        self.account = None
        self.selected = None
        self.enabled: set[str] = set()
        #: The parameters of the client's ID command (RFC 2971), escaped.
        self.client_id: tuple = ()
        self.session_id = "%x-%d" % (int(time.time()), next(_session_ids))
        self.parser = Parser(self._parser_limits())
        self._queue: deque = deque()
        self._busy = False
        self._paused = False
        self._line_waiter: Optional[defer.Deferred] = None
        #: Input that arrived while a CATENATE URL check was running.
        self._held: Optional[list[bytes]] = None
        self._timeout_call = None
        #: Deadline from connect to login (C{limits.login_timeout}).
        self._login_call = None
        #: Deadline for the partial command line (C{limits.line_timeout}).
        self._line_call = None
        #: The pump is running (a command that completes at once must not
        #: call it again: pipelining would recurse, invariant 1).
        self._pumping = False
        self._inflating = False
        #: A later reactor turn is scheduled to go on with queued work.
        self._next_turn = None
        #: The transport's write buffer is full: the client is not reading.
        self._write_blocked = False
        #: Parts of a streamed response held back while the client does
        #: not read (L{run_streaming}).
        self._blocked_parts: list = []
        self._producing = False
        self._tracebacks = 0
        #: C{(address,)} as counted by L{imapd.server.ConnectionCounter}.
        self.connection_slot: Optional[tuple] = None
        self._bad_count = 0
        self._failed_logins = 0
        self._closing = False
        #: Set by a handler that wrote its own tagged response (STARTTLS).
        self.suppress_tagged = False
        #: A VANISHED went out during the current command (RFC 7162 3.2.10).
        self._vanished_sent = False
        self.bytes_in = 0
        self.bytes_out = 0
        self._started = time.monotonic()
        #: The session ends with one log line (issue 16 item 8): the
        #: greeting went out, the client sent LOGOUT, the text of the
        #: server's last BYE (why it closed the connection).
        self._greeted = False
        self.logged_out = False
        self._bye: Optional[str] = None
        self.peer = "unknown"
        #: The client's address named by a trusted proxy (ID
        #: x-originating-ip), or None: the transport's peer is the client.
        self.client_address = None
        #: Hops a relayed login may still make (ID x-proxy-ttl from a
        #: trusted proxy), or None (L{imapd.cluster.relay}).
        self.proxy_ttl = None
        #: The owner's connection, once LOGIN was relayed to it: set by the
        #: handler, started after the tagged OK (L{start_relay}).
        self.relay_pending = None
        self._relay = None
        #: Input not yet given to the parser (L{_holding_input}).
        self._unfed = bytearray()
        self._unfed_paused = False
        #: RFC 4978 COMPRESS=DEFLATE state (L{imapd.compress.Deflate}).
        self.compression = None
        #: RFC 5465 NOTIFY state (L{imapd.commands.notify.Watch}), or None
        #: before the first NOTIFY command.
        self.notify = None
        #: Work a handler leaves for after its tagged response, such as
        #: indexing the mail it added (L{imapd.fts.indexer}); see
        #: L{_after_answer}.
        self.after_answer: list = []

    # -- connection life -------------------------------------------------

    def connectionMade(self) -> None:
        # A response's untagged data and its tagged line often leave in
        # two writes; with Nagle's algorithm the second waits for the
        # client's delayed ACK (~40 ms).  TLS wrappers pass this through;
        # a UNIX socket has the method but refuses the option.
        try:
            self.transport.setTcpNoDelay(True)
        except (AttributeError, OSError):
            pass
        peer = self.transport.getPeer()
        self.peer = f"{getattr(peer, 'host', peer)}:{getattr(peer, 'port', '')}"
        from imapd.commands.any import capabilities

        caps = " ".join(capabilities(self))
        # The server's name (option hostname, --hostname) as Dovecot's
        # login_greeting shows it; RFC 3501 section 7.1.1 leaves the text free.
        name = log_safe(self.context.hostname or "")
        self.send(f"* OK [CAPABILITY {caps}] {name + ' ' if name else ''}imapd ready.\r\n"
                  .encode("utf-8", "replace"))
        self._greeted = True
        # The write side: Twisted pauses us when the client does not read
        # what we write, and no further command runs until it does.
        self.transport.registerProducer(self, True)
        self._producing = True
        self._reset_timeout()
        self._login_call = self.clock.callLater(self.limits.login_timeout,
                                                self._login_timed_out)

    def connectionLost(self, reason=None) -> None:
        self._closing = True
        metrics.session_bytes(self.bytes_in, self.bytes_out)
        relayed = self._relay is not None
        if self._relay is not None:
            relay, self._relay = self._relay, None
            relay.transport.loseConnection()
            self.log_event("relay closed", relay.user.decode("utf-8", "replace"))
        # A streaming worker waiting for the client to read gives up now.
        parts, self._blocked_parts = self._blocked_parts, []
        for release in parts:
            release()
        for name in ("_timeout_call", "_login_call", "_line_call", "_next_turn"):
            self._cancel(name)
        if self.connection_slot is not None:
            (host,), self.connection_slot = self.connection_slot, None
            self.context.connections.release(host)
        if self._line_waiter is not None:
            waiter, self._line_waiter = self._line_waiter, None
            waiter.errback(Failure(errors.ConnectionClosing("connection lost")))
        closing = []
        if self.selected is not None:
            closing.append((self.selected.mailbox, "close"))
            self.selected = None
        if self.account is not None:
            self._log_end(self.account.user)
            closing.append((self.account, "logout"))
            self.account = None
        elif self._greeted and not relayed and not self.handed_away():
            # A connection that never logged in (a scanner, a client that
            # gave up after failed logins) leaves its line too.
            self._log_end("")
        if closing:
            self._close_quietly(*closing)

    def handed_away(self) -> bool:
        """Whether another process serves the session now (a login process's)."""
        return False

    def _log_end(self, user: str) -> None:
        """
        The session's last line: C{logout} after LOGOUT, else
        C{disconnected} (C{disconnected before login} without a login),
        with the reason: the server's BYE, or the client closing.
        """
        extra = {}
        if self._failed_logins:
            extra["failed_logins"] = self._failed_logins
        if self.logged_out:
            event = "logout"
        else:
            event = "disconnected" if user else "disconnected before login"
            extra["reason"] = self._bye or "connection closed by the client"
        self.log_event(event, user, **extra)

    def _cancel(self, name: str) -> None:
        call = getattr(self, name)
        setattr(self, name, None)
        if call is not None and call.active():
            call.cancel()

    # -- the write side (IPushProducer for our transport) ----------------

    def pauseProducing(self) -> None:
        """The transport's buffer is full: start no command until it drains."""
        self._write_blocked = True

    def resumeProducing(self) -> None:
        self._write_blocked = False
        parts, self._blocked_parts = self._blocked_parts, []
        for release in parts:
            release()
        if not self._closing:
            self._pump()

    def stopProducing(self) -> None:
        self._closing = True

    def log_event(self, event: str, user: str, **extra) -> None:
        """
        One log line for a login, a failed login or a logout, with the
        same fields every time (never a password).  The user name may be
        anything a client sent: escaped (L{log_safe}).
        """
        extra = {k: log_safe(v) for k, v in extra.items()}
        fields = "".join(f" {k}={{{k}}}" for k in extra)
        self.log.info(
            "{event} user={user} session={session} remote={remote} "
            "in={bytes_in} out={bytes_out} duration={duration:.1f}s" + fields,
            event=event,
            user=log_safe(user),
            session=self.session_id,
            remote=self.peer,
            bytes_in=self.bytes_in,
            bytes_out=self.bytes_out,
            duration=time.monotonic() - self._started,
            **extra,
        )

    def _close_quietly(self, *closing: tuple[Any, str]) -> None:
        """
        Call each C{(object, method name)} of C{closing} in order, all in
        one storage-pool trip (a disconnect closes the mailbox, then logs
        the account out), each whatever the others did; failures are
        logged, on the reactor thread.
        """
        def close_all() -> list:
            failed = []
            for obj, method in closing:
                try:
                    getattr(obj, method)()
                except Exception:
                    failed.append((obj, Failure()))
            return failed

        def log(failed) -> None:
            for obj, failure in failed:
                self.log.failure("closing {obj}", failure, obj=obj)
        d = self.run(close_all)
        d.addCallback(log)
        d.addErrback(lambda f: self.log.failure("closing {obj}", f, obj=closing))

    # -- the small API handlers use ---------------------------------------

    def send(self, data: bytes) -> None:
        """Write response bytes (one or more complete lines)."""
        if self._closing or self.transport is None:
            return
        if data.startswith(b"* BYE ") and self._bye is None:
            self._bye = data[6:].split(b"\r\n", 1)[0].decode("utf-8", "replace")
        if self.compression is not None:
            data = self.compression.compress(data)
        self.bytes_out += len(data)
        self.transport.write(data)

    async def send_parts(self, pieces: Iterable[bytes]) -> None:
        """
        Write a long response made on the reactor thread (a SEARCH of a
        large mailbox, a LIST of very many names), gathered into parts of
        about L{_SEND_PART} octets, waiting after a part while the
        transport says the client is not reading (L{pauseProducing}).  A
        client that sends such commands and never reads then costs a part
        beyond the transport's buffer, not the response text (issue 18);
        the pieces are only made as they are sent.  Stops when the
        connection closes.
        """
        part: list[bytes] = []
        size = 0
        for piece in pieces:
            part.append(piece)
            size += len(piece)
            if size >= _SEND_PART:
                if not await self._send_part(b"".join(part)):
                    return
                part, size = [], 0
        if part:
            await self._send_part(b"".join(part))

    async def _send_part(self, data: bytes) -> bool:
        """L{send}, then wait while the client does not read; False once closing."""
        if self._closing:
            return False
        self.send(data)
        while self._write_blocked and not self._closing:
            drained: defer.Deferred = defer.Deferred()
            self._blocked_parts.append(lambda: drained.callback(None))
            await drained
        return not self._closing

    def run(self, fn: Callable, *args, **kwargs) -> defer.Deferred:
        """
        Run a blocking store call in the storage thread pool (invariant 3).
        Without a pool (unit tests) the call runs inline, so conversations
        stay deterministic.
        """
        pool = self.context.storage_pool
        # Per-message loops stop once the client is gone (imapd.cancel).
        fn = cancel.bound(self._is_closing, fn)
        if pool is None:
            return defer.maybeDeferred(fn, *args, **kwargs)
        if isinstance(pool, StoragePool):
            return pool.run(self.clock, self._pool_key(), fn, *args, **kwargs)
        return deferToThreadPool(self.clock, pool, fn, *args, **kwargs)

    def _is_closing(self) -> bool:
        return self._closing

    def run_streaming(self, fn: Callable, *args) -> defer.Deferred:
        """
        Like L{run}, for a blocking call that produces a long response in
        parts: C{fn(emit, *args)} calls C{emit(data)} from its thread for
        each part, in order, and C{emit} answers whether to go on (False
        once the connection is closing).  The parts are written from the
        reactor thread (invariant 3) as they come, all before the returned
        Deferred fires.

        A large FETCH used one pool round trip per batch, and the reactor
        and the worker took turns: each hop (queue, wake-up, Deferred,
        coroutine) cost about as much as rendering 200 messages.  Here the
        worker keeps rendering while the reactor writes.  At most
        L{_STREAM_WINDOW} parts wait for the reactor; beyond that the
        worker waits (which also hands the GIL to the reactor).  A part
        written while the transport says the client is not reading
        (L{pauseProducing}) keeps its place until the client reads, so a
        client that sends C{FETCH 1:* BODY[]} and never reads costs
        L{_STREAM_WINDOW} parts of memory, not the mailbox.
        """
        pool = self.context.storage_pool
        if pool is None:
            # Unit tests: inline and deterministic.
            def emit_inline(data: bytes) -> bool:
                self.send(data)
                return not self._closing
            return self.run(fn, emit_inline, *args)
        window = threading.BoundedSemaphore(_STREAM_WINDOW)
        call = self.clock.callFromThread

        def deliver(data: bytes) -> None:
            try:
                self.send(data)
            finally:
                if self._write_blocked and not self._closing:
                    # The client does not read: the part's place in the
                    # window frees only when it does (resumeProducing), so
                    # the worker waits instead of filling our memory.
                    self._blocked_parts.append(window.release)
                else:
                    window.release()

        def emit(data: bytes) -> bool:
            if self._closing:
                return False
            if not window.acquire(timeout=_STREAM_STALL):
                # The reactor has not taken a part for that long: it is
                # stopping, or wedged; don't hold a pool thread for it.
                raise errors.ConnectionClosing("Response stream stalled")
            call(deliver, data)
            return True
        return self.run(fn, emit, *args)

    def _pool_key(self):
        """
        Whose share of the storage pool a call uses (L{StoragePool}): the
        user and the selected mailbox, so a mailbox whose reads hang
        stalls the sessions that use it and no others.
        """
        if self.account is None:
            return ("", self.session_id)
        view = self.selected
        return (self.account.user, view.mailbox.name if view is not None else None)

    def read_line(self, prompt: bytes) -> defer.Deferred:
        """
        Send a continuation request and wait for one raw line from the
        client (AUTHENTICATE responses, IDLE's DONE).
        """
        self.send(b"+ " + prompt + b"\r\n" if prompt is not None else b"+\r\n")
        return self.expect_line()

    def expect_line(self) -> defer.Deferred:
        """Wait for one raw line without sending a prompt."""
        self.parser.expect_raw_line()
        self._line_waiter = defer.Deferred()
        # The client may have sent the line together with the command.
        self._drain_raw_lines()
        return self._line_waiter

    def cancel_line(self) -> None:
        """Stop waiting for a raw line (e.g. IDLE woken by a timer)."""
        self._line_waiter = None

    def set_authenticated(self, account) -> None:
        self.account = account
        self.state = "auth"
        self.parser.limits = self._parser_limits()
        self._cancel("_login_call")
        self._reset_timeout()

    def start_tls(self) -> None:
        """Switch the transport to TLS after the OK has been written."""
        # RFC 3501 section 6.2.1: anything pipelined after STARTTLS was
        # sent in clear text and must not be acted upon.
        self.parser.reset()
        self._queue.clear()
        self._unfed.clear()
        self.transport.startTLS(self.context.tls)
        self.tls_active = True

    def disconnect(self) -> None:
        self._closing = True
        self._cancel("_next_turn")
        if self.transport is not None:
            if self._producing:
                self._producing = False
                self.transport.unregisterProducer()
            self.transport.loseConnection()

    @property
    def imap4rev2(self) -> bool:
        """
        Whether the client said C{ENABLE IMAP4rev2} (RFC 9051 section
        6.3.1): the one switch the response formatters consult for what
        IMAP4rev2 changes on the wire (Appendix E): UTF-8 mailbox names,
        ESEARCH for every SEARCH, no C{\\Recent}/RECENT/C{[UNSEEN]}, a
        LIST and C{[CLOSED]} around SELECT.  Off, the session speaks
        IMAP4rev1 exactly as before.
        """
        return "IMAP4rev2" in self.enabled

    @property
    def plaintext_auth_allowed(self) -> bool:
        return self.tls_active or self.context.allow_plaintext_auth

    # -- input -------------------------------------------------------------

    def _parser_limits(self) -> ParserLimits:
        lim = self.limits
        if self.state == "nonauth":
            literal, count = lim.max_literal_unauth, lim.max_literals_unauth
        else:
            literal, count = lim.max_literal, lim.max_literals_per_command
        return ParserLimits(
            max_line=lim.max_line, max_literal=literal, max_literals_per_command=count
        )

    def start_compression(self) -> None:
        """
        RFC 4978: compress both directions from now on (called by the
        COMPRESS handler just after its tagged OK went out uncompressed).
        """
        from imapd.compress import Deflate

        self.compression = Deflate()

    @property
    def input_pending(self) -> bool:
        """Whether the client sent anything after the current command."""
        return (bool(self._queue) or bool(getattr(self.parser, "_buf", b""))
                or (self.compression is not None and self.compression.pending))

    def dataReceived(self, data: bytes) -> None:
        if self._closing:
            return
        self.bytes_in += len(data)
        if self._relay is not None:
            self._relay.transport.write(data)
            return
        self._reset_timeout()
        if self._unfed or self._holding_input():
            self._unfed += data
            self._pump()
            return
        if self.compression is None:
            self._feed(data)
        else:
            # Kept compressed; inflated as commands are consumed (invariant 1).
            self.compression.feed(data)
            self._inflate()
        self._pump()

    def _inflate(self) -> None:
        """
        Inflate pending compressed input, a L{imapd.compress.CHUNK} at a
        time, at most L{_TURN_INFLATE} pieces, and only while few commands
        wait (a CATENATE check holding input stops it too).
        """
        import zlib

        if self._inflating:
            # A raw line fed below finished a command (IDLE's DONE), whose
            # pump came back here: the rest of this piece must be queued
            # before the next piece is inflated.
            return
        self._inflating = True
        try:
            for _ in range(_TURN_INFLATE):
                if (self._closing or self._held is not None or len(self._queue) >= _MAX_QUEUED
                        or not self.compression.pending):
                    return
                try:
                    plain = self.compression.inflate()
                except zlib.error:
                    self.send(b"* BYE Invalid compressed data\r\n")
                    self.disconnect()
                    return
                if plain:
                    self._feed(plain)
        finally:
            self._inflating = False

    def _feed(self, data: bytes) -> None:
        if self._held is not None:
            # A CATENATE URL check decides what the parser sees next.
            self._held.append(data)
            return
        events = self.parser.feed(data)
        for i, event in enumerate(events):
            if isinstance(event, ContinuationNeeded):
                if event.urls and i == len(events) - 1 and self._may_check_urls(event):
                    self._held = []
                    defer.Deferred.fromCoroutine(self._check_urls(event))
                    continue
                # RFC 3501 section 7.5: the client waits for this before
                # it sends the literal.
                self.send(b"+ Ready for literal data\r\n")
            elif isinstance(event, RawLine) and self._line_waiter is not None:
                waiter, self._line_waiter = self._line_waiter, None
                waiter.callback(event.data)
            else:
                self._queue.append(event)

    def _may_check_urls(self, event: ContinuationNeeded) -> bool:
        # Check early only when every earlier command has finished (one of
        # them might create the message a URL names) and the client is
        # really waiting for the continuation.
        return (self.account is not None and event.tag is not None and not self._busy
                and not self._queue and self.parser.awaiting_literal(event.size))

    async def _check_urls(self, event: ContinuationNeeded) -> None:
        """
        RFC 4469 Appendix A: the URLs of a CATENATE are checked as they
        arrive, and a bad one gets the tagged C{NO [BADURL ...]} in place
        of the continuation for the next literal, so the client sends no
        more.  If they are fine (or the check itself fails) the client gets
        its continuation; the APPEND handler checks everything again.
        """
        from imapd.commands.append import check_urls

        try:
            await check_urls(self, event.urls, event.mailbox)
        except errors.IMAPError as e:
            status, code, text = errors.to_response(e)
            self.parser.refuse_literal()
            self.send(_tagged(event.tag, status, code, text, self.imap4rev2))
        except Exception:
            self.log.failure("CATENATE URL check failed")
            self.send(b"+ Ready for literal data\r\n")
        else:
            self.send(b"+ Ready for literal data\r\n")
        held, self._held = self._held or [], None
        for n, chunk in enumerate(held):
            if self._closing:
                return
            self._feed(chunk)
            if self._held is not None:
                self._held.extend(held[n + 1:])
                return
        self._pump()

    def _drain_raw_lines(self) -> None:
        for i, event in enumerate(self._queue):
            if isinstance(event, RawLine):
                del self._queue[i]
                waiter, self._line_waiter = self._line_waiter, None
                waiter.callback(event.data)
                return

    def enqueue_internal(self, cmd: Command) -> None:
        """
        Queue a command the server made itself (RFC 5465 NOTIFY's
        re-check), so that it runs between the client's commands, one at
        a time like them (invariant 1).
        """
        if not self._closing:
            self._queue.append(cmd)
            self._pump()

    def _holding_input(self) -> bool:
        """
        Whether input is given to the parser one command at a time: before
        login, when the login may be relayed to another node
        (C{context.relay}), so that what the client pipelined after its
        LOGIN is still raw bytes for the owner (L{start_relay}).  A login
        process overrides this: it hands what follows to a mail worker.
        """
        return self.state == "nonauth" and self.context.relay is not None

    def _feed_lines(self) -> None:
        """
        Give the parser the next line of held input only once the previous
        command is done (or its handler waits for a line: AUTHENTICATE);
        once input is no longer held (logged in), all of it.
        """
        if not self._holding_input():
            data, self._unfed = bytes(self._unfed), bytearray()
            self._feed(data)
        while (self._unfed and not self._queue and not self._closing
               and (not self._busy or self._line_waiter is not None)):
            end = self._unfed.find(b"\n")
            end = len(self._unfed) if end < 0 else end + 1
            chunk = bytes(self._unfed[:end])
            del self._unfed[:end]
            self._feed(chunk)
            if self._busy and self._line_waiter is None:
                break
        if self.transport is None or self._closing:
            return
        if not self._unfed_paused and len(self._unfed) > _MAX_UNFED:
            self._unfed_paused = True
            self.transport.pauseProducing()
        elif self._unfed_paused and len(self._unfed) < _MAX_UNFED // 4:
            self._unfed_paused = False
            self.transport.resumeProducing()

    def _pump(self) -> None:
        """
        Run queued commands, one at a time (invariant 1).  A command that
        completes at once calls back into L{_pump} through
        L{_command_done}; that call returns at once and this loop goes on,
        so that 10,000 pipelined commands are a loop, not a recursion.
        After L{_TURN_COMMANDS} commands the rest waits for a later
        reactor turn (L{_flow}).
        """
        if self._pumping:
            return
        if self._unfed:
            self._feed_lines()
        self._pumping = True
        try:
            ran = 0
            while not self._busy and not self._closing and not self._write_blocked:
                if not self._queue and self._unfed:
                    # The command before is done: the next held one.
                    self._feed_lines()
                if not self._queue:
                    if self.compression is None or not self.compression.pending:
                        break
                    self._inflate()
                    if not self._queue:
                        break
                    continue
                if ran >= _TURN_COMMANDS:
                    break
                ran += 1
                event = self._queue.popleft()
                if isinstance(event, ParseError):
                    self._parse_error(event)
                    continue
                if isinstance(event, RawLine):
                    self._send_bad(None, "Unexpected continuation data")
                    continue
                self._busy = True
                d = defer.Deferred.fromCoroutine(self._dispatch(event))
                d.addBoth(self._command_done)
        finally:
            self._pumping = False
        self._flow()

    def _flow(self) -> None:
        """
        After the pump: pause reading while input waits (queued commands
        or compressed input), resume when it is consumed, schedule another
        turn if there is work this one left, and watch the time the client
        takes to finish a command line (C{limits.line_timeout}).
        """
        if self._closing or self.transport is None:
            return
        pending = self.compression is not None and self.compression.pending
        if not self._paused and (len(self._queue) > _MAX_QUEUED or pending):
            self._paused = True
            self.transport.pauseProducing()
        elif self._paused and len(self._queue) < _MAX_QUEUED // 2 and not pending:
            self._paused = False
            self.transport.resumeProducing()
        more = ((self._queue and not self._busy and not self._write_blocked)
                or (pending and len(self._queue) < _MAX_QUEUED and self._held is None))
        if more and self._next_turn is None:
            self._next_turn = self.clock.callLater(0, self._turn)
        if self.parser.partial_line:
            if self._line_call is None:
                self._line_call = self.clock.callLater(self.limits.line_timeout,
                                                       self._line_timed_out)
        else:
            self._cancel("_line_call")

    def _turn(self) -> None:
        """A later reactor turn: go on with queued or compressed input."""
        self._next_turn = None
        if self._closing:
            return
        if self.compression is not None:
            self._inflate()
        self._pump()

    def _command_done(self, result) -> None:
        self._busy = False
        if isinstance(result, Failure):
            self._log_traceback(result, "command dispatch failed")
            self.disconnect()
            return
        self._pump()

    def _log_traceback(self, error, what: str, **fields) -> None:
        """
        Log an unexpected error (a L{Failure} or an exception) with its
        traceback, at most L{_MAX_TRACEBACKS} per connection (then one
        line saying so): a client that can cause one can cause thousands.
        """
        self._tracebacks += 1
        if self._tracebacks <= _MAX_TRACEBACKS:
            failure = error if isinstance(error, Failure) else Failure(error)
            self.log.failure(what + " session={session}", failure,
                             session=self.session_id, **fields)
        elif self._tracebacks == _MAX_TRACEBACKS + 1:
            self.log.error("session={session}: more unexpected errors, not logged",
                           session=self.session_id)

    def _parse_error(self, event: ParseError) -> None:
        code = f"[{event.code}] " if event.code else ""
        if event.fatal:
            self.send(f"* BYE {code}{event.reason}\r\n".encode())
            self.disconnect()
            return
        if event.code == "TOOBIG" and event.tag:
            # RFC 7889 section 4: a message over the APPENDLIMIT is a NO
            # [TOOBIG]; the client did nothing wrong syntactically.
            self.send(_tagged(event.tag, b"NO", event.code, event.reason, self.imap4rev2))
            return
        self._send_bad(event.tag, code + event.reason)

    def _send_bad(self, tag: Optional[str], text: str) -> None:
        self._bad_count += 1
        prefix = tag if tag else "*"
        self.send(f"{prefix} BAD ".encode() + _text(text, self.imap4rev2) + b"\r\n")
        if self._bad_count >= self.limits.max_bad_commands:
            self.send(b"* BYE Too many invalid commands\r\n")
            self.disconnect()

    # -- dispatch ------------------------------------------------------------

    async def _dispatch(self, cmd: Command) -> None:
        from imapd.commands import lookup

        key, spec = lookup(cmd)
        if spec is None:
            self._send_bad(cmd.tag, f"Command {key} is not supported")
            return
        if self.state not in spec.states:
            self._send_bad(cmd.tag, _state_error(key, self.state))
            return
        self.suppress_tagged = False
        self._vanished_sent = False
        if self.selected is not None:
            self.selected.synced = None
        started, status = time.monotonic(), "ok"
        try:
            result = await spec.handler(self, cmd)
            if self.selected is not None and spec.sync and not self._closing:
                await self.sync(allow_expunge=not spec.uses_seqs)
        except GeneratorExit:
            # The coroutine is being closed (collected with nobody left to
            # resume it, its connection gone): there is no one to answer.
            raise
        except BaseException as exc:  # noqa: B902 - mapped in one place
            status = self._answer_error(cmd, key, exc, spec.trycreate)
            self._after_answer()
            return
        finally:
            if self.account is not None:
                # RFC 5465: other sessions of this user that asked for
                # NOTIFY look at once rather than at their next poll.
                from imapd.commands.notify import changes

                changes.post(self, key, cmd)
            metrics.command_done(key, status, time.monotonic() - started)
        if self._closing or self.suppress_tagged:
            return
        self._bad_count = 0
        text = f"{key} completed"
        code = None
        if result is not None:
            code, text = result
        if code is None and self._vanished_sent and self.selected is not None:
            # RFC 7162 section 3.2.10: after VANISHED, the client stores the
            # HIGHESTMODSEQ it is now in step with for its next resync; the
            # tagged OK says it, as EXPUNGE's does (section 3.2.7), and as
            # Dovecot's does for NOOP.
            code = f"HIGHESTMODSEQ {self.selected.highestmodseq}"
        self.send(_tagged(cmd.tag, b"OK", code, text, self.imap4rev2))
        self._after_answer()
        if self.relay_pending is not None:
            backend, self.relay_pending = self.relay_pending, None
            self.start_relay(backend)

    def _after_answer(self) -> None:
        """
        Start what the command left for after its answer (L{after_answer})
        and index new mail of the selected mailbox: background work that
        the client must not wait for.  It only schedules; nothing here
        blocks or raises into the session.
        """
        from imapd.fts.indexer import after_command

        jobs, self.after_answer = self.after_answer, []
        if self._closing:
            return
        for job in [*jobs, lambda: after_command(self)]:
            try:
                job()
            except Exception as e:
                self._log_traceback(e, "after-answer job failed for user={user}",
                                    user=log_safe(getattr(self.account, "user", None)))

    def _answer_error(self, cmd: Command, key: str, exc: BaseException, trycreate: bool) -> str:
        """Answer a failed command; its status for the metrics ("no", "bad", "bye")."""
        if isinstance(exc, StoreError):
            metrics.store_error(exc)
        if self._closing:
            return "closed"
        status, code, text = errors.to_response(exc, trycreate=trycreate)
        if code == "SERVERBUG":
            self._log_traceback(exc, "{command} failed for user={user}",
                                command=log_safe(key),
                                user=log_safe(getattr(self.account, "user", None)))
        if status == b"BYE":
            self.send(_tagged("*", b"BYE", code, text, self.imap4rev2))
            self.disconnect()
        elif status == b"BAD":
            self._send_bad(cmd.tag, (f"[{code}] " if code else "") + text)
        else:
            self.send(_tagged(cmd.tag, status, code, text, self.imap4rev2))
        return status.decode("ascii").lower()

    async def sync(self, allow_expunge: bool, keep=None, own: bool = False,
                   after_apply=None) -> None:
        """
        Re-sync the selected view with the store; send what changed.  A
        command that already synced with the store after its own flag
        commit (STORE, FETCH setting C{\\Seen}) has its snapshot applied
        rather than the mailbox listed again a moment later: that sync
        came after the commit, so it shows the command's effect and
        everybody else's changes up to then; later ones are reported at
        the next command, as any change made after a sync is.

        Once the client said NOTIFY (RFC 5465), what it asked for about the
        selected mailbox decides (L{imapd.commands.notify.sync_selected});
        that calls back here with C{own}, a C{keep} test for the lines and
        C{after_apply}, run between the view's responses and the updated
        search results (RFC 5465 section 7: EXISTS, FETCH, then ESEARCH).
        """
        if self.notify is not None and not own:
            from imapd.commands.notify import sync_selected

            await sync_selected(self, allow_expunge)
            return
        view = self.selected
        snapshot, view.synced = view.synced, None
        if snapshot is None:
            snapshot = await self.run(view.mailbox.sync)
        if self.selected is not view:
            return
        if snapshot.uidvalidity != view.uidvalidity:
            # Nothing may renumber UIDs (DESIGN.md rule 1); if the store
            # says it happened anyway the client's cache is void.
            self.send(b"* BYE [UIDVALIDITY] Mailbox UIDVALIDITY changed\r\n")
            self.disconnect()
            return
        # RFC 5465 section 5.1: NOTIFY's flag updates carry UID.
        report_uid = "CONDSTORE" in self.enabled or own
        for line in view.apply(snapshot, allow_expunge, report_uid):
            if keep is None or keep(line):
                self.send(line)
                if line.startswith(b"* VANISHED "):
                    self._vanished_sent = True
        if after_apply is not None:
            await after_apply()
        if allow_expunge and view.contexts:
            # RFC 5267 section 4.3: updated SEARCH/SORT results, after the
            # EXISTS their new message numbers rely on; never while a
            # command that uses sequence numbers is answered.
            from imapd.search.updates import refresh

            await refresh(self, view)

    # -- timers --------------------------------------------------------------

    def _reset_timeout(self) -> None:
        timeout = (
            self.limits.idle_timeout_unauth
            if self.state == "nonauth"
            else self.limits.idle_timeout_auth
        )
        if self._timeout_call is not None and self._timeout_call.active():
            self._timeout_call.reset(timeout)
        else:
            self._timeout_call = self.clock.callLater(timeout, self._timed_out)

    def start_relay(self, backend) -> None:
        """
        Hand the session to the node that owns its user (issue 15,
        L{imapd.cluster.relay}), once the tagged OK of the relayed LOGIN
        is written: the client's bytes go to C{backend}'s transport, and
        C{backend} passes the owner's bytes to L{relay_received}.  What
        the client pipelined after the LOGIN is still raw
        (L{_holding_input}) and goes to the owner first.
        """
        for name in ("_timeout_call", "_login_call", "_line_call", "_next_turn"):
            self._cancel(name)
        if self._queue or self.parser.partial_line:
            # Parsed already (input that was not held): it cannot be
            # passed on as the client sent it.
            self.send(b"* BYE Commands pipelined after a relayed LOGIN; reconnect\r\n")
            backend.transport.loseConnection()
            self.disconnect()
            return
        self.state = "relayed"
        self._relay = backend
        if self._producing:
            self._producing = False
            self.transport.unregisterProducer()
        # Each side stops reading while the other cannot keep up.
        self.transport.registerProducer(backend.transport, True)
        backend.transport.registerProducer(self.transport, True)
        backend.start(self)
        pending, self._unfed = bytes(self._unfed), bytearray()
        if pending:
            backend.transport.write(pending)
        if self._unfed_paused:
            self._unfed_paused = False
            self.transport.resumeProducing()

    def relay_received(self, data: bytes) -> None:
        """The owner's bytes, for the client."""
        self.bytes_out += len(data)
        self.transport.write(data)

    def relay_lost(self) -> None:
        """The owner closed the relayed session: so do we."""
        if not self._closing:
            self.disconnect()

    def kick(self, reason: str) -> None:
        """
        End the session from outside (its user was moved to another node,
        L{imapd.cluster.sessions}): BYE between commands (never inside a
        response being written), then close once the output is sent.
        """
        if self._closing:
            return
        if not self._busy:
            self.send(b"* BYE [UNAVAILABLE] " + reason.encode("ascii", "replace") + b"\r\n")
        self.log_event("kicked", self.account.user if self.account else "", reason=reason)
        self.disconnect()

    def _timed_out(self) -> None:
        # RFC 3501 section 5.4: the autologout timer.
        self.send(b"* BYE Autologout; idle for too long\r\n")
        self.disconnect()

    def _login_timed_out(self) -> None:
        # Any octet resets the idle timer, so a client sending one every
        # few seconds would hold the connection for ever (slowloris): the
        # time before login is bounded as a whole.
        self._login_call = None
        self.send(b"* BYE Login timeout; authenticate sooner\r\n")
        self.disconnect()

    def _line_timed_out(self) -> None:
        # A command line trickled in an octet at a time (slowloris).
        self._line_call = None
        self.send(b"* BYE Command line not completed in time\r\n")
        self.disconnect()


def _tagged(tag: str, status: bytes, code: Optional[str], text: str, utf8: bool = False) -> bytes:
    code_part = f"[{code}] " if code else ""
    return f"{tag} ".encode() + status + b" " + _text(code_part + text, utf8) + b"\r\n"


def _text(text: str, utf8: bool) -> bytes:
    """
    Human-readable response text.  IMAP4rev1's C{text} is 7-bit (RFC 3501
    section 9, C{TEXT-CHAR}); only after ENABLE IMAP4rev2 may it carry
    UTF-8 (RFC 9051 Appendix E item 24).  Error texts can quote a mailbox
    name or client input, so anything else becomes C{?} for IMAP4rev1.
    """
    if utf8:
        return text.encode("utf-8", "replace")
    return text.encode("ascii", "replace")


def _state_error(key: str, state: str) -> str:
    if state == "nonauth":
        return f"{key} is not allowed before authentication"
    if state == "auth":
        return f"{key} requires a selected mailbox" if key not in ("LOGIN", "AUTHENTICATE", "STARTTLS") else f"{key} is not allowed once authenticated"
    return f"{key} is not allowed in this state"
