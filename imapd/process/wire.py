# -*- test-case-name: tests.process.test_process_wire -*-
"""
What the processes say to each other (issue 14): length-prefixed JSON
messages on UNIX stream sockets, a descriptor travelling with the message
that names it, and the L{SessionState} a login process hands to a mail
worker.

A message is a JSON object, sent as a 4-octet big-endian length and the
UTF-8 JSON text.  C{nfds} (default 0) says how many descriptors travel
with it: the sender queues them before the message's first octet
(SCM_RIGHTS), and the receiver takes that many from the front of the
descriptors it has received, which keeps them in step however the stream
is cut into reads.  Octet strings are base64 (L{b64}, L{unb64}).
"""

from __future__ import annotations

import base64
import json
import struct
import zlib
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any, Optional

from imapd.auth.userdb import UserRecord

__all__ = ["MAX_MESSAGE", "ProtocolError", "frame", "Decoder", "SessionState", "b64", "unb64",
           "record_to_json", "record_from_json", "pool_index", "in_pool"]

#: The largest message accepted (a handoff carries at most the input a
#: login process buffers, a few hundred kB; a pickled configuration less).
MAX_MESSAGE = 16 * 1024 * 1024
_HEADER = struct.Struct(">I")


class ProtocolError(Exception):
    """A peer sent something that is not a message of ours."""


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


def frame(message: dict, nfds: int = 0) -> bytes:
    """One message on the wire (C{nfds} descriptors are sent with it)."""
    if nfds:
        message = dict(message, nfds=nfds)
    body = json.dumps(message, separators=(",", ":")).encode("utf-8")
    if len(body) > MAX_MESSAGE:
        raise ProtocolError(f"message of {len(body)} octets is too large")
    return _HEADER.pack(len(body)) + body


class Decoder:
    """
    Cut a byte stream (and the descriptors received with it) into
    messages: C{feed} bytes and C{add_fd} descriptors in the order they
    arrive, C{next} returns (message, fds) pairs while whole ones are
    there.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._fds: deque = deque()

    def add_fd(self, fd: int) -> None:
        self._fds.append(fd)

    def feed(self, data: bytes) -> None:
        self._buf += data

    def messages(self):
        """Yield (message, fds) for every complete message."""
        while len(self._buf) >= _HEADER.size:
            (size,) = _HEADER.unpack_from(self._buf)
            if size > MAX_MESSAGE:
                raise ProtocolError(f"message of {size} octets announced")
            if len(self._buf) < _HEADER.size + size:
                return
            body = bytes(self._buf[_HEADER.size:_HEADER.size + size])
            del self._buf[:_HEADER.size + size]
            try:
                message = json.loads(body)
            except ValueError as e:
                raise ProtocolError(f"not JSON: {e}") from None
            if not isinstance(message, dict):
                raise ProtocolError("a message is a JSON object")
            count = message.get("nfds", 0)
            if not isinstance(count, int) or count < 0 or count > len(self._fds):
                raise ProtocolError(f"message names {count!r} descriptors, "
                                    f"{len(self._fds)} received")
            yield message, [self._fds.popleft() for _ in range(count)]

    def close_fds(self) -> None:
        """Close descriptors received but never claimed by a message."""
        import os

        while self._fds:
            try:
                os.close(self._fds.popleft())
            except OSError:
                pass


def record_to_json(record: UserRecord) -> dict:
    return {"name": record.name, "uid": record.uid, "gid": record.gid, "home": record.home,
            "extra": dict(record.extra)}


def record_from_json(data: dict) -> UserRecord:
    def opt_int(value):
        if value is None:
            return None
        if not isinstance(value, int) or isinstance(value, bool):
            raise ProtocolError(f"not an id: {value!r}")
        return value
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise ProtocolError("a user record needs a name")
    home = data.get("home")
    extra = data.get("extra") or {}
    if (home is not None and not isinstance(home, str)) or not isinstance(extra, dict):
        raise ProtocolError("bad user record")
    return UserRecord(name, opt_int(data.get("uid")), opt_int(data.get("gid")), home,
                      {str(k): str(v) for k, v in extra.items()})


@dataclass(frozen=True)
class SessionState:
    """
    A logged-in session as the login process hands it to a mail worker.

    @ivar tag: the tag of the LOGIN or AUTHENTICATE command, which the
        worker answers.
    @ivar record: the user (L{UserRecord}).
    @ivar peer: the client's address, C{(host, port)} (port 0 for a UNIX
        socket).
    @ivar local: the address the client connected to, C{(host, port)}.
    @ivar tls: whether the client talks TLS (terminated by the login
        process, which relays the plain text).
    @ivar enabled: extensions enabled before login (none can be today:
        ENABLE is an authenticated-state command; kept for the future).
    @ivar client_id: the parameters of the client's ID command, if any.
    @ivar pending: what the client sent after the login command, which
        the worker parses first (pipelined commands).
    @ivar session_id: the login process's session id, kept for logs.
    @ivar slot: the master's connection slot (L{imapd.server.ConnectionCounter}),
        released when the session ends; None for none.
    """

    tag: str
    record: UserRecord
    peer: tuple = ("", 0)
    local: tuple = ("", 0)
    tls: bool = False
    enabled: tuple = ()
    client_id: tuple = ()
    pending: bytes = b""
    session_id: str = ""
    slot: Optional[int] = None
    bytes_in: int = 0
    bytes_out: int = 0

    def to_json(self) -> dict:
        data: dict[str, Any] = asdict(self)
        data["record"] = record_to_json(self.record)
        data["pending"] = b64(self.pending)
        data["peer"] = list(self.peer)
        data["local"] = list(self.local)
        data["enabled"] = list(self.enabled)
        data["client_id"] = [list(pair) for pair in self.client_id]
        return data

    @classmethod
    def from_json(cls, data: dict) -> "SessionState":
        try:
            tag = data["tag"]
            if not isinstance(tag, str) or not tag:
                raise ProtocolError("no tag")
            slot = data.get("slot")
            return cls(
                tag=tag,
                record=record_from_json(data["record"]),
                peer=(str(data["peer"][0]), int(data["peer"][1])),
                local=(str(data["local"][0]), int(data["local"][1])),
                tls=bool(data["tls"]),
                enabled=tuple(str(e) for e in data.get("enabled", ())),
                client_id=tuple((str(k), None if v is None else str(v))
                                for k, v in data.get("client_id", ())),
                pending=unb64(data.get("pending", "")),
                session_id=str(data.get("session_id", "")),
                slot=slot if isinstance(slot, int) else None,
                bytes_in=int(data.get("bytes_in", 0)),
                bytes_out=int(data.get("bytes_out", 0)),
            )
        except (KeyError, IndexError, TypeError, ValueError) as e:
            raise ProtocolError(f"bad session state: {e}") from None


def pool_index(name: str, workers: int) -> int:
    """
    The pool worker (0 .. C{workers}-1) that serves user C{name}: a
    stable hash, so that every session of a user, in every login process
    and after every restart, lands in the same worker (shared caches,
    mailbox locks and IDLE wake-ups).
    """
    return zlib.crc32(name.encode("utf-8")) % workers


def in_pool(record: UserRecord, server_uid: int) -> bool:
    """
    Whether C{record}'s mail is served by the pool workers (a virtual
    user: no uid of its own, or the server's) rather than by a worker of
    its own running as its uid.
    """
    return record.uid is None or record.uid == server_uid
