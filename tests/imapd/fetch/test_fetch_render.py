"""
Tests for L{imapd.fetch}: each FETCH item as rendered on the wire
(RFC 3501 sections 6.4.5 and 7.4.2, RFC 3516), and the predicates the
handler uses.

Most tests use a stand-in message with the L{imapd.message.Message}
methods, so that they pin down rendering alone; the last ones run the real
class when it is importable.
"""

from __future__ import annotations

import locale
from datetime import datetime, timedelta, timezone
from typing import Optional

import pytest

from imapd.errors import CommandFailed, to_response
from imapd.fetch import (
    UnknownCTE, compile_fetch, format_flags, format_internaldate,
    needs_message, render_fetch, sets_seen,
)
from imapd.parser.types import FetchAttr, Section
from storage.interfaces import MessageRecord

HEADER = (b"From: Alice <alice@example.com>\r\n"
          b"To: bob@example.org\r\n"
          b"Subject: Hello\r\n"
          b"\r\n")
TEXT = b"Hello, Bob.\r\nBye.\r\n"


class FakeMessage:
    """
    A one-part message with the Message methods FETCH uses.  C{parts}
    maps part tuples to C{(content, binary)}; a binary of None means an
    unknown transfer encoding.
    """

    def __init__(self, header: bytes = HEADER, text: bytes = TEXT,
                 parts: Optional[dict] = None) -> None:
        self.raw = header + text
        self._header = header
        self._text = text
        self.parts = parts if parts is not None else {(1,): (text, text)}

    def header_bytes(self) -> bytes:
        return self._header

    def text_bytes(self) -> bytes:
        return self._text

    def envelope(self) -> bytes:
        return b'(NIL "Hello" ENVELOPE-STANDIN)'

    def bodystructure(self, extended: bool) -> bytes:
        return b'("TEXT" "PLAIN" %s)' % (b"EXTENDED" if extended else b"BASIC")

    def section(self, part, text, fields=()) -> Optional[bytes]:
        if part == ():
            if text is None:
                return self.raw
            if text == "HEADER":
                return self._header
            if text == "TEXT":
                return self._text
            if text.startswith("HEADER.FIELDS"):
                wanted = {f.lower() for f in fields}
                keep = text == "HEADER.FIELDS"
                lines = [line for line in self._header.split(b"\r\n")[:-2]
                         if (line.split(b":")[0].lower() in wanted) == keep]
                return b"".join(line + b"\r\n" for line in lines) + b"\r\n"
            return None
        if part in self.parts and text is None:
            return self.parts[part][0]
        if part in self.parts and text == "MIME":
            return b"Content-Type: text/plain\r\n\r\n"
        return None

    def binary_section(self, part) -> Optional[bytes]:
        if part == ():
            return self.raw
        if part not in self.parts:
            return None
        return self.parts[part][1]


RECORD = MessageRecord(uid=42, flags=frozenset({"\\Seen", "$Forwarded"}),
                       internaldate=datetime(1996, 7, 17, 2, 44, 25,
                                             tzinfo=timezone(timedelta(hours=-7))),
                       size=len(HEADER + TEXT))
FLAGS = RECORD.flags | {"\\Recent"}


def body(section: Section = Section(), partial=None, peek=False) -> FetchAttr:
    """Shorthand for a BODY[...] attribute."""
    return FetchAttr("BODY", section, partial, peek)


def fetch(*attrs: FetchAttr, message=None, uid=False, seq=1,
          flags=FLAGS, record=RECORD) -> bytes:
    """Render one response for C{attrs}; a content message is supplied."""
    if message is None and needs_message(attrs):
        message = FakeMessage()
    return render_fetch(seq, tuple(attrs), record, flags, message,
                        include_uid=uid)


def lit(data: bytes) -> bytes:
    """A literal as it appears on the wire."""
    return b"{%d}\r\n%s" % (len(data), data)


# -- record items -----------------------------------------------------------


def test_flags() -> None:
    """
    FLAGS lists the session's view, C{\\Recent} included, system flags
    first in a fixed order, then keywords.
    """
    assert fetch(FetchAttr("FLAGS"), seq=7) == \
        b"* 7 FETCH (FLAGS (\\Seen \\Recent $Forwarded))\r\n"


def test_flags_empty() -> None:
    """A message with no flags answers C{FLAGS ()}."""
    assert fetch(FetchAttr("FLAGS"), flags=frozenset()) == \
        b"* 1 FETCH (FLAGS ())\r\n"


def test_format_flags_order() -> None:
    """
    L{format_flags} is stable: system flags in RFC order, then unknown
    backslash flags, then keywords sorted; any iterable is accepted.
    """
    flags = ["zeta", "\\Draft", "$Junk", "\\Seen", "\\Answered",
             "\\Recent", "\\Flagged", "\\Deleted", "\\XExt", "alpha"]
    expected = (b"(\\Answered \\Flagged \\Deleted \\Seen \\Draft \\Recent "
                b"\\XExt $Junk alpha zeta)")
    assert format_flags(flags) == expected
    assert format_flags(frozenset(reversed(flags))) == expected


def test_internaldate() -> None:
    """
    INTERNALDATE is the quoted RFC 3501 date-time in the record's own
    zone.
    """
    assert fetch(FetchAttr("INTERNALDATE")) == \
        b'* 1 FETCH (INTERNALDATE "17-Jul-1996 02:44:25 -0700")\r\n'


@pytest.mark.parametrize("dt,expected", [
    (datetime(2020, 3, 1, 9, 5, 7, tzinfo=timezone.utc),
     b'" 1-Mar-2020 09:05:07 +0000"'),
    (datetime(2021, 12, 9, 23, 59, 59,
              tzinfo=timezone(timedelta(hours=5, minutes=30))),
     b'" 9-Dec-2021 23:59:59 +0530"'),
    (datetime(2021, 1, 31, 0, 0, 0,
              tzinfo=timezone(timedelta(hours=-9, minutes=-30))),
     b'"31-Jan-2021 00:00:00 -0930"'),
    (datetime(2000, 2, 29, 12, 0, 0), b'"29-Feb-2000 12:00:00 +0000"'),
    (datetime(999, 5, 5, 0, 0, 0, tzinfo=timezone.utc),
     b'" 5-May-0999 00:00:00 +0000"'),
])
def test_format_internaldate(dt: datetime, expected: bytes) -> None:
    """
    The day is space-padded (date-day-fixed), the year four digits, the
    zone +-HHMM; a naive datetime counts as UTC.
    """
    assert format_internaldate(dt) == expected


def test_internaldate_ignores_locale(monkeypatch) -> None:
    """
    Month names are English whatever the process locale says: with the C
    library's month names replaced by German ones (no de_DE locale needs to
    be installed), the date still reads Mar.
    """
    import calendar
    import time as time_mod

    monkeypatch.setattr(calendar, "month_abbr", ["", "Jan", "Feb", "Mär"] + ["X"] * 9)
    real_strftime = time_mod.strftime
    monkeypatch.setattr(time_mod, "strftime",
                        lambda fmt, *a: real_strftime(fmt.replace("%b", "Mär"), *a))
    assert format_internaldate(
        datetime(2020, 3, 1, tzinfo=timezone.utc)).startswith(b'" 1-Mar')


def test_size_and_uid() -> None:
    """RFC822.SIZE and UID are numbers from the record, in request order."""
    assert fetch(FetchAttr("RFC822.SIZE"), FetchAttr("UID")) == \
        b"* 1 FETCH (RFC822.SIZE %d UID 42)\r\n" % RECORD.size


def test_uid_fetch_adds_uid() -> None:
    """
    UID FETCH answers with UID even when not asked (RFC 3501 section
    6.4.8), first; when asked it appears once, where the client put it.
    """
    assert fetch(FetchAttr("FLAGS"), uid=True) == \
        b"* 1 FETCH (UID 42 FLAGS (\\Seen \\Recent $Forwarded))\r\n"
    assert fetch(FetchAttr("RFC822.SIZE"), FetchAttr("UID"), uid=True) == \
        b"* 1 FETCH (RFC822.SIZE %d UID 42)\r\n" % RECORD.size


def test_no_message_needed() -> None:
    """Record-only items render with C{message=None}."""
    attrs = (FetchAttr("UID"), FetchAttr("FLAGS"), FetchAttr("INTERNALDATE"),
             FetchAttr("RFC822.SIZE"))
    assert not needs_message(attrs)
    assert render_fetch(3, attrs, RECORD, FLAGS, None, include_uid=True) \
        .startswith(b"* 3 FETCH (UID 42 FLAGS ")


def test_duplicates_rendered_once() -> None:
    """An item asked twice is answered once."""
    assert fetch(FetchAttr("UID"), FetchAttr("UID")) == \
        b"* 1 FETCH (UID 42)\r\n"


def test_modseq_without_support() -> None:
    """
    MODSEQ is left out when the record carries no mod-sequence (no
    CONDSTORE), and the response stays well-formed.
    """
    assert fetch(FetchAttr("MODSEQ"), FetchAttr("UID")) == \
        b"* 1 FETCH (UID 42)\r\n"


# -- content items ----------------------------------------------------------


def test_envelope_and_structures_pass_through() -> None:
    """ENVELOPE, BODY and BODYSTRUCTURE are the message's own encodings."""
    assert fetch(FetchAttr("ENVELOPE"), FetchAttr("BODY"),
                 FetchAttr("BODYSTRUCTURE")) == (
        b'* 1 FETCH (ENVELOPE (NIL "Hello" ENVELOPE-STANDIN) '
        b'BODY ("TEXT" "PLAIN" BASIC) '
        b'BODYSTRUCTURE ("TEXT" "PLAIN" EXTENDED))\r\n')


def test_rfc822_items() -> None:
    """RFC822, RFC822.HEADER and RFC822.TEXT are literals under their names."""
    assert fetch(FetchAttr("RFC822")) == \
        b"* 1 FETCH (RFC822 " + lit(HEADER + TEXT) + b")\r\n"
    assert fetch(FetchAttr("RFC822.HEADER")) == \
        b"* 1 FETCH (RFC822.HEADER " + lit(HEADER) + b")\r\n"
    assert fetch(FetchAttr("RFC822.TEXT")) == \
        b"* 1 FETCH (RFC822.TEXT " + lit(TEXT) + b")\r\n"


def test_body_whole() -> None:
    """C{BODY[]} is the whole message as a literal, even when quotable."""
    assert fetch(body()) == b"* 1 FETCH (BODY[] " + lit(HEADER + TEXT) + b")\r\n"
    short = FakeMessage(b"A: b\r\n\r\n", b"x")
    assert fetch(body(), message=short) == \
        b"* 1 FETCH (BODY[] " + lit(b"A: b\r\n\r\nx") + b")\r\n"


def test_body_header_and_text() -> None:
    """C{BODY[HEADER]} and C{BODY[TEXT]} echo their section."""
    assert fetch(body(Section((), "HEADER"))) == \
        b"* 1 FETCH (BODY[HEADER] " + lit(HEADER) + b")\r\n"
    assert fetch(body(Section((), "TEXT"))) == \
        b"* 1 FETCH (BODY[TEXT] " + lit(TEXT) + b")\r\n"


def test_header_fields_echo() -> None:
    """
    HEADER.FIELDS echoes the field list as the client sent it (RFC 3501
    section 7.4.2); quoted names go back quoted.
    """
    attr = body(Section((), "HEADER.FIELDS", (b"Subject", b"from")), peek=True)
    expected = b"From: Alice <alice@example.com>\r\nSubject: Hello\r\n\r\n"
    assert fetch(attr) == (b"* 1 FETCH (BODY[HEADER.FIELDS (Subject from)] "
                           + lit(expected) + b")\r\n")
    odd = body(Section((), "HEADER.FIELDS", (b"X Odd",)))
    assert fetch(odd).startswith(b'* 1 FETCH (BODY[HEADER.FIELDS ("X Odd")] ')


def test_header_fields_not() -> None:
    """HEADER.FIELDS.NOT leaves the named fields out and echoes the list."""
    attr = body(Section((), "HEADER.FIELDS.NOT", (b"TO", b"FROM")))
    assert fetch(attr) == (b"* 1 FETCH (BODY[HEADER.FIELDS.NOT (TO FROM)] "
                           + lit(b"Subject: Hello\r\n\r\n") + b")\r\n")


def test_part_sections() -> None:
    """
    Part numbers and their text specifiers are joined with dots in the
    answer: C{BODY[1]}, C{BODY[1.MIME]}.
    """
    assert fetch(body(Section((1,)))) == \
        b"* 1 FETCH (BODY[1] " + lit(TEXT) + b")\r\n"
    assert fetch(body(Section((1,), "MIME"))) == \
        b"* 1 FETCH (BODY[1.MIME] " + lit(b"Content-Type: text/plain\r\n\r\n") \
        + b")\r\n"


def test_part_section_names() -> None:
    """Deep part paths with HEADER.FIELDS are echoed in full."""
    attr = body(Section((2, 1, 3), "HEADER.FIELDS", (b"DATE",)), (0, 5))
    assert fetch(attr) == b"* 1 FETCH (BODY[2.1.3.HEADER.FIELDS (DATE)]<0> NIL)\r\n"


def test_missing_part_is_nil() -> None:
    """A part the message does not have is answered NIL (an nstring)."""
    assert fetch(body(Section((5,)))) == b"* 1 FETCH (BODY[5] NIL)\r\n"


def test_partial() -> None:
    """
    A partial fetch answers with the origin only, C{BODY[]<offset>}
    (RFC 3501 section 7.4.2), and at most C{length} octets.
    """
    whole = HEADER + TEXT
    assert fetch(body(partial=(0, 4))) == \
        b"* 1 FETCH (BODY[]<0> " + lit(whole[:4]) + b")\r\n"
    assert fetch(body(Section((), "TEXT"), partial=(7, 3))) == \
        b"* 1 FETCH (BODY[TEXT]<7> " + lit(TEXT[7:10]) + b")\r\n"
    assert fetch(body(partial=(len(whole) - 2, 100))) == \
        b"* 1 FETCH (BODY[]<%d> " % (len(whole) - 2) + lit(b"\r\n") + b")\r\n"


def test_partial_beyond_end() -> None:
    """
    A partial whose origin lies past the end is the empty string (RFC 3501
    section 6.4.5).
    """
    whole = HEADER + TEXT
    assert fetch(body(partial=(len(whole), 10))) == \
        b'* 1 FETCH (BODY[]<%d> "")\r\n' % len(whole)
    assert fetch(body(partial=(10 ** 6, 1))) == \
        b'* 1 FETCH (BODY[]<1000000> "")\r\n'


def test_empty_section() -> None:
    """An existing but empty section is C{""}, not NIL."""
    empty = FakeMessage(HEADER, b"")
    assert fetch(body(Section((), "TEXT")), message=empty) == \
        b'* 1 FETCH (BODY[TEXT] "")\r\n'


def test_peek_echo() -> None:
    """C{BODY.PEEK[...]} answers as C{BODY[...]}."""
    assert fetch(body(Section((), "HEADER"), peek=True)) == \
        b"* 1 FETCH (BODY[HEADER] " + lit(HEADER) + b")\r\n"


def test_macros_from_parser() -> None:
    """
    The macros arrive expanded by the parser (ALL, FAST, FULL) and render
    as their items, in order.
    """
    from imapd.parser.fetchatt import MACROS
    full = render_fetch(4, MACROS[b"FULL"], RECORD, FLAGS, FakeMessage(),
                        include_uid=False)
    assert full == (
        b'* 4 FETCH (FLAGS (\\Seen \\Recent $Forwarded) '
        b'INTERNALDATE "17-Jul-1996 02:44:25 -0700" '
        b'RFC822.SIZE %d ENVELOPE (NIL "Hello" ENVELOPE-STANDIN) '
        b'BODY ("TEXT" "PLAIN" BASIC))\r\n' % RECORD.size)
    fast = render_fetch(4, MACROS[b"FAST"], RECORD, FLAGS, None,
                        include_uid=True)
    assert fast.startswith(b"* 4 FETCH (UID 42 FLAGS ")


def test_parsed_attrs() -> None:
    """A parsed FETCH argument renders as the RFC's examples say."""
    from imapd.parser.fetchatt import parse_fetch_atts
    attrs, _ = parse_fetch_atts(
        b"(FLAGS BODY.PEEK[HEADER.FIELDS (From Subject)]<0.20>)", 0)
    out = fetch(*attrs)
    assert out.startswith(
        b"* 1 FETCH (FLAGS (\\Seen \\Recent $Forwarded) "
        b"BODY[HEADER.FIELDS (From Subject)]<0> {20}\r\n")


# -- BINARY (RFC 3516) -------------------------------------------------------


def _binary_message() -> FakeMessage:
    return FakeMessage(parts={
        (1,): (b"SGVsbG8=\r\n", b"Hello"),
        (2,): (b"AAEC\r\n", b"\x00\x01\x02"),
        (3,): (b"???\r\n", None),
    })


def test_binary() -> None:
    """
    BINARY[n] is the decoded content; BINARY.PEEK answers as BINARY; a
    partial keeps the origin only.
    """
    m = _binary_message()
    assert fetch(FetchAttr("BINARY", Section((1,))), message=m) == \
        b"* 1 FETCH (BINARY[1] " + lit(b"Hello") + b")\r\n"
    assert fetch(FetchAttr("BINARY", Section((1,)), peek=True), message=m) == \
        b"* 1 FETCH (BINARY[1] " + lit(b"Hello") + b")\r\n"
    assert fetch(FetchAttr("BINARY", Section((1,)), (1, 3)), message=m) == \
        b"* 1 FETCH (BINARY[1]<1> " + lit(b"ell") + b")\r\n"
    assert fetch(FetchAttr("BINARY", Section((1,)), (9, 3)), message=m) == \
        b'* 1 FETCH (BINARY[1]<9> "")\r\n'


def test_binary_nul_uses_literal8() -> None:
    """Content holding NUL travels as a literal8 (RFC 3516 section 4.2)."""
    assert fetch(FetchAttr("BINARY", Section((2,))), message=_binary_message()) \
        == b"* 1 FETCH (BINARY[2] ~{3}\r\n\x00\x01\x02)\r\n"


def test_binary_size() -> None:
    """BINARY.SIZE is the decoded size; 0 for a missing part."""
    m = _binary_message()
    assert fetch(FetchAttr("BINARY.SIZE", Section((1,))),
                 FetchAttr("BINARY.SIZE", Section((7,))), message=m) == \
        b"* 1 FETCH (BINARY.SIZE[1] 5 BINARY.SIZE[7] 0)\r\n"


def test_binary_missing_part() -> None:
    """BINARY of a part the message does not have is NIL."""
    assert fetch(FetchAttr("BINARY", Section((9,))),
                 message=_binary_message()) == b"* 1 FETCH (BINARY[9] NIL)\r\n"


def test_binary_unknown_cte() -> None:
    """
    A part with an unknown transfer encoding raises L{UnknownCTE}, which
    the dispatcher answers with C{NO [UNKNOWN-CTE]} (RFC 3516 section
    4.3); BINARY.SIZE too.
    """
    for attr in (FetchAttr("BINARY", Section((3,))),
                 FetchAttr("BINARY.SIZE", Section((3,)))):
        with pytest.raises(UnknownCTE) as info:
            fetch(attr, message=_binary_message())
        assert isinstance(info.value, CommandFailed)
        assert to_response(info.value)[:2] == (b"NO", "UNKNOWN-CTE")


# -- predicates and compilation ---------------------------------------------


@pytest.mark.parametrize("attr,needs,seen", [
    (FetchAttr("FLAGS"), False, False),
    (FetchAttr("UID"), False, False),
    (FetchAttr("INTERNALDATE"), False, False),
    (FetchAttr("RFC822.SIZE"), False, False),
    (FetchAttr("ENVELOPE"), True, False),
    (FetchAttr("BODY"), True, False),
    (FetchAttr("BODYSTRUCTURE"), True, False),
    (FetchAttr("RFC822"), True, True),
    (FetchAttr("RFC822.HEADER"), True, False),
    (FetchAttr("RFC822.TEXT"), True, True),
    (FetchAttr("BODY", Section()), True, True),
    (FetchAttr("BODY", Section(), peek=True), True, False),
    (FetchAttr("BINARY", Section((1,))), True, True),
    (FetchAttr("BINARY", Section((1,)), peek=True), True, False),
    (FetchAttr("BINARY.SIZE", Section((1,))), True, False),
])
def test_predicates(attr: FetchAttr, needs: bool, seen: bool) -> None:
    """
    L{needs_message} and L{sets_seen} for each item (RFC 3501 section
    6.4.5: only non-PEEK body data sets C{\\Seen}).
    """
    assert needs_message((attr,)) is needs
    assert sets_seen((attr,)) is seen
    assert needs_message((FetchAttr("UID"), attr)) is needs
    assert sets_seen((FetchAttr("FLAGS"), attr)) is seen


def test_compile_cached() -> None:
    """
    L{compile_fetch} returns the same renderer for equal attribute lists,
    and the renderer knows the handler's predicates.
    """
    a = compile_fetch((FetchAttr("FLAGS"), FetchAttr("UID")), True)
    b = compile_fetch((FetchAttr("FLAGS"), FetchAttr("UID")), True)
    assert a is b
    assert not a.needs_message and not a.sets_seen
    assert a(9, RECORD, frozenset()) == b"* 9 FETCH (FLAGS () UID 42)\r\n"


def test_alternating_attrs() -> None:
    """
    Alternating between attribute lists (as the handler does when it adds
    FLAGS for messages it just marked seen) renders each list correctly.
    """
    plain = (FetchAttr("UID"),)
    with_flags = plain + (FetchAttr("FLAGS"),)
    for _ in range(3):
        assert fetch(*plain) == b"* 1 FETCH (UID 42)\r\n"
        assert render_fetch(1, plain, RECORD, FLAGS, None,
                            include_uid=False) == b"* 1 FETCH (UID 42)\r\n"
        assert render_fetch(1, with_flags, RECORD, FLAGS, None,
                            include_uid=False) == \
            b"* 1 FETCH (UID 42 FLAGS (\\Seen \\Recent $Forwarded))\r\n"


def test_unknown_attr() -> None:
    """An attribute this module does not know is a programming error."""
    with pytest.raises(ValueError):
        compile_fetch((FetchAttr("X-NOPE"),))


class _Data:
    """A message whose every section is C{data} (None: no such part)."""

    def __init__(self, data):
        self.data = data
        self.raw = data

    def section(self, part, text, fields=()):
        return self.data


@pytest.mark.parametrize("data, wire", [
    (None, b"NIL"),
    (b"", b'""'),
    (b"a\x00b", b"{3}\r\na\x80b"),
    (b"x" * 9000, b"{9000}\r\n" + b"x" * 9000),
    (b"x\x00" * 5000, b"{10000}\r\n" + b"x\x80" * 5000),
])
@pytest.mark.parametrize("shape", ["alone", "uid", "uid-size", "modseq"])
def test_message_data_in_every_renderer_form(data, wire, shape) -> None:
    """
    Message data is framed the same way whichever compiled form renders
    the list (one %-format, the unrolled UID-plus-section form, the
    general form with MODSEQ, a long literal as its own fragment): NIL for
    no part, "" for nothing, NUL sent as 0x80 (RFC 3501 section 9).
    """
    attrs = (body(),)
    uid = shape != "alone"
    if shape == "uid-size":
        attrs += (FetchAttr("RFC822.SIZE"),)
    record = RECORD
    if shape == "modseq":
        attrs += (FetchAttr("MODSEQ"),)
        record = MessageRecord(uid=42, flags=RECORD.flags, internaldate=RECORD.internaldate,
                               size=RECORD.size, modseq=9)
    items = {"alone": b"", "uid": b"UID 42 ", "uid-size": b"UID 42 ",
             "modseq": b"UID 42 "}[shape] + b"BODY[] " + wire
    if shape == "uid-size":
        items += b" RFC822.SIZE %d" % RECORD.size
    if shape == "modseq":
        items += b" MODSEQ (9)"
    expected = b"* 5 FETCH (" + items + b")\r\n"
    assert fetch(*attrs, message=_Data(data), uid=uid, seq=5, record=record) == expected
    out: list = []
    compile_fetch(attrs, uid).render_into(out, 5, record, FLAGS, _Data(data))
    assert b"".join(out) == expected


def test_percent_in_field_name() -> None:
    """A quoted field name holding "%" is echoed as is, not formatted."""
    attr = body(Section((), "HEADER.FIELDS", (b"X%d",)))
    out = fetch(FetchAttr("UID"), attr, message=_Data(b"X%d: 1\r\n\r\n"))
    assert out == b'* 1 FETCH (UID 42 BODY[HEADER.FIELDS ("X%d")] {10}\r\nX%d: 1\r\n\r\n)\r\n'
