# -*- test-case-name: tests.imapd.parser.test_parser_receiver -*-
"""
The incremental command assembler: the only stateful part of the parser.

L{Parser.feed} takes bytes in any fragmentation and returns events.  It
cuts the input into lines, and when a line ends with a literal
announcement (C{{n}}, C{{n+}}, C{~{n}}; RFC 3501 section 4.3, RFC 7888,
RFC 3516) it checks the limits, asks for a continuation if the literal
is synchronizing, and then collects exactly n octets before reading the
next line of the same command.  Once the last line (one that does not end
with a literal) arrives, the whole command, as it was on the wire, goes
to L{imapd.parser.commands} for the grammar.

Limits are checked before bytes are kept: a line is refused as soon as
it is longer than allowed, and a literal as soon as it is announced, so a
client can never make us buffer more than the limits say.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from imapd.parser.commands import Context, parse_command_args
from imapd.parser.primitives import TAG_CHARS, Incomplete, NotParseable, parse_mailbox
from imapd.parser.types import ContinuationNeeded, ParseError, RawLine

__all__ = ["Parser", "ParserLimits"]

#: RFC 7888 section 4: with LITERAL-, non-synchronizing literals may be at
#: most 4096 octets.
LITERAL_MINUS_MAX = 4096

#: Largest command (so far) whose CATENATE URLs are extracted for an early
#: check (L{Parser._new_urls}); bigger ones are checked only at the end.
_URL_CHECK_MAX = 1024 * 1024


@dataclass(frozen=True, slots=True)
class ParserLimits:
    """
    The bounds that protect the server from its clients.

    @ivar max_line: most octets of command text, summed over all lines of
        one command, CRLFs and literal contents excluded.
    @ivar max_literal: largest literal accepted (the server lowers it
        before authentication).
    @ivar max_depth: deepest parenthesis / NOT / OR nesting.
    @ivar max_tag: longest tag.
    @ivar max_literals_per_command: most literals in one command
        (MULTIAPPEND, SEARCH with many strings).
    @ivar literal_minus: the server advertises RFC 7888 LITERAL- rather
        than LITERAL+, so C{{n+}} is only allowed up to 4096 octets.
    """

    max_line: int = 64 * 1024
    max_literal: int = 64 * 1024 * 1024
    max_depth: int = 32
    max_tag: int = 64
    max_literals_per_command: int = 1000
    literal_minus: bool = False


class Parser:
    """
    Turns the bytes a client sends into events: L{Command} instances,
    L{ContinuationNeeded}, L{ParseError} and L{RawLine}
    (all from L{imapd.parser.types}).  Never does I/O, never raises on
    input.

    @ivar limits: the current L{ParserLimits}; may be replaced at any
        time and applies from the next check on.

    Pipelining: L{feed} parses everything it can, so commands a client
    pipelines behind AUTHENTICATE or IDLE are parsed as commands before
    the protocol gets the chance to call L{expect_raw_line}.  Conforming
    clients wait for the server's continuation before sending a SASL
    response or DONE, so the raw line arrives in a later call; a client
    that does not is answered with BAD for those lines.
    """

    def __init__(self, limits: Optional[ParserLimits] = None) -> None:
        self.limits = limits if limits is not None else ParserLimits()
        self.reset()

    # -- public API ---------------------------------------------------------

    def reset(self) -> None:
        """
        Drop everything buffered, including a half-received command and a
        pending L{expect_raw_line}.  Used after STARTTLS: RFC 3501 6.2.1
        and RFC 2595 section 3.1 say plaintext pipelined after STARTTLS
        must be discarded, not executed under TLS.  Also revives a parser
        stopped by a fatal error.
        """
        self._buf = bytearray()
        self._scanned = 0          # bytes of _buf known to hold no LF
        self._cmd = bytearray()    # the command so far, as on the wire
        self._text_len = 0         # its length without CRLFs and literals
        self._literal_left = 0     # octets of the current literal to read
        self._literals = 0         # literals seen in this command
        self._urls_seen = 0        # CATENATE URLs already reported
        self._url_seen = False     # a line since then mentions URL
        self._raw = False
        self._dead = False

    def expect_raw_line(self) -> None:
        """
        Return the next complete line as L{RawLine} instead of parsing it
        (AUTHENTICATE responses, RFC 3501 6.2.2; IDLE's DONE, RFC 2177).
        Applies once.
        """
        self._raw = True

    def feed(self, data: bytes) -> list[object]:
        """
        Add C{data} and return every event it completes, in order.

        After a fatal L{ParseError} all input is ignored until L{reset}:
        the connection is about to be closed and its byte stream can no
        longer be trusted to be in step with the grammar.
        """
        events: list[object] = []
        if self._dead:
            return events
        self._buf += data
        while not self._dead:
            if self._literal_left:
                if not self._buf:
                    break
                take = min(self._literal_left, len(self._buf))
                self._cmd += self._buf[:take]
                del self._buf[:take]
                self._literal_left -= take
                self._scanned = 0
                continue
            end = self._buf.find(b"\n", self._scanned)
            if end < 0:
                self._scanned = len(self._buf)
                # A trailing CR may be half of the CRLF: do not count it,
                # so that the verdict does not depend on fragmentation.
                pending = len(self._buf) - self._buf.endswith(b"\r")
                if self._text_len + pending > self._line_limit():
                    self._fatal(events, self._cmd + self._buf,
                                "Line too long")
                break
            line = bytes(self._buf[:end])
            del self._buf[:end + 1]
            self._scanned = 0
            # RFC 3501 wants CRLF; a bare LF is accepted, as most servers do.
            if line.endswith(b"\r"):
                line = line[:-1]
            if self._text_len + len(line) > self._line_limit():
                self._fatal(events, self._cmd + line, "Line too long")
                break
            self._line(line, events)
        return events

    # -- internals ----------------------------------------------------------

    def _line_limit(self) -> int:
        return self.limits.max_line

    def _line(self, line: bytes, events: list[object]) -> None:
        """Handle one complete line (CRLF stripped)."""
        if not self._cmd:
            if self._raw:
                self._raw = False
                events.append(RawLine(line))
                return
            if not line:
                # Stray empty lines (some clients send CRLF after a
                # literal's final line) are harmless: ignore them.
                return
        self._text_len += len(line)
        self._cmd += line + b"\r\n"
        if b"URL" in line.upper():
            self._url_seen = True
        literal = _literal_at_end(line)
        if literal is None:
            command = bytes(self._cmd)
            self._end_command()
            events.append(self._parse(command))
            return
        size, nonsync = literal
        self._literal(size, nonsync, events)

    def _literal(self, size: Optional[int], nonsync: bool,
                 events: list[object]) -> None:
        """A line ended with a literal announcement of C{size} octets."""
        tag = self._tag(self._cmd)
        self._literals += 1
        if self._literals > self.limits.max_literals_per_command:
            self._refuse(events, tag, nonsync, "Too many literals", "LIMIT")
            return
        limit = self.limits.max_literal
        if nonsync and self.limits.literal_minus:
            limit = min(limit, LITERAL_MINUS_MAX)
        if size is None or size > limit:
            self._refuse(events, tag, nonsync, "Literal too big", "TOOBIG")
            return
        if not nonsync:
            # Before inviting the client to send the octets, make sure the
            # command is not already wrong (unknown command, bad mailbox
            # syntax...): then it gets its BAD without uploading anything.
            # Only for the first literal, so that MULTIAPPEND does not
            # re-read megabytes of earlier messages.
            if self._literals == 1:
                error = self._precheck(bytes(self._cmd))
                if error is not None:
                    self._end_command()
                    events.append(error)
                    return
            urls, target = self._new_urls()
            if urls:
                events.append(ContinuationNeeded(size, urls, tag, target))
            else:
                events.append(ContinuationNeeded(size))
        self._literal_left = size

    def _new_urls(self) -> tuple[tuple[bytes, ...], Optional[bytes]]:
        """
        The CATENATE URLs (RFC 4469) of an APPEND that arrived since the
        last synchronizing literal, so that the protocol can check them
        before it invites the next one (RFC 4469 Appendix A), and the
        APPEND's target mailbox as sent (checked before them: a missing
        target is C{NO [TRYCREATE]} whatever the URLs are).  Only when a
        line since then mentions URL, and only while the command is small
        enough that parsing it again costs little: the handler checks every
        URL in any case.
        """
        if not self._url_seen or len(self._cmd) > _URL_CHECK_MAX:
            return (), None
        self._url_seen = False
        command = bytes(self._cmd)
        start = command.find(b" ") + 1
        if command[start:start + 7].upper() != b"APPEND ":
            return (), None
        urls: list[bytes] = []
        try:
            target = parse_mailbox(command, start + 7)[0]
            parse_command_args("", command, start,
                               Context(self.limits.max_depth, urls))
        except Incomplete:
            pass
        except Exception:
            # Already invalid: the final parse answers it.
            return (), None
        new = tuple(urls[self._urls_seen:])
        self._urls_seen = len(urls)
        return new, target

    def refuse_literal(self) -> None:
        """
        The protocol answered the literal just announced with a tagged
        response instead of a continuation (RFC 4469 Appendix A: C{NO
        [BADURL]}); the client will not send it, so the command ends here
        and the next line is a new command (RFC 3501 section 7.5).
        """
        self._end_command()

    @property
    def partial_line(self) -> bool:
        """
        Whether part of a line (not literal data) has arrived without its
        end: the protocol bounds how long that may last (C{line_timeout}).
        """
        return bool(self._buf) and not self._literal_left and not self._dead

    def awaiting_literal(self, size: int) -> bool:
        """Whether not one octet of the announced C{size}-octet literal has arrived yet."""
        return self._literal_left == size and not self._buf

    def _refuse(self, events: list[object], tag: Optional[str],
                nonsync: bool, reason: str, code: str) -> None:
        """
        Refuse a literal.  A synchronizing one has not been sent (we did
        not ask for it): drop the command and carry on.  A
        non-synchronizing one is already on its way, and we will not
        buffer it, so the stream is lost: fatal.
        """
        if nonsync:
            self._dead = True
            self._drop_all()
            events.append(ParseError(tag, reason, code=code, fatal=True))
        else:
            self._end_command()
            events.append(ParseError(tag, reason, code=code))

    def _fatal(self, events: list[object], head: bytes, reason: str) -> None:
        events.append(ParseError(self._tag(head), reason, fatal=True))
        self._dead = True
        self._drop_all()

    def _drop_all(self) -> None:
        self._buf = bytearray()
        self._scanned = 0
        self._end_command()

    def _end_command(self) -> None:
        self._cmd = bytearray()
        self._text_len = 0
        self._literal_left = 0
        self._literals = 0
        self._urls_seen = 0        # CATENATE URLs already reported
        self._url_seen = False     # a line since then mentions URL

    def _tag(self, head: bytes) -> Optional[str]:
        """The tag at the start of C{head}, if it is a valid one."""
        end = 0
        limit = min(len(head), self.limits.max_tag + 1)
        while end < limit and head[end] in TAG_CHARS:
            end += 1
        if end == 0 or end > self.limits.max_tag:
            return None
        if head[end:end + 1] not in (b" ", b"\r", b""):
            return None
        return bytes(head[:end]).decode("ascii")

    def _split_tag(self, command: bytes) -> tuple[Optional[str], int]:
        """
        RFC 3501 section 9: C{command = tag SP (...) CRLF}.

        @raises NotParseable: when the tag is missing, invalid, too long
            or not followed by SP.
        """
        end = 0
        while end < len(command) and command[end] in TAG_CHARS:
            end += 1
        if end == 0:
            raise NotParseable("Invalid tag", 0)
        if end > self.limits.max_tag:
            raise NotParseable("Tag too long", 0)
        if command[end:end + 1] != b" ":
            if command[end:] == b"\r\n":
                raise NotParseable("Missing space after tag", end)
            raise NotParseable("Invalid tag", 0)
        return command[:end].decode("ascii"), end + 1

    def _parse(self, command: bytes) -> object:
        """Parse one complete command into a Command or a ParseError."""
        tag = self._tag(command)
        try:
            _, pos = self._split_tag(command)
            return parse_command_args(
                tag or "", command, pos, Context(self.limits.max_depth))
        except NotParseable as e:
            return ParseError(tag, e.reason, code=e.code)
        except Incomplete:
            return ParseError(tag, "Truncated literal")
        except RecursionError:
            return ParseError(tag, "Command too deeply nested")
        except Exception:  # pragma: no cover - a grammar bug, not input
            # The contract is that feed() never raises on input; a bug in
            # an argument parser must cost one BAD, not the connection.
            return ParseError(tag, "Unparseable command")

    def _precheck(self, partial: bytes) -> Optional[ParseError]:
        """
        Parse a command that stops at a literal not yet received.  Return
        the error if the part we have is already invalid, else None.
        """
        result = self._parse_partial(partial)
        if isinstance(result, ParseError):
            return result
        return None

    def _parse_partial(self, partial: bytes) -> object:
        tag = self._tag(partial)
        try:
            _, pos = self._split_tag(partial)
            parse_command_args(
                tag or "", partial, pos, Context(self.limits.max_depth))
        except NotParseable as e:
            if e.pos >= len(partial):
                # Ran out of input right after an empty literal: fine so far.
                return None
            return ParseError(tag, e.reason, code=e.code)
        except Incomplete:
            return None
        except Exception:  # pragma: no cover - see _parse
            return None
        return None


def _literal_at_end(line: bytes) -> Optional[tuple[Optional[int], bool]]:
    """
    If C{line} ends with C{{n}}, C{{n+}} or C{~{n}}, return
    C{(n, non_synchronizing)}; C{n} is None when it has too many digits
    to be a sensible size (a hostile C{{99999999999999999999999}} must not
    even be converted).  Otherwise None.
    """
    if not line.endswith(b"}"):
        return None
    start = line.rfind(b"{")
    if start < 0:
        return None
    digits = line[start + 1:-1]
    nonsync = digits.endswith(b"+")
    if nonsync:
        digits = digits[:-1]
    if not digits or not digits.isdigit():
        return None
    if len(digits) > 20:
        return None, nonsync
    return int(digits), nonsync
