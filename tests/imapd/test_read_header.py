"""
L{IMailbox.read_header} of both stores gives exactly the header block the
protocol layer's parser finds in L{IMailbox.read}'s answer, for real mail
and for every way an empty line can be written, while a Maildir reads no
more of the file than the header.
"""

from __future__ import annotations

import os

import pytest

from imapd.message import Message
from storage.maildir.store import MaildirStore, make_maildir
from storage.mbox.store import MboxStore

from test_corpus_roundtrip import CORPUS

LONG = b"References: " + b" ".join(b"<%d@example.org>" % i for i in range(900)) + b"\n"

EDGE_CASES = [
    b"Subject: lf\n\nbody\n",
    b"Subject: crlf\r\n\r\nbody\r\n",
    b"\nno header at all\n",
    b"\r\nno header, CRLF\r\n",
    b"Subject: all header\nX-A: b",
    b"Subject: mixed\r\nX-A: b\n\nbody\r\n\r\n",
    b"Subject: crlf blank first\n\r\nbody\n\nmore\n",
    b"Subject: lf then crlf\n\n\r\nbody\n",
    b"Subject: cr before crlf\r\r\n\r\nbody\n",
    LONG + b"Subject: header beyond 8 kB\n\nbody\n" + b"x" * 30000 + b"\n",
    # The empty line split across the first 8 kB read.
    b"X-Pad: " + b"p" * (8191 - 8) + b"\n\nbody\n",
    b"X-Pad: " + b"p" * (8190 - 8) + b"\r\n\r\nbody\n",
]


def corpus_files() -> list[bytes]:
    out = []
    for path in sorted(CORPUS.glob("*/cur/*"))[:150]:
        data = path.read_bytes()
        if data.startswith(b"From "):
            data = data.split(b"\n", 1)[1]
        out.append(data)
    return out


def maildir_with(tmp_path, messages: list[bytes]):
    root = os.path.join(str(tmp_path), "Maildir")
    make_maildir(root)
    for i, data in enumerate(messages):
        with open(os.path.join(root, "cur", f"1700000000.M{i}P1.host:2,"), "wb") as f:
            f.write(data)
    return MaildirStore(root, "user", fsync=False).open("INBOX")


def mbox_with(tmp_path, messages: list[bytes]):
    root = os.path.join(str(tmp_path), "mail")
    os.makedirs(root)
    store = MboxStore(root, "user", fsync=False)
    mailbox = store.open("INBOX")
    txn = mailbox.transaction()
    for data in messages:
        txn.append(data)
    txn.commit()
    return store.open("INBOX")


@pytest.mark.parametrize("opener", [maildir_with, mbox_with], ids=["maildir", "mbox"])
def test_header_block_equals_parsed_header(tmp_path, opener):
    messages = EDGE_CASES + corpus_files()
    mailbox = opener(tmp_path, messages)
    uids = [m.uid for m in mailbox.sync().messages]
    assert len(uids) == len(messages)
    for uid in uids:
        whole = mailbox.read(uid)
        assert mailbox.read_header(uid) == Message(whole).header_bytes(), uid


def test_maildir_reads_only_the_header(tmp_path, monkeypatch):
    """A 30 kB body after a short header: the file is read in one 8 kB piece."""
    mailbox = maildir_with(tmp_path, [b"Subject: s\n\n" + b"x" * 30000])
    mailbox.sync()
    sizes = []
    real_read = os.read

    def counting_read(fd, n):
        sizes.append(n)
        return real_read(fd, n)
    monkeypatch.setattr(os, "read", counting_read)
    assert mailbox.read_header(1) == b"Subject: s\r\n\r\n"
    assert sizes == [8192]
