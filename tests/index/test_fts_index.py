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


def _full_reads(index: FtsIndex) -> list[str]:
    # Every read of the whole documents list this connection makes.
    reads: list[str] = []
    index._ensure().set_trace_callback(
        lambda sql: reads.append(sql) if sql.startswith("SELECT uid, size, complete FROM doc")
        else None)
    return reads


def test_own_writes_update_the_documents_list_without_reading_it_again(tmp_path):
    """
    add and remove through this connection change the kept documents list
    (a new dict: the old one may be held by a search); the next
    documents() reads nothing, and answers as a full read would.
    """
    index = _open(tmp_path)
    index.add(7, [FtsDoc(u, 10, ("", "apples", "")) for u in range(1, 6)])
    reads = _full_reads(index)
    first = index.documents(7)
    assert len(reads) == 1
    index.add(7, [FtsDoc(6, 12, ("", "pears", "")), FtsDoc(2, 11, None)])
    second = index.documents(7)
    assert second is not first and first[2] == (10, True)  # the old one unchanged
    index.remove(7, [3, 99])
    third = index.documents(7)
    assert index.documents(7) is third
    assert len(reads) == 1  # no full read after the writes
    assert third == {1: (10, True), 2: (11, False), 4: (10, True), 5: (10, True),
                     6: (12, True)}
    index._documents = None  # what a full read gives
    assert index.documents(7) == third
    assert len(reads) == 2


def test_another_connections_write_still_forces_a_full_read(tmp_path):
    """
    A commit by another connection (another process) between the kept
    list and this connection's write: the list is read again, and holds
    the other connection's change too.
    """
    import sqlite3

    index = _open(tmp_path)
    index.add(7, [FtsDoc(1, 10, ("", "apples", "")), FtsDoc(2, 10, ("", "pears", ""))])
    reads = _full_reads(index)
    index.documents(7)
    other = sqlite3.connect(index.path)
    other.execute("DELETE FROM doc WHERE uid = 1")
    other.commit()
    other.close()
    index.add(7, [FtsDoc(3, 10, ("", "plums", ""))])
    assert index.documents(7) == {2: (10, True), 3: (10, True)}
    assert len(reads) == 2
    # Another UIDVALIDITY's write drops the rows: never an answer kept for 7.
    index.add(8, [FtsDoc(5, 1, ("", "figs", ""))])
    assert index.documents(7) == {}
    assert index.documents(8) == {5: (1, True)}
