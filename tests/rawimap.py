"""
A raw IMAP client for tools that compare servers or load them (the
differential harness in C{tests/differential}, the stress test in
C{tests/stress}): it sends command text as given and returns every
response line as the server wrote it, literals included, so that nothing
is reinterpreted on the way (imaplib parses, merges and drops lines).

Unlike C{tests/e2e/e2e_sessions.RawSession}, which reads up to a tagged
line in a byte buffer, it follows literals, so a message body whose text
starts with the tag cannot end a reply early, and it returns the lines.

A response "line" is the logical line: when a line ends with a literal
announcement C{{n}}, the literal's bytes and the rest of the line are
part of it, as in C{* 1 FETCH (BODY[] {3}\\r\\nabc)}.
"""

from __future__ import annotations

import re
import select
import socket
import time

__all__ = ["Reply", "RawClient", "literal"]

_LITERAL_END = re.compile(rb"\{(\d+)\+?\}\r\n$")


def literal(data: bytes) -> bytes:
    """A non-synchronizing literal (RFC 7888 LITERAL+) carrying C{data}."""
    return b"{%d+}\r\n" % len(data) + data


class Reply:
    """The answer to one command: untagged lines, then the tagged line."""

    def __init__(self, tag: str, untagged: list[bytes], tagged: bytes) -> None:
        self.tag = tag
        self.untagged = untagged
        self.tagged = tagged

    @property
    def status(self) -> str:
        """C{OK}, C{NO} or C{BAD} (or C{BYE} when the connection ended)."""
        parts = self.tagged.split(b" ", 2)
        return parts[1].decode("ascii", "replace").upper() if len(parts) > 1 else ""

    def __repr__(self) -> str:
        return f"Reply({self.tag!r}, {self.untagged!r}, {self.tagged!r})"


class RawClient:
    """One connection; C{command()} sends a command and collects its reply."""

    def __init__(self, host: str, port: int, timeout: float = 30.0, prefix: str = "t") -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.timeout = timeout
        self.buf = b""
        self.prefix = prefix
        self.n = 0
        self.greeting = self.read_line()

    # -- reading -----------------------------------------------------------

    def _fill(self, deadline: float | None) -> bool:
        """Read more bytes; False on timeout (only with a deadline)."""
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            ready, _, _ = select.select([self.sock], [], [], remaining)
            if not ready:
                return False
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        self.buf += chunk
        return True

    def read_line(self, deadline: float | None = None) -> bytes | None:
        """One logical line without its final CRLF; None at C{deadline}."""
        out = b""
        while True:
            end = self.buf.find(b"\r\n")
            while end < 0:
                if not self._fill(deadline):
                    return None
                end = self.buf.find(b"\r\n")
            piece, self.buf = self.buf[: end + 2], self.buf[end + 2:]
            m = _LITERAL_END.search(piece)
            if not m:
                return out + piece[:-2]
            size = int(m.group(1))
            while len(self.buf) < size:
                if not self._fill(None):
                    return None
            out += piece + self.buf[:size]
            self.buf = self.buf[size:]

    # -- commands ----------------------------------------------------------

    def next_tag(self) -> str:
        self.n += 1
        return f"{self.prefix}{self.n}"

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_reply(self, tag: str) -> Reply:
        """Lines up to and including the tagged one of C{tag}."""
        untagged = []
        prefix = tag.encode() + b" "
        while True:
            line = self.read_line()
            if line is None:
                raise TimeoutError(f"no answer to {tag}")
            if line.startswith(prefix):
                return Reply(tag, untagged, line)
            untagged.append(line)

    def command(self, text: str | bytes, tag: str | None = None) -> Reply:
        """Send C{TAG text} (literals already inside C{text}) and read the reply."""
        tag = tag or self.next_tag()
        data = text.encode("utf-8") if isinstance(text, str) else text
        self.send(tag.encode() + b" " + data + b"\r\n")
        return self.read_reply(tag)

    def ok(self, text: str | bytes) -> Reply:
        """L{command}, asserting a tagged OK."""
        reply = self.command(text)
        if reply.status != "OK":
            raise AssertionError(f"{text!r}: {reply.tagged!r}")
        return reply

    def read_until(self, pattern: bytes, seconds: float) -> list[bytes]:
        """Untagged lines up to the first matching C{pattern} (regex), or C{seconds}."""
        deadline = time.monotonic() + seconds
        lines = []
        while True:
            line = self.read_line(deadline)
            if line is None:
                return lines
            lines.append(line)
            if re.search(pattern, line):
                return lines

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass
