# -*- test-case-name: tests.imapd.test_search_cache_corpus -*-
"""
SEARCH through the index on real mail (L{imapd.cache.SearchCache}): spam
with encoded words in many charsets, raw 8-bit headers, broken dates and
the mail gem's charset fixtures.  Every header search answers the same
bytes without an index, with a cold one and with a warm one.
"""

from __future__ import annotations

from pathlib import Path

import pytest

CORPUS = next(p / "shared" / "corpus" for p in Path(__file__).resolve().parents
              if (p / "shared" / "corpus").is_dir())
SOURCES = ["spamassassin/spam/cur", "spamassassin/hard_ham/cur", "mail-gem/multi_charset/cur",
           "mail-gem/mime_emails/cur", "mail-gem/plain_emails/cur"]
PER_SOURCE = 30

SEARCHES = [
    'FROM "com"', 'FROM "@"', 'FROM ""', 'TO ""', 'TO "net"', 'CC ""', 'BCC ""',
    'SUBJECT "re:"', 'SUBJECT "free"', 'SUBJECT ""', 'SUBJECT "\xc3\xa9"',
    'SUBJECT "' + "\u3080\u3081".encode().decode("latin-1") + '"', 'FROM "\xc3\xa9"',
    'HEADER Message-ID "<"', 'HEADER X-Mailer ""', 'HEADER Content-Type "charset"',
    'SENTSINCE 1-Jan-2002', 'SENTBEFORE 1-Aug-2002', 'SENTON 23-Aug-2002',
    'OR FROM "yahoo" TO "yahoo"', 'NOT SUBJECT "the"', 'UNSEEN SUBJECT "a"',
]


def _messages():
    out = []
    for source in SOURCES:
        for path in sorted((CORPUS / source).iterdir())[:PER_SOURCE]:
            data = path.read_bytes()
            if data.startswith(b"From "):
                data = data.split(b"\n", 1)[1]
            # IMAP messages have CRLF line ends (RFC 3501 section 2.2.2).
            out.append(data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
    return out


@pytest.fixture
def corpus_box(authed):
    for i, data in enumerate(_messages()):
        authed.send(f"a{i} APPEND INBOX {{{len(data)}+}}\r\n".encode() + data + b"\r\n")
        assert authed.lines()[-1].startswith(f"a{i} OK")
    authed.ok("s1 SELECT INBOX")
    return authed


def _search(conv, criteria):
    conv.send(b"q UID SEARCH CHARSET UTF-8 " + criteria.encode("latin-1") + b"\r\n")
    out = conv.output()
    assert out.splitlines()[-1].startswith(b"q OK"), out
    return out


def test_real_mail_same_answers(corpus_box, monkeypatch):
    conv = corpus_box
    account = conv.proto.account
    index_dir = account.index_dir
    account.index_dir = None
    expected = [_search(conv, s) for s in SEARCHES]
    account.index_dir = index_dir
    cold = [_search(conv, s) for s in SEARCHES]
    reads = []
    mailbox = conv.proto.selected.mailbox
    real = mailbox.read
    monkeypatch.setattr(mailbox, "read", lambda uid: reads.append(uid) or real(uid))
    warm = [_search(conv, s) for s in SEARCHES]
    assert cold == expected
    assert warm == expected
    assert reads == []
    # The searches are not all trivial: they tell messages apart.
    counts = {s: len(out.split(b"\r\n")[0].split()) - 2 for s, out in zip(SEARCHES, expected)}
    assert len(set(counts.values())) > 5, counts
    assert 0 < counts['SUBJECT "free"'] < len(_messages())
    # ISO-2022-JP and UTF-8 encoded words, decoded and found.
    assert counts[SEARCHES[11]] == 3
