# -*- test-case-name: tests.imapd.test_search_cache -*-
"""
SEARCH through the per-node index (L{imapd.cache.SearchCache}): header
keys (BCC, CC, FROM, SUBJECT, TO, HEADER, SENT*) answer from cached rows
without reading message files once the index is warm, and the answers are
byte for byte those of a search without an index, also after the index
file was deleted or scribbled over between searches (DESIGN.md rule 2).
"""

from __future__ import annotations

import glob
import os

import pytest

from imapd.cache import mailbox_identity, search_fields
from index import index_path

MESSAGES = [
    b"From: Alice Kowalczyk <alice@example.org>\r\n"
    b"To: Bob <bob@example.org>, \"Carol C.\" <carol@example.org>\r\n"
    b"Cc: dave@example.org\r\n"
    b"Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?= quokka\r\n"
    b"Date: Mon, 7 Feb 1994 21:52:25 -0800\r\n"
    b"X-Tag: alpha\r\n"
    b"\r\n"
    b"Hi Bob, this is the body.\r\n",
    # Two From fields, folded Subject, no Date: SENT* falls back to INTERNALDATE.
    b"From: =?ISO-8859-2?Q?Ma=B3gorzata?= <m@example.pl>\r\n"
    b"From: second@example.org\r\n"
    b"Subject: a folded\r\n subject GR\xc3\x9cSSE\r\n"
    b"Bcc: hidden@example.org\r\n"
    b"\r\n"
    b"body two kowalczyk\r\n",
    # No empty line: all header.
    b"Subject: \r\nTo: \r\nX-Tag: beta\r\n",
    b"From: nobody@example.net\r\nDate: Tue, 8 Feb 1994 10:00:00 +0000\r\n\r\nalice\r\n",
]

SEARCHES = [
    'FROM "kowalczyk"',
    'FROM "ma\xc5\x82gorzata"',
    'FROM "second"',
    'FROM ""',
    'TO ""',
    'TO "carol c."',
    'CC "DAVE"',
    'BCC "hidden"',
    'SUBJECT "gr\xc3\xbcsse"',
    'SUBJECT "FOLDED SUBJECT"',
    'SUBJECT ""',
    'HEADER X-Tag "bet"',
    'HEADER X-Tag ""',
    'SENTBEFORE 8-Feb-1994',
    'SENTON 8-Feb-1994',
    'OR FROM alice SUBJECT folded',
    'NOT FROM example.org',
    'UNSEEN FROM example',
    'FROM example BODY kowalczyk',
    'TEXT alice',
]



@pytest.fixture
def mailbox(authed):
    for i, data in enumerate(MESSAGES):
        authed.append(f"a{i}", data)
    authed.ok("s1 SELECT INBOX")
    return authed


def _search(conv, criteria):
    conv.send(b"q1 UID SEARCH CHARSET UTF-8 " + criteria.encode("latin-1") + b"\r\n")
    out = conv.output()
    assert out.splitlines()[-1].startswith(b"q1 OK"), out
    return out


def _all(conv):
    return [_search(conv, s) for s in SEARCHES]


def _index_files(conv):
    account = conv.proto.account
    identity = mailbox_identity(account.user, conv.proto.selected.mailbox)
    return glob.glob(index_path(account.index_dir, identity) + "*")


def _count_reads(conv, monkeypatch):
    reads = []
    mailbox = conv.proto.selected.mailbox
    real = mailbox.read
    monkeypatch.setattr(mailbox, "read", lambda uid: reads.append(uid) or real(uid))
    return reads


def _uncached(conv):
    index_dir = conv.proto.account.index_dir
    conv.proto.account.index_dir = None
    try:
        return _all(conv)
    finally:
        conv.proto.account.index_dir = index_dir


def test_answers_match_uncached_search(mailbox):
    """Cold, warm and index-less searches give identical responses, and the searches mean what they say."""
    expected = _uncached(mailbox)
    assert _all(mailbox) == expected
    assert _all(mailbox) == expected
    by_search = dict(zip(SEARCHES, expected))
    assert by_search['FROM "kowalczyk"'].startswith(b"* SEARCH 1\r\n")
    assert by_search['FROM "ma\xc5\x82gorzata"'].startswith(b"* SEARCH 2\r\n")
    assert by_search['FROM ""'].startswith(b"* SEARCH 1 2 4\r\n")
    assert by_search['TO ""'].startswith(b"* SEARCH 1 3\r\n")
    assert by_search['SUBJECT "gr\xc3\xbcsse"'].startswith(b"* SEARCH 1 2\r\n")
    assert by_search['HEADER X-Tag "bet"'].startswith(b"* SEARCH 3\r\n")
    assert by_search['FROM example BODY kowalczyk'].startswith(b"* SEARCH 2\r\n")


@pytest.mark.parametrize("criteria", [s for s in SEARCHES if "BODY" not in s and "TEXT" not in s])
def test_warm_header_search_reads_no_message(mailbox, monkeypatch, criteria):
    """Once the index is warm, header searches read no message file."""
    cold = _search(mailbox, criteria)
    assert _index_files(mailbox)
    reads = _count_reads(mailbox, monkeypatch)
    assert _search(mailbox, criteria) == cold
    assert reads == []


def test_other_field_filled_from_cached_header(mailbox, monkeypatch):
    """A FROM search caches the header block, so a later TO or HEADER search needs no file either."""
    _search(mailbox, "FROM x")
    reads = _count_reads(mailbox, monkeypatch)
    warm = [_search(mailbox, s) for s in ('TO "bob"', 'HEADER X-Tag alpha', 'SENTON 7-Feb-1994')]
    assert reads == []
    monkeypatch.undo()
    mailbox.proto.account.index_dir = None
    assert warm == [_search(mailbox, s) for s in ('TO "bob"', 'HEADER X-Tag alpha', 'SENTON 7-Feb-1994')]


def test_body_keys_still_read_files(mailbox, monkeypatch):
    """
    Without the full-text index ([fts] enabled = false), BODY reads the
    store, but only for messages the cached header keys let through; with
    it (imapd.fts), it reads none.
    """
    from imapd.fts import FtsSettings

    _all(mailbox)
    reads = _count_reads(mailbox, monkeypatch)
    with_fts = _search(mailbox, "FROM second BODY two")
    assert reads == []
    mailbox.proto.context.fts = FtsSettings(enabled=False)
    assert _search(mailbox, "FROM second BODY two") == with_fts
    assert reads == [2]


# An mbox's read_header slices the message it reads with one pread anyway.
@pytest.mark.parametrize("store_kind", ["maildir"])
@pytest.mark.parametrize("criteria", [s for s in SEARCHES if "BODY" not in s and "TEXT" not in s])
def test_cold_header_search_reads_only_headers(mailbox, monkeypatch, criteria, store_kind):
    """
    With no index at all, header keys read each message's header block
    (IMailbox.read_header), never the whole message, and answer the same.
    """
    expected = _search(mailbox, criteria)
    mailbox.proto.account.index_dir = None
    reads = _count_reads(mailbox, monkeypatch)
    assert _search(mailbox, criteria) == expected
    assert reads == []


def test_index_deleted_between_searches(mailbox):
    """Deleting the index files between searches costs re-reads, never a different answer."""
    expected = _all(mailbox)
    files = _index_files(mailbox)
    assert files
    for name in files:
        os.unlink(name)
    assert _all(mailbox) == expected
    assert _index_files(mailbox)
    assert _uncached(mailbox) == expected


def test_index_scribbled_between_searches(mailbox):
    """An index overwritten with garbage is moved aside and rebuilt; answers stay identical."""
    expected = _all(mailbox)
    path = [f for f in _index_files(mailbox) if f.endswith(".db")][0]
    with open(path, "r+b") as f:
        f.write(b"garbage!" * 4096)
    for name in glob.glob(path + "-*"):
        os.unlink(name)
    assert _all(mailbox) == expected
    assert _all(mailbox) == expected


def test_wrong_cached_text_is_not_trusted_for_other_size(mailbox, monkeypatch):
    """A row written for a message of another size (a recycled UIDVALIDITY) is ignored."""
    from index import MailboxIndex
    expected = _search(mailbox, 'FROM "kowalczyk"')
    account = mailbox.proto.account
    view = mailbox.proto.selected
    idx = MailboxIndex.open(account.index_dir, mailbox_identity(account.user, view.mailbox))
    idx.put_many(view.uidvalidity, {4: {"size": 1, "search_from": "\0kowalczyk"}})
    idx.close()
    assert _search(mailbox, 'FROM "kowalczyk"') == expected


def test_search_fields():
    """Header keys name their columns; flag and body keys name none."""
    from imapd.parser.types import SearchKey

    def key(name, value=None, *children):
        return SearchKey(name=name, value=value, children=tuple(children))
    assert search_fields(key("AND", None, key("FROM", b"x"), key("NOT", None, key("CC", b"y")))) \
        == ("search_cc", "search_from")
    assert search_fields(key("HEADER", (b"X", b"y"))) == ("header",)
    assert search_fields(key("AND", None, key("BODY", b"x"), key("SEEN"))) == ()


def test_index_truncated_between_searches(mailbox):
    """An index cut short (a full disk, a crash) is rebuilt; answers stay identical."""
    expected = _all(mailbox)
    path = [f for f in _index_files(mailbox) if f.endswith(".db")][0]
    for name in glob.glob(path + "-*"):
        os.unlink(name)
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(size // 3)
    assert _all(mailbox) == expected
    assert _all(mailbox) == expected
    assert _uncached(mailbox) == expected
