"""
Tests for L{imapd.search}: every RFC 3501 section 6.4.4 key over a small
synthetic mailbox, charsets, nesting, sequence and UID sets, laziness.

The messages are stand-ins with the L{imapd.message.Message} methods a
search uses, so these tests don't depend on MIME parsing; a few tests at
the end run the real class when it is importable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Iterator, Optional

import pytest

from imapd.errors import BadCommand, CommandFailed, to_response
from imapd.parser.types import SearchKey, SequenceSet
from imapd.search import (
    BadCharset, SearchItem, compile_search, needs_message,
)
from storage.interfaces import MessageRecord

UTC = timezone.utc
EST = timezone(timedelta(hours=-5))
CET = timezone(timedelta(hours=1))


@dataclass
class FakeMessage:
    """
    The part of the Message API that searching uses.  C{headers} maps
    lower-case names to decoded values; C{raw_header} is what
    C{header_bytes} returns.
    """

    headers: dict[str, list[str]]
    body: list[str]
    sent: Optional[datetime] = None
    raw_header: bytes = b""
    loads: list = field(default_factory=list)

    def header_bytes(self) -> bytes:
        if self.raw_header:
            return self.raw_header
        return b"".join(
            b"%s: %s\r\n" % (k.encode(), v.encode("utf-8"))
            for k, vs in self.headers.items() for v in vs) + b"\r\n"

    def header_fields(self, name: str) -> list[bytes]:
        return [v.encode("utf-8") for v in self.headers.get(name.lower(), [])]

    def decoded_header(self, name: str) -> list[str]:
        return list(self.headers.get(name.lower(), []))

    def sent_date(self) -> Optional[datetime]:
        return self.sent

    def decoded_text(self) -> Iterator[str]:
        return iter(self.body)

    def part_header_text(self) -> Iterator[str]:
        return iter(())


@dataclass
class Msg:
    """One message of the synthetic mailbox."""

    uid: int
    flags: frozenset
    internaldate: datetime
    size: int
    message: FakeMessage


def _msg(uid, flags, idate, size, headers, body, sent=None, raw_header=b""):
    return Msg(uid, frozenset(flags), idate, size,
               FakeMessage(headers, body, sent, raw_header))


#: Eight messages; sequence numbers are positions from 1.
MAILBOX = [
    # 1
    _msg(10, {"\\Seen", "\\Answered"}, datetime(2020, 1, 1, 10, 0, tzinfo=UTC),
         100,
         {"from": ["Alice Example <alice@example.com>"],
          "to": ["bob@example.org"], "subject": ["Hello world"]},
         ["first body\r\n"], sent=datetime(2019, 12, 31, 23, 0, tzinfo=UTC)),
    # 2: 23:30 on 2 Jan in New York is already 3 Jan in UTC.
    _msg(11, {"\\Flagged", "\\Recent"},
         datetime(2020, 1, 2, 23, 30, tzinfo=EST), 2000,
         {"from": ["Bob <bob@example.org>"], "subject": ["Re: hello"],
          "cc": ["Carol <carol@example.net>"]},
         ["Second MESSAGE text\r\n", "an attachment's text\r\n"],
         sent=datetime(2020, 1, 2, 23, 0, tzinfo=EST)),
    # 3: RFC 2047 subject, no Date header.
    _msg(15, {"\\Deleted", "$Forwarded"},
         datetime(2020, 2, 5, 12, 0, tzinfo=UTC), 500,
         {"from": ["Jürgen <j@example.de>"], "subject": ["Grüße aus Köln"],
          "x-mailer": ["Foo 1.0"]},
         ["STRASSE und straße\r\n"],
         raw_header=b"From: =?utf-8?q?J=C3=BCrgen?= <j@example.de>\r\n"
                    b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln?=\r\n"
                    b"X-Mailer: Foo 1.0\r\n\r\n"),
    # 4
    _msg(20, {"\\Draft", "\\Seen", "\\Recent"},
         datetime(2020, 3, 10, 0, 30, tzinfo=CET), 50,
         {"bcc": ["dave@example.com"], "subject": ["draft"],
          "x-empty": [""]},
         ["nothing much\r\n"], sent=datetime(2020, 3, 9, 8, 0, tzinfo=UTC)),
    # 5
    _msg(21, set(), datetime(2020, 3, 10, 22, 0, tzinfo=UTC), 1000,
         {"from": ["eve@example.com"], "to": ["Alice <alice@example.com>"],
          "subject": ["Hello there"]},
         ["<p>hello</p>\r\n"], sent=datetime(2020, 3, 10, 21, 0, tzinfo=UTC)),
    # 6
    _msg(30, {"\\Seen", "Junk"}, datetime(2021, 4, 1, 9, 0, tzinfo=UTC),
         3000, {"from": ["spam@example.biz"], "subject": ["WIN"]},
         ["buy now\r\n"], sent=None),
    # 7
    _msg(31, {"\\Answered", "\\Recent", "\\Seen"},
         datetime(2021, 4, 1, 18, 0, tzinfo=UTC), 999,
         {"from": ["alice@example.com"], "subject": ["Re: WIN"]},
         ["no thanks\r\n"], sent=datetime(2021, 3, 31, 12, 0, tzinfo=UTC)),
    # 8
    _msg(40, {"\\Flagged", "\\Seen", "junk"},
         datetime(2021, 12, 31, 23, 59, tzinfo=UTC), 10,
         {"subject": ["last"]}, [""],
         sent=datetime(2022, 1, 1, 0, 0, tzinfo=UTC)),
]

NOW = datetime(2021, 12, 31, 23, 59, 30, tzinfo=UTC)


def _items(mailbox=MAILBOX, loads=None) -> list[SearchItem]:
    max_uid = max(m.uid for m in mailbox)
    items = []
    for seq, m in enumerate(mailbox, 1):
        record = MessageRecord(m.uid, m.flags - {"\\Recent"},
                               m.internaldate, m.size)

        def loader(m=m, seq=seq):
            if loads is not None:
                loads.append(seq)
            return m.message
        items.append(SearchItem(seq, record, m.flags, len(mailbox), max_uid,
                                loader, NOW))
    return items


def search(key: SearchKey, charset: Optional[str] = None, **kw) -> list[int]:
    """The sequence numbers of MAILBOX that C{key} matches."""
    matcher = compile_search(key, charset, **kw)
    return [item.seq for item in _items() if matcher(item)]


def K(name: str, value: object = None, *children: SearchKey) -> SearchKey:
    """Shorthand for a search key."""
    return SearchKey(name, value, tuple(children))


def AND(*children: SearchKey) -> SearchKey:
    """Shorthand for an AND node."""
    return SearchKey("AND", None, children)


def S(*ranges) -> SequenceSet:
    """Shorthand for a sequence set; None stands for C{*}."""
    return SequenceSet(tuple(r if isinstance(r, tuple) else (r, r)
                             for r in ranges))


KEY_TABLE = [
    (K("ALL"), [1, 2, 3, 4, 5, 6, 7, 8]),
    (K("ANSWERED"), [1, 7]),
    (K("UNANSWERED"), [2, 3, 4, 5, 6, 8]),
    (K("DELETED"), [3]),
    (K("UNDELETED"), [1, 2, 4, 5, 6, 7, 8]),
    (K("DRAFT"), [4]),
    (K("UNDRAFT"), [1, 2, 3, 5, 6, 7, 8]),
    (K("FLAGGED"), [2, 8]),
    (K("UNFLAGGED"), [1, 3, 4, 5, 6, 7]),
    (K("SEEN"), [1, 4, 6, 7, 8]),
    (K("UNSEEN"), [2, 3, 5]),
    (K("RECENT"), [2, 4, 7]),
    (K("OLD"), [1, 3, 5, 6, 8]),
    (K("NEW"), [2]),
    (K("KEYWORD", b"$Forwarded"), [3]),
    (K("KEYWORD", b"$forwarded"), [3]),
    (K("KEYWORD", b"Junk"), [6, 8]),
    (K("UNKEYWORD", b"Junk"), [1, 2, 3, 4, 5, 7]),
    (K("KEYWORD", b"Nope"), []),
    (K("LARGER", 999), [2, 5, 6]),
    (K("SMALLER", 100), [4, 8]),
    (K("BEFORE", date(2020, 1, 2)), [1]),
    # Message 2's INTERNALDATE is 2 Jan in its own zone (3 Jan in UTC).
    (K("ON", date(2020, 1, 2)), [2]),
    (K("ON", date(2020, 1, 3)), []),
    # Message 4 is 10 Mar in CET, 9 Mar 23:30 in UTC: its own zone counts.
    (K("ON", date(2020, 3, 10)), [4, 5]),
    (K("SINCE", date(2021, 4, 1)), [6, 7, 8]),
    (K("SENTBEFORE", date(2020, 1, 1)), [1]),
    (K("SENTON", date(2020, 1, 2)), [2]),
    # No Date header: INTERNALDATE (5 Feb 2020) stands in.
    (K("SENTON", date(2020, 2, 5)), [3]),
    (K("SENTON", date(2021, 4, 1)), [6]),
    (K("SENTSINCE", date(2021, 4, 1)), [6, 8]),
    (K("SENTON", date(2020, 3, 9)), [4]),
    (K("FROM", b"ALICE"), [1, 7]),
    (K("FROM", b"example.org"), [2]),
    (K("TO", b"alice"), [5]),
    (K("CC", b"carol@"), [2]),
    (K("BCC", b"DAVE"), [4]),
    (K("SUBJECT", b"hello"), [1, 2, 5]),
    (K("SUBJECT", b"win"), [6, 7]),
    (K("SUBJECT", b""), [1, 2, 3, 4, 5, 6, 7, 8]),
    (K("FROM", b""), [1, 2, 3, 5, 6, 7]),
    (K("HEADER", (b"X-Mailer", b"foo")), [3]),
    (K("HEADER", (b"x-mailer", b"")), [3]),
    (K("HEADER", (b"X-Empty", b"")), [4]),
    (K("HEADER", (b"X-Missing", b"")), []),
    (K("BODY", b"message"), [2]),
    (K("BODY", b"attachment's"), [2]),
    (K("BODY", b"hello"), [5]),
    (K("TEXT", b"hello"), [1, 2, 5]),
    (K("TEXT", b"nothing"), [4]),
    (K("TEXT", b"subject: draft"), [4]),
    (K("SEQSET", S((2, 4))), [2, 3, 4]),
    (K("SEQSET", S(7, (None, None))), [7, 8]),
    (K("SEQSET", S((6, None))), [6, 7, 8]),
    (K("SEQSET", S((None, 7))), [7, 8]),
    (K("SEQSET", S((5, 3), 1)), [1, 3, 4, 5]),
    (K("SEQSET", S(100)), []),
    (K("UID", S((11, 20))), [2, 3, 4]),
    (K("UID", S((None, None))), [8]),
    (K("UID", S((31, None))), [7, 8]),
    (K("UID", S((12, 14), 16)), []),
    (K("UID", S((50, None))), [8]),
    (K("YOUNGER", 60), [8]),
    (K("OLDER", 60), [1, 2, 3, 4, 5, 6, 7]),
    (K("NOT", None, K("SEEN")), [2, 3, 5]),
    (K("OR", None, K("DELETED"), K("DRAFT")), [3, 4]),
    (AND(K("SEEN"), K("FROM", b"alice")), [1, 7]),
    (AND(K("UNSEEN"), K("LARGER", 600)), [2, 5]),
    (AND(), [1, 2, 3, 4, 5, 6, 7, 8]),
    (AND(K("ALL"), K("SEEN")), [1, 4, 6, 7, 8]),
    (K("OR", None, K("NOT", None, K("SEEN")),
       AND(K("FLAGGED"), K("SINCE", date(2021, 1, 1)))), [2, 3, 5, 8]),
    (K("NOT", None, K("OR", None, K("SUBJECT", b"hello"),
                      K("OR", None, K("ANSWERED"), K("SEQSET", S(8))))),
     [3, 4, 6]),
    (AND(K("SEQSET", S((1, 6))), K("UID", S((15, 30))),
         K("NOT", None, K("DRAFT")), K("OR", None, K("UNSEEN"),
                                        K("KEYWORD", b"Junk"))),
     [3, 5, 6]),
]


@pytest.mark.parametrize("key,expected", KEY_TABLE,
                         ids=[repr(k) for k, _ in KEY_TABLE])
def test_key(key: SearchKey, expected: list[int]) -> None:
    """
    Each key, alone or nested, matches exactly the expected messages of
    the synthetic mailbox.
    """
    assert search(AND(key)) == expected


def test_utf8_term_matches_rfc2047_subject() -> None:
    """
    A UTF-8 search term matches a subject that is RFC 2047 encoded on the
    wire, because matching runs on decoded values.
    """
    assert search(K("SUBJECT", "grüße".encode("utf-8")), "UTF-8") == [3]
    assert search(K("SUBJECT", "KÖLN".encode("utf-8")), "utf-8") == [3]


def test_casefold_is_unicode() -> None:
    """
    Case-insensitivity is Unicode case folding: C{STRASSE} finds
    C{straße} (and the body has both spellings).
    """
    assert search(K("BODY", b"strasse")) == [3]
    assert search(K("SUBJECT", "GRÜSSE".encode("utf-8")), "UTF-8") == [3]


def test_text_searches_decoded_headers() -> None:
    """
    TEXT looks into decoded header values, not only into the raw
    (encoded) header.
    """
    assert search(K("TEXT", "jürgen".encode("utf-8")), "UTF-8") == [3]


def test_latin1_charset() -> None:
    """
    A charset other than US-ASCII/UTF-8 is resolved by the charset layer
    and the term is decoded with it.
    """
    assert search(K("SUBJECT", "köln".encode("latin-1")),
                  "ISO-8859-1") == [3]


def test_default_charset_takes_utf8() -> None:
    """
    Without CHARSET (and with US-ASCII), 8-bit terms are taken as UTF-8,
    which is what clients that don't say send.
    """
    assert search(K("SUBJECT", "köln".encode("utf-8"))) == [3]
    assert search(K("SUBJECT", "köln".encode("utf-8")), "US-ASCII") == [3]


def test_unknown_charset() -> None:
    """
    An unknown CHARSET raises L{BadCharset}, which the dispatcher answers
    with C{NO [BADCHARSET (...)]} listing every charset SEARCH, SORT and
    THREAD accept, the same list for all three (RFC 3501 sections 6.4.4
    and 7.1).
    """
    from imapd.search import KNOWN_CHARSETS

    with pytest.raises(BadCharset) as info:
        compile_search(K("SUBJECT", b"x"), "X-NO-SUCH-CHARSET")
    assert isinstance(info.value, CommandFailed)
    assert info.value.supported == KNOWN_CHARSETS
    assert {"US-ASCII", "UTF-8", "ISO-8859-1"} <= set(KNOWN_CHARSETS)
    status, code, _ = to_response(info.value)
    assert (status, code) == (b"NO", "BADCHARSET (%s)" % " ".join(KNOWN_CHARSETS))


def test_unknown_charset_without_strings() -> None:
    """
    The CHARSET is checked even when the program has no string argument:
    the client still named a charset we don't know.
    """
    with pytest.raises(BadCharset):
        compile_search(K("ALL"), "X-NO-SUCH-CHARSET")


def test_unsupported_key() -> None:
    """A key the parser knows but this module doesn't is a BAD, not a crash."""
    with pytest.raises(BadCommand):
        compile_search(K("X-UNKNOWN", 5))


@dataclass(frozen=True)
class ModseqRecord:
    """A record from a store that keeps mod-sequences (RFC 7162)."""

    uid: int
    flags: frozenset
    internaldate: datetime
    size: int
    modseq: int


def test_modseq() -> None:
    """
    MODSEQ n matches mod-sequences of n or more (RFC 7162 section 3.1.5);
    records without one fail the command rather than match nothing.
    """
    matcher = compile_search(K("MODSEQ", 5))
    when = datetime(2020, 1, 1, tzinfo=UTC)
    hits = [n for n in (4, 5, 6)
            if matcher(SearchItem(1, ModseqRecord(1, frozenset(), when, 1, n),
                                  frozenset(), 1, 1))]
    assert hits == [5, 6]
    plain = MessageRecord(1, frozenset(), when, 1)
    with pytest.raises(CommandFailed):
        matcher(SearchItem(1, plain, frozenset(), 1, 1))


def test_saved_result() -> None:
    """
    RFC 5182 C{$} matches the saved result's UIDs, for SEQSET and UID
    alike; without a saved result it matches nothing.
    """
    saved = SequenceSet((), saved=True)
    assert search(K("SEQSET", saved), saved_uids=frozenset({11, 31})) == [2, 7]
    assert search(K("UID", saved), saved_uids=frozenset({40})) == [8]
    assert search(K("SEQSET", saved)) == []


def test_star_follows_mailbox_size() -> None:
    """
    C{*} is resolved against each item's max_seq, so one compiled
    program stays right when the mailbox grows between calls.
    """
    matcher = compile_search(K("SEQSET", S((None, None))))
    items = _items()
    assert [i.seq for i in items if matcher(i)] == [8]
    items7 = _items(MAILBOX[:7])
    assert [i.seq for i in items7 if matcher(i)] == [7]


def test_needs_message() -> None:
    """
    Header, body, text and sent-date keys need the content; flag, size,
    date, UID and sequence keys don't, also when nested.
    """
    for name, value in [("FROM", b"x"), ("SUBJECT", b""), ("BODY", b"x"),
                        ("TEXT", b"x"), ("HEADER", (b"a", b"b")),
                        ("SENTON", date(2020, 1, 1)), ("BCC", b"x")]:
        assert needs_message(K(name, value)), name
        assert needs_message(AND(K("SEEN"), K("NOT", None, K(name, value))))
    for name, value in [("SEEN", None), ("ALL", None), ("LARGER", 1),
                        ("ON", date(2020, 1, 1)), ("UID", S(1)),
                        ("SEQSET", S(1)), ("KEYWORD", b"a"), ("NEW", None),
                        ("YOUNGER", 5)]:
        assert not needs_message(AND(K(name, value))), name


def test_cheap_keys_first() -> None:
    """
    In C{UNSEEN FROM x} the flag is checked first: only unseen messages
    are loaded, whatever order the client wrote the keys in.
    """
    loads: list[int] = []
    matcher = compile_search(AND(K("FROM", b"example"), K("UNSEEN")))
    hits = [i.seq for i in _items(loads=loads) if matcher(i)]
    assert hits == [2, 3, 5]
    assert loads == [2, 3, 5]


def test_message_loaded_once() -> None:
    """
    Several content keys on one message share one load: the item keeps
    the message after the first call of its loader.
    """
    loads: list[int] = []
    matcher = compile_search(AND(K("FROM", b"a"), K("SUBJECT", b"e"),
                                 K("BODY", b"e")))
    [i.seq for i in _items(loads=loads) if matcher(i)]
    assert loads == sorted(set(loads))


def test_no_loader_for_flag_search() -> None:
    """
    A program that needs no content works on items without a loader,
    as the handler builds them when L{needs_message} is False.
    """
    matcher = compile_search(AND(K("SEEN"), K("LARGER", 10)))
    record = MessageRecord(1, frozenset({"\\Seen"}),
                           datetime(2020, 1, 1, tzinfo=UTC), 11)
    assert matcher(SearchItem(1, record, record.flags, 1, 1))


def test_search_item_without_loader_raises() -> None:
    """Asking an item with no loader for content is a clear error."""
    record = MessageRecord(1, frozenset(), datetime(2020, 1, 1, tzinfo=UTC), 1)
    with pytest.raises(ValueError):
        SearchItem(1, record, frozenset(), 1, 1).message


def test_younger_uses_compile_time_now() -> None:
    """
    Items without C{now} count YOUNGER/OLDER from the time given to
    L{compile_search} (or the current time).
    """
    record = MessageRecord(1, frozenset(),
                           datetime(2020, 1, 1, 0, 0, tzinfo=UTC), 1)
    item = SearchItem(1, record, frozenset(), 1, 1)
    now = datetime(2020, 1, 1, 0, 1, tzinfo=UTC)
    assert compile_search(K("YOUNGER", 60), now=now)(item)
    assert not compile_search(K("YOUNGER", 59), now=now)(item)
    assert compile_search(K("OLDER", 59), now=now)(item)
    assert compile_search(K("OLDER", 60))(item)  # the real now is later
