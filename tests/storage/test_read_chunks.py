# -*- test-case-name: tests.storage.test_read_chunks -*-
"""
L{storage.interfaces.IMailbox.read_chunks} of both stores: the same
octets as L{read} (whole, or any range), in pieces no larger than about a
chunk, for awkward messages (mboxrd-quoted lines cut between chunks,
CRLFs cut between chunks, lines longer than a chunk, no body, no final
line end); issue 18 (CATENATE URL parts were read whole).
"""

from __future__ import annotations

import pytest

import storage.crlf
import storage.maildir.mailbox
import storage.mbox.mailbox
from storage.location import parse_location
from storage.registry import open_store

MESSAGES = [
    b"Subject: a\r\n\r\nbody\r\n",
    b"Subject: q\r\n\r\nFrom x\r\n>From y\r\n>>From z\r\nFro\r\n>>>\r\n" * 7 + b">>Fr",
    b"Subject: long\r\n\r\n" + b">" * 40 + b"From " + b"x" * 100 + b"\r\n>From\r\n",
    b"Subject: all header\r\nX-A: b\r\n",
    b"Subject: cr\r\n\r\nline\r\r\nbare\nlone\rcr\r\n",
    b"X-UID: 5\r\nStatus: RO\r\nSubject: ours\r\n\r\nFrom me\r\n",
    b"Subject: no end\r\n\r\n" + b"y" * 50,
]


@pytest.mark.parametrize("kind", ["maildir", "mbox"])
@pytest.mark.parametrize("chunk", [3, 7, 64, 1 << 20])
def test_read_chunks_equals_read(tmp_path, monkeypatch, kind, chunk):
    """Every range of every message, in pieces of at most about a chunk, is read()'s."""
    for module in (storage.crlf, storage.maildir.mailbox, storage.mbox.mailbox):
        monkeypatch.setattr(module, "CHUNK", chunk)
    store = open_store(parse_location(f"{kind}:{tmp_path}/m", "u"), "u", None)
    box = store.open("INBOX")
    t = box.transaction()
    for msg in MESSAGES:
        t.append(msg)
    t.commit()
    box.close()
    box = store.open("INBOX", readonly=True)
    for record in box.sync().messages:
        whole = box.read(record.uid)
        pieces = list(box.read_chunks(record.uid))
        assert b"".join(pieces) == whole
        # (A line's run of '>' waits whole until "From " follows or not:
        # 45 octets in the third message.)
        assert max(map(len, pieces[1:]), default=0) <= 2 * chunk + 48
        for offset, length in ((0, 1), (3, 10), (len(whole) - 2, None), (5, 0),
                               (len(whole) + 4, None), (1, len(whole))):
            got = b"".join(box.read_chunks(record.uid, offset, length))
            want = whole[offset:] if length is None else whole[offset:offset + length]
            assert got == want, (record.uid, offset, length)
