"""L{index.fts.FtsIndex}: the full-text file of one mailbox, on its own."""

from __future__ import annotations

from index.fts import SEPARATOR, FtsDoc, FtsIndex


def _open(tmp_path) -> FtsIndex:
    return FtsIndex.open(str(tmp_path / "index"), "user\0INBOX\0/m")


def test_match_is_a_substring_test_per_value(tmp_path):
    index = _open(tmp_path)
    assert index.add(7, [
        FtsDoc(1, 10, ("subject: hello world", "the quick brown fox", "")),
        FtsDoc(2, 20, ("subject: other", "foxes" + SEPARATOR + "quick", "filename=a.pdf")),
    ])
    assert index.match(["body"], "quick") == {1, 2}
    assert index.match(["body"], "k brown f") == {1}
    assert index.match(["body"], "esqu") == set()  # across two values: no
    assert index.match(["header", "body", "parts"], "a.pdf") == {2}
    assert index.match(["header"], "fox") == set()
    assert index.match(["body"], "QUICK") == set()  # the caller folds, SQLite does not
    assert index.match(["body"], "fo") is None  # under 3 characters: cannot answer
    assert index.match(["body"], 'say "hi"') == set()  # quotes are text, not syntax


def test_replace_remove_and_uidvalidity(tmp_path):
    index = _open(tmp_path)
    index.add(7, [FtsDoc(1, 10, ("", "apples", "")), FtsDoc(2, 10, ("", "pears", ""))])
    index.add(7, [FtsDoc(1, 11, ("", "plums", "")), FtsDoc(3, 5, None)])
    assert index.documents(7) == {1: (11, True), 2: (10, True), 3: (5, False)}
    assert index.match(["body"], "apples") == set()
    index.remove(7, [2])
    assert index.documents(7) == {1: (11, True), 3: (5, False)}
    assert index.match(["body"], "pears") == set()
    # Another UIDVALIDITY: its first write drops every old row.
    index.add(8, [FtsDoc(5, 1, ("", "figs", ""))])
    assert index.documents(7) == {}
    assert index.documents(8) == {5: (1, True)}
    assert index.match(["body"], "plums") == set()


def test_documents_kept_until_the_file_changes(tmp_path):
    """
    The documents list is read once and given again while nothing was
    written, by this connection or another process's.
    """
    import sqlite3

    index = _open(tmp_path)
    index.add(7, [FtsDoc(1, 10, ("", "apples", ""))])
    first = index.documents(7)
    assert index.documents(7) is first
    index.add(7, [FtsDoc(2, 10, ("", "pears", ""))])  # this connection
    second = index.documents(7)
    assert set(second) == {1, 2}
    other = sqlite3.connect(index.path)  # another process, say
    other.execute("DELETE FROM doc WHERE uid = 1")
    other.commit()
    other.close()
    assert set(index.documents(7)) == {2}
    index.clear()
    assert index.documents(7) == {}
