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


def _in_other_process(path: str, code: str) -> None:
    # FtsIndex used by another process, as another daemon process or
    # imapd-admin would: its writes move the file's generation on, but
    # nothing of this process's memory.
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    subprocess.run([sys.executable, "-c",
                    "import sys\nfrom index.fts import FtsDoc, FtsIndex\n"
                    f"index = FtsIndex({path!r})\n" + code],
                   cwd=root, check=True, timeout=60)


def _full_reads(index: FtsIndex) -> list[str]:
    # Every read of the whole documents list this connection makes.
    reads: list[str] = []
    index._ensure().set_trace_callback(
        lambda sql: reads.append(sql) if sql.startswith("SELECT uid, size, complete FROM doc")
        else None)
    return reads


def test_documents_kept_until_another_process_writes(tmp_path):
    """
    The documents list is read once and given again while nothing was
    written; a write by another process makes it read again.
    """
    index = _open(tmp_path)
    index.add(7, [FtsDoc(1, 10, ("", "apples", "")), FtsDoc(2, 10, ("", "pears", ""))])
    reads = _full_reads(index)
    first = index.documents(7)
    assert index.documents(7) is first
    _in_other_process(index.path, "index.remove(7, [1])")
    assert index.documents(7) == {2: (10, True)}
    assert len(reads) == 2
    index.clear()
    assert index.documents(7) == {}


def test_own_writes_update_the_documents_list_without_reading_it_again(tmp_path):
    """
    add and remove through any connection of this process (the storage
    pool's threads each have one) change the kept documents list (a new
    dict: the old one may be held by a search); the next documents()
    reads nothing, and answers as a full read would.
    """
    index = _open(tmp_path)
    other_thread = FtsIndex.open(str(tmp_path / "index"), "user\0INBOX\0/m")
    assert other_thread._ensure() is not index._ensure()
    index.add(7, [FtsDoc(u, 10, ("", "apples", "")) for u in range(1, 6)])
    reads = _full_reads(index)
    first = index.documents(7)
    assert len(reads) == 1
    other_thread.add(7, [FtsDoc(6, 12, ("", "pears", "")), FtsDoc(2, 11, None)])
    second = index.documents(7)
    assert second is not first and first[2] == (10, True)  # the old one unchanged
    index.remove(7, [3, 99])
    third = index.documents(7)
    assert index.documents(7) is third
    assert len(reads) == 1  # no full read after the writes
    assert third == {1: (10, True), 2: (11, False), 4: (10, True), 5: (10, True),
                     6: (12, True)}
    from index import fts

    fts._known.clear()  # what a full read gives
    assert index.documents(7) == third
    assert len(reads) == 2


def test_another_process_between_the_list_and_a_write_forces_a_full_read(tmp_path):
    """
    Another process wrote after the list was kept, then this process
    writes: the list is not patched (it misses the other write) but read
    again, and holds both changes.  Another UIDVALIDITY's write drops the
    rows: never an answer kept for the old one.
    """
    index = _open(tmp_path)
    index.add(7, [FtsDoc(1, 10, ("", "apples", "")), FtsDoc(2, 10, ("", "pears", ""))])
    reads = _full_reads(index)
    index.documents(7)
    _in_other_process(index.path, "index.remove(7, [1])")
    index.add(7, [FtsDoc(3, 10, ("", "plums", ""))])
    assert index.documents(7) == {2: (10, True), 3: (10, True)}
    assert len(reads) == 2
    index.add(8, [FtsDoc(5, 1, ("", "figs", ""))])
    assert index.documents(7) == {}
    assert index.documents(8) == {5: (1, True)}


def test_a_new_file_in_the_place_of_the_old_one_is_read(tmp_path):
    """
    The file deleted and made again (by another process, or moved aside as
    corrupt): its generations start elsewhere, so the list kept for the
    old file is never taken for the new one's.
    """
    import glob
    import os

    index = _open(tmp_path)
    index.add(7, [FtsDoc(1, 10, ("", "apples", ""))])
    assert set(index.documents(7)) == {1}
    index.close()
    for path in glob.glob(index.path + "*"):
        os.remove(path)
    _in_other_process(index.path, "index._ensure()\nindex.add(7, [FtsDoc(2, 10, ('', 'pears', ''))])")
    assert set(index.documents(7)) == {2}
