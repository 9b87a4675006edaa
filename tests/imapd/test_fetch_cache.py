# -*- test-case-name: tests.imapd.test_fetch_cache -*-
"""
FETCH through the per-node index (L{imapd.cache}): a warm FETCH of
ENVELOPE, BODYSTRUCTURE or header fields answers byte for byte what a cold
one did, without reading the message files, and a damaged or deleted index
changes nothing the client sees (DESIGN.md rule 2).
"""

from __future__ import annotations

import glob
import os

import pytest

from imapd.cache import mailbox_identity
from index import index_path

SIMPLE = (
    b"From: Alice <alice@example.org>\r\n"
    b"To: Bob <bob@example.org>, \"Carol C.\" <carol@example.org>\r\n"
    b"Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?= quokka\r\n"
    b"Date: Mon, 7 Feb 1994 21:52:25 -0800\r\n"
    b"Message-ID: <1@example.org>\r\n"
    b"References: <0@example.org>\r\n"
    b"\r\n"
    b"Hi Bob, this is the body.\r\n"
)

MULTIPART = (
    b"From: Dave <dave@example.org>\r\n"
    b"To: undisclosed-recipients:;\r\n"
    b"Subject: parts\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: multipart/mixed; boundary=\"XX\"\r\n"
    b"\r\n"
    b"preamble\r\n"
    b"--XX\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"first part\r\n"
    b"--XX\r\n"
    b"Content-Type: message/rfc822\r\n"
    b"\r\n"
    b"From: inner@example.org\r\n"
    b"Subject: inner\r\n"
    b"\r\n"
    b"inner body\r\n"
    b"--XX--\r\n"
)

# No empty line at all: the whole message is header.
HEADER_ONLY = b"Subject: no body\r\nX-Odd: yes\r\n"

ITEMS = [
    "(UID FLAGS RFC822.SIZE INTERNALDATE ENVELOPE)",
    "BODYSTRUCTURE",
    "BODY",
    "(BODY.PEEK[HEADER.FIELDS (FROM TO CC SUBJECT DATE MESSAGE-ID REFERENCES)])",
    "(BODY.PEEK[HEADER.FIELDS.NOT (SUBJECT)])",
    "(BODY.PEEK[HEADER]<5.20> RFC822.HEADER)",
    "(ENVELOPE BODYSTRUCTURE BODY.PEEK[HEADER])",
]



@pytest.fixture
def mailbox(authed):
    """A selected INBOX holding three messages of different shapes."""
    for i, data in enumerate((SIMPLE, MULTIPART, HEADER_ONLY)):
        authed.append(f"a{i}", data)
    authed.ok("s1 SELECT INBOX")
    return authed


def _fetch(conv, items):
    conv.send(f"f1 UID FETCH 1:* {items}\r\n".encode())
    out = conv.output()
    assert out.splitlines()[-1].startswith(b"f1 OK"), out
    return out


def _index_files(conv):
    account = conv.proto.account
    identity = mailbox_identity(account.user, conv.proto.selected.mailbox)
    return glob.glob(index_path(account.index_dir, identity) + "*")


def _forbid_reads(conv, monkeypatch):
    def read(uid):
        raise AssertionError(f"message {uid} read from the store")
    monkeypatch.setattr(conv.proto.selected.mailbox, "read", read)


@pytest.mark.parametrize("items", ITEMS)
def test_warm_fetch_reads_no_message(mailbox, monkeypatch, items):
    """The second FETCH answers identically from the index, without reading any message file."""
    cold = _fetch(mailbox, items)
    assert _index_files(mailbox)
    _forbid_reads(mailbox, monkeypatch)
    assert _fetch(mailbox, items) == cold


def test_envelope_from_cached_header(mailbox, monkeypatch):
    """A row holding only the header block is enough for ENVELOPE and header fields."""
    _fetch(mailbox, "RFC822.HEADER")
    _forbid_reads(mailbox, monkeypatch)
    warm = _fetch(mailbox, "(ENVELOPE BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    monkeypatch.undo()
    mailbox.proto.account.index_dir = None
    expected = _fetch(mailbox, "(ENVELOPE BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert warm == expected


def test_same_answers_without_index(mailbox):
    """With the index or without one (no index directory), FETCH answers the same bytes."""
    with_index = [_fetch(mailbox, items) for items in ITEMS]
    warm = [_fetch(mailbox, items) for items in ITEMS]
    mailbox.proto.account.index_dir = None
    without = [_fetch(mailbox, items) for items in ITEMS]
    assert with_index == warm == without


def test_index_deleted_between_fetches(mailbox):
    """Deleting the index files between FETCHes costs a re-read, never a different answer."""
    answers = [_fetch(mailbox, items) for items in ITEMS]
    files = _index_files(mailbox)
    assert files
    for name in files:
        os.unlink(name)
    assert [_fetch(mailbox, items) for items in ITEMS] == answers
    assert _index_files(mailbox)


def test_index_scribbled_between_fetches(mailbox):
    """An index file overwritten with garbage is moved aside and rebuilt; answers stay identical."""
    answers = [_fetch(mailbox, items) for items in ITEMS]
    path = [f for f in _index_files(mailbox) if f.endswith(".db")][0]
    with open(path, "r+b") as f:
        f.write(b"garbage!" * 4096)
    for name in glob.glob(path + "-*"):
        os.unlink(name)
    assert [_fetch(mailbox, items) for items in ITEMS] == answers
    assert [_fetch(mailbox, items) for items in ITEMS] == answers


def test_body_fetch_bypasses_index(mailbox, monkeypatch):
    """Items that need the content (BODY[], BODY[1]) read the store even when the index is warm."""
    for items in ITEMS:
        _fetch(mailbox, items)
    reads = []
    real = mailbox.proto.selected.mailbox.read
    monkeypatch.setattr(mailbox.proto.selected.mailbox, "read",
                        lambda uid: reads.append(uid) or real(uid))
    out = _fetch(mailbox, "(ENVELOPE BODY.PEEK[1])")
    assert len(reads) == 3
    assert b"BODY[1] {27}\r\nHi Bob, this is the body.\r\n" in out


def test_expunged_message_forgotten(mailbox, monkeypatch):
    """After EXPUNGE and a new session's first FETCH, the index holds no row for the gone UID."""
    from index import MailboxIndex
    _fetch(mailbox, "ENVELOPE")
    mailbox.ok("st STORE 1 +FLAGS.SILENT (\\Deleted)")
    mailbox.ok("ex EXPUNGE")
    account = mailbox.proto.account
    identity = mailbox_identity(account.user, mailbox.proto.selected.mailbox)
    uidvalidity = mailbox.proto.selected.uidvalidity
    # A fresh thread-local connection prunes at first use.
    import imapd.cache
    monkeypatch.setattr(imapd.cache, "_local", type(imapd.cache._local)())
    _fetch(mailbox, "ENVELOPE")
    idx = MailboxIndex.open(account.index_dir, identity)
    assert sorted(idx.get_many(uidvalidity, [1, 2, 3], ("envelope",))) == [2, 3]
    idx.close()


def test_section_spec_canonical():
    """Field order, case and repetition share one cached answer; names Message.section tells apart stay apart."""
    from imapd.cache import section_spec
    assert section_spec("header.fields", ("Subject", "FROM", "from")) == \
        section_spec("HEADER.FIELDS", (b"from", b"subject"))
    assert section_spec("HEADER.FIELDS", ("FROM",)) != section_spec("HEADER.FIELDS.NOT", ("FROM",))
    # bytes.lower() leaves non-ASCII alone, so these select different fields.
    assert section_spec("HEADER.FIELDS", ("\u00c9",)) != section_spec("HEADER.FIELDS", ("\u00e9",))
    assert section_spec("HEADER", ()) is None


def test_field_lists_in_any_order(mailbox, monkeypatch):
    """A cached HEADER.FIELDS answer serves the same field set asked in another order, byte for byte."""
    _fetch(mailbox, "(BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)])")
    _forbid_reads(mailbox, monkeypatch)
    warm = _fetch(mailbox, "(BODY.PEEK[HEADER.FIELDS (FROM SUBJECT)])")
    monkeypatch.undo()
    mailbox.proto.account.index_dir = None
    assert warm == _fetch(mailbox, "(BODY.PEEK[HEADER.FIELDS (FROM SUBJECT)])")


# mbox messages are read with one pread of the mbox file: nothing to spare.
@pytest.mark.parametrize("store_kind", ["maildir"])
def test_cold_header_fetch_reads_only_headers(authed, mail_root, store_kind, monkeypatch):
    """
    Messages an MDA dropped in (no size in their names): a cold FETCH of
    ENVELOPE and header fields reads no whole message and leaves the size
    unknown; RFC822.SIZE afterwards is still the size of the CRLF text.
    """
    cur = mail_root / authed.proto.account.user / "cur"
    authed.ok("s0 SELECT INBOX")  # creates the Maildir
    body = b"line\n" * 5000
    for i, data in enumerate((SIMPLE, MULTIPART, HEADER_ONLY)):
        (cur / f"1700000000.M{i}P1.host:2,").write_bytes(data.replace(b"\r\n", b"\n") + body)
    authed.ok("s1 SELECT INBOX")
    _forbid_reads(authed, monkeypatch)
    out = _fetch(authed, "(ENVELOPE BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert out.count(b" FETCH (") == 3 and b"quokka" in out
    records = authed.proto.selected.records
    assert all(r.known_size is None for r in records.values())
    monkeypatch.undo()
    sizes = _fetch(authed, "RFC822.SIZE")
    for i, data in enumerate((SIMPLE, MULTIPART, HEADER_ONLY), 1):
        crlf = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") + body.replace(b"\n", b"\r\n")
        assert b"UID %d RFC822.SIZE %d)" % (i, len(crlf)) in sizes


@pytest.mark.parametrize("store_kind", ["maildir"])
def test_restarted_server_lists_sizes_and_dates_from_the_index(
        authed, new_conv, mail_root, store_kind, monkeypatch):
    """
    After a restart (no listing cache, no memory layer), the message list
    of MDA-delivered mail (no sizes in the names) comes from the index:
    no message file is statted or read, and the answer is the same.
    """
    import imapd.cache as cache_module
    from imapd.cache import _Memory
    from storage.maildir import mailbox as maildir_module

    cur = mail_root / authed.proto.account.user / "cur"
    authed.ok("s0 SELECT INBOX")
    for i, data in enumerate((SIMPLE, MULTIPART, HEADER_ONLY)):
        path = cur / f"1700000000.M{i}P1.host:2,"
        path.write_bytes(data.replace(b"\r\n", b"\n"))
        os.utime(path, (1_600_000_000 + i * 86400, 1_600_000_000 + i * 86400))
    authed.ok("s1 SELECT INBOX")
    items = "(UID FLAGS RFC822.SIZE INTERNALDATE ENVELOPE)"
    before = _fetch(authed, items)
    assert b"INTERNALDATE \"14-Sep-2020 12:26:40 +0000\"" in before
    # The first session took the new files as \Recent; the second does not.
    before = before.replace(b"\\Recent", b"")

    maildir_module._shared.clear()
    monkeypatch.setattr(cache_module, "_memory", _Memory(64 * 1024 * 1024))
    conv = new_conv()
    conv.login()
    conv.ok("s2 SELECT INBOX")
    real_stat = os.stat

    def stat(path, *args, **kwargs):
        assert os.path.dirname(str(path)) != str(cur), f"message file statted: {path}"
        return real_stat(path, *args, **kwargs)
    monkeypatch.setattr(os, "stat", stat)
    _forbid_reads(conv, monkeypatch)
    monkeypatch.setattr(conv.proto.selected.mailbox, "read_header", lambda uid: 1 / 0)
    assert _fetch(conv, items) == before
