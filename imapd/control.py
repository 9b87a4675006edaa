# -*- test-case-name: tests.imapd.test_control -*-
"""
The daemon's control socket: C{imapd-admin who} and C{kick} ask the
running server which sessions are logged in, and end a user's sessions
(the counterpart of Dovecot's C{anvil}/C{doveadm who} and C{doveadm kick}).

A UNIX stream socket (C{[service] control_socket}, by default
C{DATA_DIR/run/control}) in a directory of mode 0700, the socket itself
0600, so that only the daemon's owner (and root) can connect; every
connection is checked again by its peer's credentials (C{SO_PEERCRED}):
uid 0 or the daemon's own.  One request per connection, one JSON line
each way:

    {"op": "who"}                        -> {"ok": true, "sessions": [ROW, ...]}
    {"op": "kick", "user": "alice"}      -> {"ok": true, "sessions": [ROW, ...]}  (ended)
    anything else                        -> {"ok": false, "error": "..."}

A ROW says C{user}, C{session} (the id the log lines carry), C{peer},
C{pid}, C{process}, C{seconds} since the connection came, C{mailbox}
(selected, or "") and C{tls}.  The single process answers from the
sessions its realm gave accounts to (L{imapd.cluster.sessions.SessionTracker});
the multi-process master asks each mail worker (L{imapd.process.master})
and merges what they say, naming any worker that did not answer in time.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import time
from typing import Callable, Iterable

from twisted.application import service
from twisted.internet import defer
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.protocols.basic import LineOnlyReceiver

__all__ = ["control_path", "session_row", "answer", "ControlService", "query", "ControlError",
           "KICK_REASON"]

log = Logger(namespace="imapd.control")

#: What a kicked client reads in its BYE.
KICK_REASON = "Disconnected by the administrator"

#: Seconds the master waits for its workers' answers, and a client for
#: the daemon's.
WORKER_TIMEOUT = 5.0
CLIENT_TIMEOUT = 15.0


class ControlError(Exception):
    """The daemon could not be asked; C{str()} says why, in one line."""


def control_path(config) -> str:
    """The control socket of the daemon C{config} configures."""
    return config.service.control_socket or os.path.join(config.server.data_dir, "run",
                                                         "control")


def session_row(session, process: str) -> dict:
    """What C{who} says of one logged-in session (an L{IMAPServerProtocol})."""
    account = session.account
    selected = session.selected
    return {
        "user": account.user if account is not None else "",
        "session": session.session_id,
        "peer": session.peer,
        "pid": os.getpid(),
        "process": process,
        "seconds": round(time.monotonic() - session._started, 1),
        "mailbox": getattr(getattr(selected, "mailbox", None), "name", "") or "",
        "tls": bool(session.tls_active),
    }


def answer(sessions: Iterable, request: dict, process: str) -> dict:
    """
    The answer of one process to C{request} about its logged-in
    C{sessions}: their rows, or with C{kick} the rows of the sessions of
    that user, which are ended (BYE, then closed once the output is out).
    """
    op = request.get("op")
    live = [s for s in sessions if s.account is not None and not s._closing]
    if op == "who":
        return {"ok": True, "sessions": [session_row(s, process) for s in live]}
    if op == "kick":
        user = request.get("user")
        if not isinstance(user, str) or not user:
            return {"ok": False, "error": "kick needs a user"}
        ended = [s for s in live if s.account.user == user]
        rows = [session_row(s, process) for s in ended]
        for s in ended:
            s.kick(KICK_REASON)
        return {"ok": True, "sessions": rows}
    return {"ok": False, "error": f"unknown request {op!r}"}


def _peer_uid(transport) -> int | None:
    try:
        sock = transport.getHandle()
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except (AttributeError, OSError):
        return None
    return struct.unpack("3i", creds)[1]


class _ControlProtocol(LineOnlyReceiver):
    delimiter = b"\n"
    MAX_LENGTH = 4096

    def connectionMade(self) -> None:
        uid = _peer_uid(self.transport)
        if uid not in (0, os.geteuid()):
            log.warn("Control socket: connection of uid {uid} refused", uid=uid)
            self._reply({"ok": False, "error": "not allowed"})
            return
        self._answered = False

    def lineReceived(self, line: bytes) -> None:
        if getattr(self, "_answered", True):
            return
        self._answered = True
        try:
            request = json.loads(line)
            if not isinstance(request, dict):
                raise ValueError("not an object")
        except ValueError as e:
            self._reply({"ok": False, "error": f"bad request: {e}"})
            return
        d = defer.maybeDeferred(self.factory.handle, request)
        d.addErrback(self._failed)
        d.addCallback(self._reply)

    def _failed(self, failure) -> dict:
        log.failure("Control socket request failed", failure)
        return {"ok": False, "error": failure.getErrorMessage()}

    def _reply(self, result: dict) -> None:
        if self.transport is None:
            return
        self.transport.write(json.dumps(result).encode() + b"\n")
        self.transport.loseConnection()

    def lineLengthExceeded(self, line) -> None:
        self._reply({"ok": False, "error": "request too long"})


class ControlService(service.Service):
    """
    Listens on the control socket and answers with C{handle(request)}
    (a dict, or a Deferred of one).
    """

    def __init__(self, path: str, handle: Callable[[dict], object], reactor=None) -> None:
        self.path = path
        self.handle = handle
        self.reactor = reactor
        self.port = None

    def startService(self) -> None:
        from imapd.listeners import ListenError, bind_listeners

        super().startService()
        reactor = self.reactor
        if reactor is None:
            from twisted.internet import reactor
        directory = os.path.dirname(self.path)
        try:
            os.makedirs(directory, mode=0o700, exist_ok=True)
            [sock] = bind_listeners(f"unix:{self.path}:mode=600")
        except (OSError, ListenError) as e:
            # who and kick are for the sysadmin; the mail goes on.
            log.error("No control socket ({error}): imapd-admin who and kick will not "
                      "work (option 'service.control_socket')", error=e)
            return
        factory = Factory.forProtocol(_ControlProtocol)
        factory.noisy = False  # no "Starting factory" lines: we log our own
        factory.handle = self.handle
        try:
            self.port = reactor.adoptStreamPort(sock.fileno(), socket.AF_UNIX, factory)
        finally:
            sock.close()
        # Twisted's adopted UNIX port sets its default mode (0666) again.
        os.chmod(self.path, 0o600)
        log.info("Control socket {path}", path=self.path)

    def stopService(self):
        super().stopService()
        port, self.port = self.port, None
        if port is None:
            return None
        d = defer.maybeDeferred(port.stopListening)

        def unlink(result):
            try:
                os.unlink(self.path)
            except OSError:
                pass
            return result
        return d.addBoth(unlink)


def query(path: str, request: dict, timeout: float = CLIENT_TIMEOUT) -> dict:
    """
    Blocking: ask the daemon listening on C{path}.

    @raises ControlError: no daemon there, refused, or no answer.
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(path)
        except OSError as e:
            raise ControlError(f"cannot reach the daemon at {path}: {e.strerror or e} "
                               f"(is it running? option 'service.control_socket')") from None
        try:
            sock.sendall(json.dumps(request).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except OSError as e:
            raise ControlError(f"{path}: {e.strerror or e}") from None
    finally:
        sock.close()
    try:
        result = json.loads(data)
    except ValueError:
        raise ControlError(f"{path}: no answer from the daemon") from None
    if not result.get("ok"):
        raise ControlError(f"the daemon says: {result.get('error', 'failed')}")
    return result


class Gather:
    """
    The multi-process master's answer to one request: the workers' answers
    merged, once all of C{expected} (child ids) answered or after
    L{WORKER_TIMEOUT} seconds (C{unanswered} then names the others by
    C{titles}).
    """

    def __init__(self, reactor, expected: dict[int, str], timeout: float = WORKER_TIMEOUT) -> None:
        self.waiting = dict(expected)
        self.rows: list = []
        self.errors: list = []
        self.deferred = defer.Deferred()
        self._call = reactor.callLater(timeout, self._finish)
        if not self.waiting:
            self._finish()

    def got(self, child_id: int, result) -> None:
        if self.waiting.pop(child_id, None) is None or self.deferred.called:
            return
        if isinstance(result, dict) and result.get("ok"):
            self.rows.extend(result.get("sessions") or [])
        else:
            self.errors.append(str((result or {}).get("error", "no answer")))
        if not self.waiting:
            self._finish()

    def _finish(self) -> None:
        if self.deferred.called:
            return
        if self._call.active():
            self._call.cancel()
        if self.errors and not self.rows:
            self.deferred.callback({"ok": False, "error": "; ".join(sorted(set(self.errors)))})
            return
        self.deferred.callback({"ok": True, "sessions": self.rows,
                                "unanswered": sorted(self.waiting.values())})
