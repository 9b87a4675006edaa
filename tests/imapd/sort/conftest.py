"""
Session fixtures for the corpus SORT/THREAD tests: each corpus mailbox is
written once per session, and our answers on it computed once.
"""

import shutil
import tempfile

import pytest

import sort_corpus
from imapd.sort.keys import cache_clear


@pytest.fixture(scope="session")
def corpus_maildirs():
    """Corpus mailbox name -> a Maildir of it (imapbench, with dovecot-uidlist)."""
    root = tempfile.mkdtemp(prefix="sortcorpus-", dir="/tmp")
    try:
        yield sort_corpus.build(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def our_corpus_answers(corpus_maildirs):
    """Corpus mailbox name -> command -> our answer line."""
    cache_clear()
    try:
        yield {name: sort_corpus.our_answers(name, path)
               for name, path in corpus_maildirs.items()}
    finally:
        cache_clear()
