"""
Sort keys (RFC 5256 section 3, RFC 5957) from message headers, the LRU
cache, and the i;unicode-casemap comparator (RFC 5051).
"""

import os
from datetime import datetime, timezone

import pytest
from pathlib import Path

from imapd.message import Message
from imapd.sort.collate import search_fold, unicode_casemap
from imapd.sort.keys import HeaderKeys, _KeyCache, header_keys, sort_items
from sort_records import sort_item

CORPUS = str(next(p / "shared" for p in Path(__file__).resolve().parents if (p / "shared" / "corpus").is_dir()) / "corpus")


def keys_of(header: bytes) -> HeaderKeys:
    """The HeaderKeys of a message with this header and a one-line body."""
    return header_keys(Message(header + b"\r\nbody\r\n"))


def test_keys_from_header():
    """Every field is read from the header, decoded and collated."""
    k = keys_of(
        b"From: =?utf-8?q?J=C3=B6rg?= <joerg@example.org>, other@x.org\r\n"
        b"To: undisclosed-recipients:;, \"\" <to@x.org>\r\n"
        b"Cc: Zed <Zed.Person@x.org>\r\n"
        b"Subject: Re: [list] =?iso-8859-1?q?Caf=E9?= (fwd)\r\n"
        b"Date: Mon, 2 Jan 2023 10:00:00 +0100\r\n"
        b"Message-ID: <own@x.org>\r\n"
        b"In-Reply-To: <irt@x.org>\r\n"
        b"References: <r1@x.org> junk <r2@x.org>\r\n"
    )
    assert k.subject == unicode_casemap("Café") and k.reply
    assert k.sent == datetime(2023, 1, 2, 9, tzinfo=timezone.utc).timestamp()
    assert k.from_ == "JOERG" and k.display_from == unicode_casemap("Jörg")
    # A group's first address is the group name, as in ENVELOPE (and Dovecot).
    assert k.to == "UNDISCLOSED-RECIPIENTS"
    assert k.cc == "ZED.PERSON"
    # An empty display name falls back to the addr-spec (RFC 5957 section 3).
    assert keys_of(b'To: "" <to@x.org>\r\n').display_to == "TO@X.ORG"
    assert k.message_id == "own@x.org"
    assert k.references == ("r1@x.org", "r2@x.org")


def test_in_reply_to_when_no_references():
    """Without valid References, the first In-Reply-To id is the parent (RFC 5256 step 1.A)."""
    k = keys_of(b"In-Reply-To: <a@x.org> <b@x.org>\r\nReferences: <not-an-id>\r\n")
    assert k.references == ("a@x.org",)
    assert keys_of(b"Subject: x\r\n").references == ()


def test_message_ids_with_folding_white_space():
    """White space inside a msg-id is dropped; ids without "@" are not ids (Dovecot alike)."""
    k = keys_of(b"In-Reply-To: <Pine.1@hydrogen.leitl.or\r\n g>\r\n")
    assert k.references == ("Pine.1@hydrogen.leitl.org",)
    assert keys_of(b"References: <noatsign> <@x> <a@b>\r\n").references == ("a@b",)


def test_bogus_dates_read_as_dovecot():
    """A year before 1900 is no date; an unsigned numeric zone is +0000."""
    assert keys_of(b"Date: Sat, 02 Feb 0102 11:39:51 +0200\r\n").sent is None
    k = keys_of(b"Date: Fri, 02 Aug 2002 23:37:59 0530\r\n")
    assert k.sent == datetime(2002, 8, 2, 23, 37, 59, tzinfo=timezone.utc).timestamp()


def test_missing_fields():
    """A header without the fields gives empty keys and no date."""
    k = keys_of(b"X-Nothing: here\r\n")
    assert (k.subject, k.from_, k.to, k.cc, k.display_from, k.sent, k.message_id) == \
        ("", "", "", "", "", None, None)


def test_date_falls_back_to_internaldate():
    """An unparsable Date sorts by INTERNALDATE (RFC 5256 section 3)."""
    bad = sort_item(1, 1, 500.0, 10, keys_of(b"Date: not a date\r\n"))
    good = sort_item(2, 2, 0.0, 10, keys_of(b"Date: Thu, 1 Jan 1970 00:01:40 +0000\r\n"))
    assert bad.date == 500.0 and good.date == 100.0
    assert [i.seq for i in sort_items([bad, good], [("DATE", False)])] == [2, 1]


def test_sort_items_multiple_criteria():
    """Later criteria break ties of earlier ones; REVERSE applies to one criterion only."""
    items = [sort_item(s, s, float(a), size, HeaderKeys()) for s, a, size in
             [(1, 5, 10), (2, 5, 20), (3, 1, 20), (4, 1, 10)]]
    by_size_then_newest = [("SIZE", False), ("ARRIVAL", True)]
    assert [i.seq for i in sort_items(items, by_size_then_newest)] == [1, 4, 2, 3]
    assert [i.seq for i in sort_items(items, [("ARRIVAL", True)])] == [1, 2, 3, 4]


def test_cache_is_bounded():
    """Beyond its bound the cache drops the least recently used mailboxes."""
    cache = _KeyCache(3)
    a = cache.mailbox("a")
    cache.add(a, 1, HeaderKeys())
    cache.add(a, 2, HeaderKeys())
    b = cache.mailbox("b")
    cache.add(b, 1, HeaderKeys())
    assert len(cache) == 3
    cache.add(b, 2, HeaderKeys())
    # "a" was least recently used: dropped whole; "b" is kept.
    assert len(cache) == 2 and cache.mailbox("a") == {} and len(cache.mailbox("b")) == 2
    # A single mailbox larger than the bound is kept whole.
    c = cache.mailbox("c")
    for uid in range(5):
        cache.add(c, uid, HeaderKeys())
    assert len(c) == 5


@pytest.mark.parametrize("a, b", [
    ("hello", "HELLO"), ("Straße", "STRAßE"), ("école", "ÉCOLE"),
    ("e\u0301cole", "\u00e9cole"), ("ﬁle", "FILE"), ("привет", "ПРИВЕТ"),
    ("σοφία", "ΣΟΦΊΑ"),
])
def test_unicode_casemap_equal(a, b):
    """Strings equal under i;unicode-casemap map to the same key (RFC 5051)."""
    assert unicode_casemap(a) == unicode_casemap(b)


def test_unicode_casemap_orders_like_titlecase():
    """Letters sort before "_" and after "@", as titlecase (not lowercase) mapping orders them."""
    words = ["_under", "apple", "@at", "Banana", "zebra"]
    assert sorted(words, key=unicode_casemap) == ["@at", "apple", "Banana", "zebra", "_under"]


def test_search_fold():
    """SEARCH folding also equates full case foldings such as sharp s and "ss"."""
    assert search_fold("STRASSE") == search_fold("Straße")
    assert search_fold("Ko\u0308ln") == search_fold("KÖLN")


def _corpus_messages():
    for root, _dirs, files in os.walk(CORPUS):
        for name in sorted(files):
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                data = f.read()
            if root.endswith(("/cur", "/new")):
                yield path, data
            elif data.startswith(b"From "):
                for i, part in enumerate(data.split(b"\nFrom ")):
                    yield "%s#%d" % (path, i), part


def test_header_keys_never_raise_on_corpus():
    """Every corpus message yields sort keys; header decoding never raises."""
    count = 0
    for path, data in _corpus_messages():
        raw = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        try:
            k = header_keys(Message(raw))
        except Exception as e:  # pragma: no cover - the failure report
            raise AssertionError(f"{path}: {e!r}")
        assert isinstance(k.subject, str)
        count += 1
    assert count > 7000


def test_cached_answer():
    """An answer is reused only for the same key and the same pairs; no identity, no cache."""
    from imapd.sort import results
    results.clear()
    calls = []

    def compute():
        calls.append(1)
        return len(calls)
    assert results.cached_answer(("m", "SORT"), [(1, 1)], compute) == 1
    assert results.cached_answer(("m", "SORT"), [(1, 1)], compute) == 1
    assert results.cached_answer(("m", "SORT"), [(1, 2)], compute) == 2
    assert results.cached_answer((None, "SORT"), [(1, 2)], compute) == 3
    assert results.cached_answer((None, "SORT"), [(1, 2)], compute) == 4
    results.clear()
