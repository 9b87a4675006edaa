"""
The full-text index is a cache (DESIGN.md rule 2): a deleted file, a file
that is no database, damaged FTS5 data and a UIDVALIDITY change never
change a SEARCH answer, and the index is built again afterwards.  On both
stores, through the protocol, against the answers with the index off.
"""

from __future__ import annotations

import glob
import os

import pytest

from tests.imapd.fts import fts_corpus

#: Messages with words that tell them apart.
MESSAGES = [
    b"From: a@example.org\r\nSubject: apples\r\n\r\nred apples and green pears\r\n",
    b"From: b@example.org\r\nSubject: pears\r\n\r\nyellow pears only\r\n",
    b"From: c@example.org\r\nSubject: =?utf-8?q?K=C3=A4se?=\r\n\r\nkein Obst, nur K\xc3\xa4se\r\n",
    b"From: d@example.org\r\nSubject: plums\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n\r\nblue plu=\r\nms and apples\r\n",
] * 5

PROGRAMS = ["TEXT apples", "BODY pears", "TEXT {5+}\r\nk\u00e4se", "BODY plums", "NOT TEXT apples",
            "OR BODY yellow TEXT plums", "TEXT example.org", "BODY nothing-here"]


def _search(conv, program: str) -> str:
    return conv.ok(f"s UID SEARCH CHARSET UTF-8 {program}".encode())[0]


def _answers(conv) -> list[str]:
    return [_search(conv, p) for p in PROGRAMS]


def _index(conv):
    from imapd.cache import mailbox_identity
    from imapd.fts.query import fts_index

    account = conv.proto.account
    return fts_index(account.index_dir, mailbox_identity(account.user, conv.proto.selected.mailbox))


@pytest.fixture
def box(authed):
    """INBOX with L{MESSAGES}, selected; the answers with the index off."""
    from imapd.fts import FtsSettings

    fts_corpus.load(authed, MESSAGES, flag=False)
    authed.proto.context.fts = FtsSettings(enabled=False)
    authed.expected = _answers(authed)
    authed.proto.context.fts = FtsSettings()
    assert _answers(authed) == authed.expected
    index = _index(authed)
    assert len(index.documents(authed.proto.selected.uidvalidity)) == len(MESSAGES)
    return authed


def _reads(conv, monkeypatch) -> list[int]:
    reads: list[int] = []
    mailbox = conv.proto.selected.mailbox
    real = mailbox.read
    monkeypatch.setattr(mailbox, "read", lambda uid: reads.append(uid) or real(uid))
    return reads


def test_deleted_file_is_rebuilt(box, monkeypatch):
    """Index files removed: same answers (read from the store), then indexed again."""
    index = _index(box)
    for path in glob.glob(index.path + "*"):
        os.remove(path)
    reads = _reads(box, monkeypatch)
    assert _answers(box) == box.expected
    assert len(reads) >= len(MESSAGES)  # the first search read them all
    assert os.path.exists(index.path)
    assert len(index.documents(box.proto.selected.uidvalidity)) == len(MESSAGES)
    reads.clear()
    assert _answers(box) == box.expected
    assert reads == []


def test_file_that_is_no_database_is_moved_aside_and_rebuilt(box, monkeypatch):
    """Garbage over the file's header: same answers, the file moved aside, a new one built."""
    index = _index(box)
    index.close()
    for path in glob.glob(index.path + "-*"):
        os.remove(path)
    with open(index.path, "r+b") as f:
        f.write(b"this is not an SQLite database " * 64)
    assert _answers(box) == box.expected
    assert glob.glob(index.path + ".corrupt-*")
    assert len(index.documents(box.proto.selected.uidvalidity)) == len(MESSAGES)
    reads = _reads(box, monkeypatch)
    assert _answers(box) == box.expected
    assert reads == []


def test_damaged_fts_data_is_moved_aside_and_rebuilt(box):
    """
    The FTS5 b-tree scribbled on (random bytes over the segment pages in
    its C{text_data} shadow table): a MATCH fails as corrupt, the search
    reads the messages, and the index is built again.
    """
    import sqlite3

    index = _index(box)
    index.close()
    conn = sqlite3.connect(index.path)
    conn.execute("UPDATE text_data SET block = randomblob(length(block)) WHERE id > 10")
    conn.commit()
    conn.close()
    assert _answers(box) == box.expected
    assert glob.glob(index.path + ".corrupt-*")
    assert _answers(box) == box.expected
    assert len(index.documents(box.proto.selected.uidvalidity)) == len(MESSAGES)


def test_rows_of_another_uidvalidity_never_answer(box, monkeypatch):
    """
    Rows written under another UIDVALIDITY (RFC 3501 section 2.3.1.1:
    the UIDs name other messages) count as not indexed, and the next
    write drops them all.
    """
    from index.fts import FtsDoc
    from imapd.fts.indexer import update_mailbox

    index = _index(box)
    uidvalidity = box.proto.selected.uidvalidity
    # The old mailbox had "apples" in every message.
    index.clear()
    index.add(uidvalidity - 1, [FtsDoc(uid, len(MESSAGES[uid - 1]), ("apples",) * 3)
                                for uid in range(1, len(MESSAGES) + 1)])
    reads = _reads(box, monkeypatch)
    assert _answers(box) == box.expected
    assert len(reads) >= len(MESSAGES)
    assert set(index.documents(uidvalidity - 1)) == set()
    assert len(index.documents(uidvalidity)) == len(MESSAGES)
    account = box.proto.account
    assert update_mailbox(account.store, account.user, account.index_dir, "INBOX").indexed == 0


@pytest.mark.parametrize("store_kind", ["maildir"])
def test_mailbox_recreated_elsewhere_drops_the_rows(box, store_kind):
    """
    Another node deletes and recreates a mailbox (so this node's DELETE
    never dropped the index file): the store gives a new UIDVALIDITY
    under the same name, the old rows never answer and the next write
    drops them.
    """
    import shutil

    from imapd.fts import FtsSettings

    box.ok("c1 CREATE Box")
    for i, data in enumerate(MESSAGES):
        box.send(f"b{i} APPEND Box {{{len(data)}+}}\r\n".encode() + data + b"\r\n")
        assert box.lines()[-1].startswith(f"b{i} OK")
    box.ok("s1 SELECT Box")
    assert _answers(box)[0] != "* SEARCH"
    old = box.proto.selected.uidvalidity
    index = _index(box)
    assert len(index.documents(old)) == len(MESSAGES)
    box.ok("c2 CLOSE")
    shutil.rmtree(os.path.join(box.proto.account.store.root, ".Box"))
    box.ok("c3 CREATE Box")
    # The new mailbox: the messages in reverse order, so each UID names
    # another text than before.
    for i, data in enumerate(reversed(MESSAGES)):
        box.send(f"b{i} APPEND Box {{{len(data)}+}}\r\n".encode() + data + b"\r\n")
        assert box.lines()[-1].startswith(f"b{i} OK")
    box.ok("s2 SELECT Box")
    new = box.proto.selected.uidvalidity
    assert new != old and _index(box).path == index.path
    box.proto.context.fts = FtsSettings(enabled=False)
    expected = _answers(box)
    box.proto.context.fts = FtsSettings()
    assert _answers(box) == expected
    assert index.documents(old) == {}
    assert len(index.documents(new)) == len(MESSAGES)


def test_messages_over_max_message_size_are_left_to_the_scan(box, monkeypatch):
    """
    [fts] max_message_size: a larger message is recorded as not indexed
    without being read or parsed by the indexer (a background job never
    holds a huge message whole; issue 18), and searches read it instead,
    with the same answers.
    """
    import imapd.fts.indexer as indexer
    import imapd.message
    from imapd.fts import FtsSettings

    limit = 60  # octets: the first message (and its repeats) is larger
    large = {uid for uid, data in enumerate(MESSAGES, 1) if len(data) > limit}
    assert large and len(large) < len(MESSAGES)
    parsed: list[int] = []
    real = imapd.message.Message

    def counting(raw, *args, **kwargs):
        parsed.append(len(raw))
        return real(raw, *args, **kwargs)
    monkeypatch.setattr(imapd.message, "Message", counting)
    account = box.proto.account
    result = indexer.update_mailbox(account.store, account.user, account.index_dir, "INBOX",
                                    FtsSettings(max_message_size=limit), rebuild=True)
    assert result.documents == len(MESSAGES)
    assert len(parsed) == len(MESSAGES) - len(large) and max(parsed) <= limit
    docs = _index(box).documents(box.proto.selected.uidvalidity)
    assert {uid for uid, (_size, complete) in docs.items() if not complete} == large
    monkeypatch.setattr(imapd.message, "Message", real)
    box.proto.context.fts = FtsSettings(max_message_size=limit)
    reads = _reads(box, monkeypatch)
    assert _answers(box) == box.expected
    assert set(reads) >= large
