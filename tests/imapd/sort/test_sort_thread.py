"""
THREAD algorithms (RFC 5256 section 4, Dovecot's REFS) on hand-made
messages and on the notmuch threading corpora: ghost roots, parent
priority, a References loop and duplicate Message-IDs.
"""

import os

import pytest
from pathlib import Path

from imapd.message import Message
from imapd.sort.keys import HeaderKeys, header_keys
from sort_records import sort_item
from imapd.sort.collate import unicode_casemap
from imapd.sort.subject import base_subject
from imapd.sort.thread import format_threads, thread_items

NOTMUCH = str(next(p / "shared" for p in Path(__file__).resolve().parents if (p / "shared" / "corpus").is_dir()) / "corpus" / "notmuch")


def mk(seq, mid=None, refs=(), subject="", date=None):
    """A SortItem with the given Message-ID, references, subject and date."""
    base, reply = base_subject(subject)
    keys = HeaderKeys(subject=unicode_casemap(base), reply=reply,
                      sent=float(seq if date is None else date),
                      message_id=mid, references=tuple(refs))
    return sort_item(seq, seq * 10, 0.0, 100, keys)


def thread(algorithm, items, uid=False):
    """The THREAD response line for C{items}, without the CRLF."""
    line = format_threads(thread_items(algorithm, items), uid)
    return line.decode().rstrip("\r\n")


def test_empty():
    """No message: a bare C{* THREAD}."""
    assert thread("REFERENCES", []) == "* THREAD"
    assert thread("ORDEREDSUBJECT", []) == "* THREAD"


@pytest.mark.parametrize("algorithm", ["REFERENCES", "REFS"])
def test_chain_and_fork(algorithm):
    """A reply chain is a flat run; a fork nests one list per child (RFC 5256 section 5)."""
    items = [mk(1, "a@x", subject="s"), mk(2, "b@x", ["a@x"], "Re: s"),
             mk(3, "c@x", ["a@x", "b@x"], "Re: s"), mk(4, "d@x", ["a@x"], "Re: s")]
    assert thread(algorithm, items) == "* THREAD (1 (2 3)(4))"
    assert thread(algorithm, items, uid=True) == "* THREAD (10 (20 30)(40))"


def test_dummy_parent_kept_at_root():
    """Two replies to a missing message stay under a dummy; one is promoted (step 4.B)."""
    items = [mk(1, "a@x", ["gone@x"], "one"), mk(2, "b@x", ["gone@x"], "two"),
             mk(3, "c@x", ["other@x"], "three")]
    assert thread("REFERENCES", items) == "* THREAD ((1)(2))(3)"


def test_dummy_below_root_promoted():
    """A missing message inside a thread is removed and its children move up (step 4.B)."""
    items = [mk(1, "a@x", subject="s"), mk(2, "c@x", ["a@x", "gone@x"], "s2"),
             mk(3, "d@x", ["a@x", "gone@x"], "s3")]
    assert thread("REFERENCES", items) == "* THREAD (1 (2)(3))"


def test_truncated_references_relinked():
    """A message's own References beat a parent guessed from another's (step 1.B)."""
    items = [mk(1, "c@x", ["a@x", "b@x"], "x"), mk(2, "b@x", [], "y"),
             mk(3, "a@x", [], "z")]
    # 2 had been linked under 3 by 1's References; its own (none) wins.
    assert thread("REFERENCES", items) == "* THREAD (2 1)(3)"


def test_siblings_by_date_then_sequence():
    """Siblings and threads are ordered by sent date, ties by sequence (step 6)."""
    items = [mk(1, "a@x", subject="p", date=10), mk(2, "b@x", ["a@x"], "q", date=50),
             mk(3, "c@x", ["a@x"], "r", date=20), mk(4, "d@x", subject="t", date=5),
             mk(5, "e@x", ["a@x"], "u", date=20)]
    assert thread("REFERENCES", items) == "* THREAD (4)(1 (3)(5)(2))"


def test_subject_merge_reply_under_original():
    """A reply whose References were lost joins the thread of its subject (step 5)."""
    items = [mk(1, "a@x", subject="hello", date=1), mk(2, "b@x", subject="Re: hello", date=2)]
    assert thread("REFERENCES", items) == "* THREAD (1 2)"
    # REFS does no subject grouping.
    assert thread("REFS", items) == "* THREAD (1)(2)"


def test_subject_merge_two_originals_under_dummy():
    """Two non-replies with one base subject become siblings under a dummy (step 5)."""
    items = [mk(1, "a@x", subject="hello", date=1), mk(2, "b@x", subject="[list] hello", date=2),
             mk(3, "c@x", subject="other", date=3)]
    assert thread("REFERENCES", items) == "* THREAD ((1)(2))(3)"


def test_subject_merge_into_dummy():
    """A thread under a dummy absorbs a later message with its subject (step 5.E/F)."""
    items = [mk(1, "a@x", ["gone@x"], "Re: topic", date=1),
             mk(2, "b@x", ["gone@x"], "Re: topic", date=2),
             mk(3, "c@x", [], "topic", date=3)]
    assert thread("REFERENCES", items) == "* THREAD ((1)(2)(3))"


def test_empty_subjects_not_merged():
    """Messages without a subject are not grouped together (step 5.C)."""
    items = [mk(1, "a@x"), mk(2, "b@x")]
    assert thread("REFERENCES", items) == "* THREAD (1)(2)"


def test_loop_in_references():
    """Messages referencing each other make a thread, not a loop (step 1.A/B)."""
    items = [mk(1, "a@x", ["b@x"], "x"), mk(2, "b@x", ["a@x"], "y")]
    assert thread("REFERENCES", items) == "* THREAD (2 1)"
    items = [mk(1, "a@x", ["a@x"], "self")]
    assert thread("REFERENCES", items) == "* THREAD (1)"


def test_duplicate_message_ids():
    """A duplicate Message-ID gets its own container; references find the first (step 1)."""
    items = [mk(1, "a@x", subject="one"), mk(2, "a@x", subject="two"),
             mk(3, "c@x", ["a@x"], "three")]
    assert thread("REFERENCES", items) == "* THREAD (1 3)(2)"


def test_missing_message_ids():
    """Messages without a Message-ID still thread by their references."""
    items = [mk(1, "a@x", subject="one"), mk(2, None, ["a@x"], "two"), mk(3, None, [], "three")]
    assert thread("REFERENCES", items) == "* THREAD (1 2)(3)"


def test_deep_chain_does_not_recurse():
    """A 5,000-message chain threads without exhausting the stack."""
    items = [mk(1, "m1@x", subject="s")]
    for i in range(2, 5001):
        items.append(mk(i, "m%d@x" % i, ["m%d@x" % (i - 1)], "Re: s"))
    line = thread("REFERENCES", items)
    assert line == "* THREAD (" + " ".join(str(i) for i in range(1, 5001)) + ")"


def test_orderedsubject():
    """ORDEREDSUBJECT: one thread per base subject; the first is the parent of the rest."""
    items = [mk(1, subject="b", date=5), mk(2, subject="Re: a", date=3),
             mk(3, subject="a", date=4), mk(4, subject="Fwd: a", date=6),
             mk(5, subject="Re: b", date=1), mk(6, subject="c", date=2)]
    # a: 2 3 4 (from date 3); b: 5 1 (from date 1); c: 6 (date 2).
    assert thread("ORDEREDSUBJECT", items) == "* THREAD (5 1)(6)(2 (3)(4))"


def test_refs_orders_threads_by_newest_message():
    """REFS puts the thread with the latest activity last (Dovecot's THREAD=REFS)."""
    items = [mk(1, "a@x", subject="s", date=1), mk(2, "b@x", subject="t", date=2),
             mk(3, "c@x", ["a@x"], "Re: s", date=3)]
    assert thread("REFERENCES", items) == "* THREAD (1 3)(2)"
    assert thread("REFS", items) == "* THREAD (2)(1 3)"


def corpus(folder):
    """The messages of a notmuch corpus folder, in file-name order, as SortItems."""
    path = os.path.join(NOTMUCH, folder, "cur")
    items = []
    for seq, name in enumerate(sorted(os.listdir(path)), 1):
        with open(os.path.join(path, name), "rb") as f:
            raw = f.read().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        items.append(sort_item(seq, seq, 0.0, len(raw), header_keys(Message(raw))))
    return items




@pytest.mark.parametrize("algorithm, expected", [
    # Ghost root: 9 is the real root; 5 names a missing parent between 4
    # and itself, which is pruned.  12 ("root message") shares 9's base
    # subject, so both go under a dummy; 10's References has a typo.
    # 2 references the missing RT ticket, then 1: 1 and 3 are siblings
    # under that ghost.
    ("REFERENCES", "((9 4 (5)(6 8)(7))(12 11))(10)((1 2)(3))"),
    ("REFS", "(10)(12 11)(9 4 (5)(6 8)(7))((1 2)(3))"),
])
def test_notmuch_threading(algorithm, expected):
    """The notmuch ghost-root and parent-priority cases."""
    assert thread(algorithm, corpus("threading")) == "* THREAD " + expected


def test_notmuch_loop():
    """The notmuch In-Reply-To loop: the later message becomes the parent."""
    items = [i for i in corpus("broken") if i.keys.message_id
             and i.keys.message_id.startswith("mid-loop")]
    seqs = [i.seq for i in items]
    assert thread("REFERENCES", items) == "* THREAD (%d %d)" % (seqs[1], seqs[0])


def test_notmuch_duplicates():
    """The notmuch duplicate Message-IDs: each copy threads on its own."""
    items = corpus("duplicate")
    assert thread("REFERENCES", items) == "* THREAD (1)(2)((3)(4))(5)(6)(7)(8)(9)"
    assert thread("ORDEREDSUBJECT", items) == "* THREAD (1)(2)(3 4)(5)(6)(7)(8)(9)"


def test_lkml_threads_every_message_once():
    """On the LKML corpus every message appears exactly once in the answer."""
    items = corpus("lkml")
    for algorithm in ("REFERENCES", "REFS", "ORDEREDSUBJECT"):
        line = thread(algorithm, items)
        numbers = [int(t) for t in line[len("* THREAD "):].replace("(", " ").replace(")", " ").split()]
        assert sorted(numbers) == list(range(1, len(items) + 1)), algorithm


@pytest.mark.parametrize("algorithm", ["REFERENCES", "REFS"])
def test_deep_forks_do_not_recurse(algorithm):
    """
    Issue 18: a mailbox crafted with a fork at each of 5,000 levels (every
    message has a follow-up and a reply of its own) threads and formats
    without exhausting the stack (the response's nesting grows at every
    fork), and the response nests as RFC 5256 section 5 says.
    """
    depth = 5000
    items = [mk(1, "m1@x", subject="s")]
    for i in range(2, depth + 1):
        items.append(mk(2 * i - 2, "m%d@x" % i, ["m%d@x" % (i - 1)], "Re: s"))
        items.append(mk(2 * i - 1, "l%d@x" % i, ["m%d@x" % (i - 1)], "Re: s"))
    # Level i: "m_i (m_{i+1} ...)(l_{i+1})"; the follow-up is older.
    head, tail = [], []
    for i in range(1, depth):
        head.append("%d (" % (1 if i == 1 else 2 * i - 2))
        tail.append(")(%d)" % (2 * i + 1))
    expected = "* THREAD (" + "".join(head) + "%d" % (2 * depth - 2) + "".join(
        reversed(tail)) + ")"
    assert thread(algorithm, items) == expected
    assert thread(algorithm, items[:3]) == "* THREAD (1 (2)(3))"
