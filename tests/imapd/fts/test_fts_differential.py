"""
The full-text index never changes an answer: on a sample of the real
corpus (L{fts_corpus}) and on both stores, every one of more than 200
SEARCH programs gives the same UIDs

  - with the index off (C{[fts] enabled = false}: every message read),
  - with the index half built (every other message indexed, and the
    search's own write-back held back so it stays half built),
  - with the index built by the searches themselves (the first one reads
    every message and writes the rows), and
  - with the index built by the background indexer (L{update_mailbox}),

and, with the index complete, a program whose strings the index can
answer (3 characters or more) reads no message at all.
"""

from __future__ import annotations

import pytest

from tests.imapd.fts import fts_corpus

SAMPLE = fts_corpus.messages()
PROGRAMS = fts_corpus.programs(SAMPLE)


def _run(conv, program) -> list[int]:
    conv.send(fts_corpus.command("q", program))
    lines = conv.lines()
    assert lines[-1].startswith("q OK"), (fts_corpus.describe(program), lines)
    return fts_corpus.hits(lines)


def _answerable(program) -> bool:
    # Every string of the program is one the index answers, and the
    # program has no header key (those read the header without the
    # header cache when it is cold).
    _charset, tokens = program
    if any(t in ("SUBJECT", "FROM") for t in tokens):
        return False
    return all(len(t.decode(_charset_codec(_charset))) >= 3
               for t in tokens if isinstance(t, bytes))


def _charset_codec(charset):
    from imapd import charset as charsets

    return charsets.lookup(charset or "UTF-8") or "utf-8"


@pytest.fixture
def corpus_box(authed):
    fts_corpus.load(authed, SAMPLE)
    return authed


def _fts_index(conv):
    from imapd.cache import mailbox_identity
    from imapd.fts.query import fts_index

    account = conv.proto.account
    return fts_index(account.index_dir, mailbox_identity(account.user, conv.proto.selected.mailbox))


def test_program_list_is_large_and_varied():
    """The list has more than 200 programs, with every class the issue names."""
    assert len(SAMPLE) > 200
    assert len(PROGRAMS) >= 200
    text = [fts_corpus.describe(p) for p in PROGRAMS]
    for needed in ("TEXT", "BODY", "SUBJECT", "FROM", "NOT", "OR", "CHARSET KOI8-R",
                   "CHARSET GB2312"):
        assert any(needed in t for t in text), needed
    assert sum(1 for c, _t in PROGRAMS if c and c != "UTF-8") >= 5
    assert len(fts_corpus._qp_split_words(SAMPLE)) >= 5


def test_index_off_half_and_on_agree(corpus_box, monkeypatch):
    """Off, half built, built by SEARCH, built by the indexer: identical answers."""
    from imapd.fts import FtsSettings
    from imapd.fts import indexer as fts_indexer
    from imapd.fts.indexer import update_mailbox
    from imapd.fts.query import FtsSearch

    conv = corpus_box
    context = conv.proto.context
    account = conv.proto.account
    index = _fts_index(conv)

    context.fts = FtsSettings(enabled=False)
    expected = [_run(conv, p) for p in PROGRAMS]
    # The programs tell messages apart: many distinct answers, some empty,
    # none with every message.
    assert len({tuple(h) for h in expected}) > 120
    assert sum(1 for h in expected if not h) < len(PROGRAMS) // 4

    context.fts = FtsSettings()
    # Half built: every other message indexed, and kept so.
    index.clear()
    update_mailbox(account.store, account.user, account.index_dir, "INBOX")
    uidvalidity = conv.proto.selected.uidvalidity
    index.remove(uidvalidity, range(2, len(SAMPLE) + 1, 2))
    assert len(index.documents(uidvalidity)) == (len(SAMPLE) + 1) // 2
    with monkeypatch.context() as m:
        # Neither the search's write-back nor the indexing it asks for
        # after its answer (which runs at once without a pool) completes it.
        m.setattr(FtsSearch, "learn", lambda self, item: None)
        m.setattr(fts_indexer, "for_session", lambda session, name: None)
        half = [_run(conv, p) for p in PROGRAMS]
    assert len(index.documents(uidvalidity)) == (len(SAMPLE) + 1) // 2

    # Built by the searches: the first TEXT search reads and indexes all.
    index.clear()
    by_search = [_run(conv, p) for p in PROGRAMS]
    assert len(index.documents(uidvalidity)) == len(SAMPLE)

    # Built by the indexer, and every answerable program reads nothing.
    index.clear()
    update_mailbox(account.store, account.user, account.index_dir, "INBOX")
    reads = []
    mailbox = conv.proto.selected.mailbox
    real = mailbox.read
    monkeypatch.setattr(mailbox, "read", lambda uid: reads.append(uid) or real(uid))
    by_indexer = []
    answerable = 0
    for p in PROGRAMS:
        before = len(reads)
        by_indexer.append(_run(conv, p))
        if _answerable(p):
            answerable += 1
            assert len(reads) == before, fts_corpus.describe(p)
    assert answerable > 150

    for p, want, a, b, c in zip(PROGRAMS, expected, half, by_search, by_indexer):
        assert (a, b, c) == (want, want, want), fts_corpus.describe(p)
