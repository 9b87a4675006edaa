"""
Our SORT and THREAD answers on every corpus mailbox equal the golden files
in C{golden/} (L{sort_corpus}).  No Dovecot needed: this catches any change
of answer, and C{test_sort_dovecot} says why the golden answers differ
from Dovecot's where they do.

After a deliberate change of the rules, regenerate and review the diff::

    IMAPD_REGEN_GOLDEN=1 /work/venv/bin/python -m pytest -q \\
        tests/imapd/sort/test_sort_golden.py
"""

import os

import pytest

import sort_corpus


@pytest.mark.parametrize("name", sorted(sort_corpus.MAILBOXES))
def test_answers_equal_golden(our_corpus_answers, name):
    """Every command's answer on this mailbox is the golden one."""
    ours = our_corpus_answers[name]
    if os.environ.get(sort_corpus.REGEN_ENV) == "1":
        sort_corpus.GOLDEN.mkdir(exist_ok=True)
        sort_corpus.golden_path(name).write_text(sort_corpus.format_golden(name, ours))
    golden = sort_corpus.read_golden(name)
    assert list(golden) == list(sort_corpus.COMMANDS)
    for command in sort_corpus.COMMANDS:
        assert ours[command] == golden[command], f"{name}: {command}"


def test_every_mailbox_has_a_golden_file():
    """No golden file is left over from a mailbox that is gone."""
    files = {p.stem for p in sort_corpus.GOLDEN.glob("*.txt")}
    assert files == set(sort_corpus.MAILBOXES)


def test_answers_cover_each_message_once(our_corpus_answers, corpus_maildirs):
    """Each golden SORT answer is a permutation of the mailbox's UIDs, each THREAD too."""
    for name, path in corpus_maildirs.items():
        count = len(os.listdir(os.path.join(path, "cur")))
        for command, line in sort_corpus.read_golden(name).items():
            if command.startswith("UID SORT"):
                uids = [int(u) for u in line.split()[2:]]
            else:
                uids = [u for t in sort_corpus.threads(line) for u in sort_corpus.uids_of(t)]
            assert sorted(uids) == list(range(1, count + 1)), (name, command)
