# -*- test-case-name: tests.index.test_fts_index -*-
"""
L{FtsIndex}: the per-node full-text index of one mailbox, an SQLite FTS5
table with the C{trigram} tokenizer, in a file of its own beside the
mailbox's L{index.mailbox.MailboxIndex} (same directory, same naming by
the SHA-256 of an identity, same WAL mode and corruption rules).

Why trigrams: a phrase query of n >= 3 characters matches exactly the
documents that contain those n characters in a row, which is a substring
test; RFC 3501 section 6.4.4 asks SEARCH for substrings.  The caller
stores text already folded the way its matcher folds and asks with a
needle folded the same way, and the table is C{case_sensitive 1}: SQLite
folds nothing more, so the index agrees with a plain C{needle in text}
character for character (SQLite's own folding is simpler than Python's
and would not).  Queries of fewer than 3 characters match nothing in a
trigram table; the caller must not ask them.

What a row holds is the caller's business: a few text columns
(L{COLUMNS}), each one or more values joined by L{SEPARATOR}.  A needle
without the separator that occurs in the joined text occurs inside one
value, so a column answers "some value contains the needle" exactly.

Beside the text table, C{doc} says which messages are indexed, under
which UIDVALIDITY, with which size (a second check of the key, as in
L{index.mailbox}), and whether the text is complete: a message whose text
was too large (a configured per-part limit) has a row with C{complete = 0}
and no text, so it is known and never indexed again, and a search reads
it instead.  C{doc} and the text table change in one transaction, so a
crash at any instant (SQLite's WAL) leaves both in step.  C{meta} holds
the file's generation, which every write moves on in the same
transaction: it tells a process whether the C{doc} list it keeps is
still the file's (L{FtsIndex.documents}).

This package imports nothing from C{storage} or C{imapd} (STYLE.md item 9).
"""

from __future__ import annotations

import random
import sqlite3
import threading
from collections import OrderedDict
from typing import Iterable, NamedTuple, Optional

from index.mailbox import MailboxIndex, _transaction, index_path

__all__ = ["FtsIndex", "FtsDoc", "COLUMNS", "SEPARATOR", "fts_identity", "MIN_NEEDLE"]

#: The text columns: the top-level header, the decoded text parts, the
#: headers of the MIME parts below the top.
COLUMNS = ("header", "body", "parts")

#: Joins the values of one column: a noncharacter (U+FFFF), so no text a
#: user types has it.  NUL would end the text for FTS5.
SEPARATOR = "\uffff"

#: The shortest needle a trigram table answers.
MIN_NEEDLE = 3

_SCHEMA = """
CREATE TABLE IF NOT EXISTS doc (
    uid INTEGER PRIMARY KEY,
    uidvalidity INTEGER NOT NULL,
    size INTEGER,
    complete INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS doc_uidvalidity ON doc (uidvalidity);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE VIRTUAL TABLE IF NOT EXISTS text USING fts5(
    header, body, parts, tokenize = 'trigram case_sensitive 1', detail = full
);
"""

#: Host parameters per statement (SQLite before 3.32 allowed only 999).
_CHUNK = 900

#: The documents lists this process knows, by file: C{path ->
#: (generation, uidvalidity, {uid: (size, complete)})}, shared by every
#: thread's connection (the storage pool's threads each open their own),
#: least recently used out.  See L{FtsIndex.documents}.
_known: "OrderedDict[str, tuple[int, int, dict]]" = OrderedDict()
_known_lock = threading.Lock()
_KNOWN_FILES = 64


def fts_identity(identity: str) -> str:
    """
    The identity naming a mailbox's full-text file, from the identity of
    its L{MailboxIndex} (L{imapd.cache.mailbox_identity}): another file,
    so the long FTS writes never hold the lock FETCH's cache writes want.
    """
    return "fts\0" + identity


class FtsDoc(NamedTuple):
    """
    One message to index: its UID and size, and the text of each of
    L{COLUMNS}, or C{texts=None} for a message indexed as incomplete.
    """

    uid: int
    size: Optional[int]
    texts: Optional[tuple[str, str, str]]


class FtsIndex(MailboxIndex):
    """
    An open full-text database for one mailbox.  Like L{MailboxIndex}, a
    cache that never raises to the caller: a failure reads as "nothing
    indexed" (the caller then reads the messages) or drops the writes.
    """

    tables = ("doc", "text", "meta")
    schema = _SCHEMA
    #: Far from L{index.mailbox.SCHEMA_VERSION}: the two kinds of file
    #: never mistake each other's layout.  Also the version of what the
    #: rows hold: a file of another version is emptied and built again
    #: (L{MailboxIndex}'s open does it).  1002: HTML parts are held as
    #: their text, no longer as markup (1001), which would answer
    #: differently from the scan.
    schema_version = 1002

    @classmethod
    def open(cls, index_dir: str, identity: str) -> "FtsIndex":
        """Open (creating if needed) the full-text file of the mailbox C{identity}."""
        index = cls(index_path(index_dir, fts_identity(identity)))
        index._ensure()
        return index

    # -- reading ---------------------------------------------------------

    def begin_read(self) -> bool:
        """
        Start a read transaction: until L{end_read}, every read sees one
        state of the file, whatever other connections commit.  False when
        the file is unusable (reads then answer "nothing indexed").
        """
        conn = self._ensure()
        if conn is None:
            return False
        try:
            if conn.in_transaction:  # one left open by a failed search
                conn.execute("COMMIT")
            conn.execute("BEGIN")
            return True
        except sqlite3.Error as e:
            self._failed("read", e)
            return False

    def end_read(self) -> None:
        """End what L{begin_read} started."""
        conn = self._conn
        if conn is not None and conn.in_transaction:
            try:
                conn.execute("COMMIT")
            except sqlite3.Error as e:
                self._failed("read", e)

    def data_version(self) -> Optional[int]:
        """
        A number that changes whenever another connection commits to the
        file (C{PRAGMA data_version}); None when the file is unusable.
        With L{changes}, it tells a reader whether what it learnt from
        the file still holds.
        """
        conn = self._ensure()
        if conn is None:
            return None
        try:
            return conn.execute("PRAGMA data_version").fetchone()[0]
        except sqlite3.Error as e:
            self._failed("read", e)
            return None

    def documents(self, uidvalidity: int) -> dict[int, tuple[Optional[int], bool]]:
        """
        C{{uid: (size, complete)}} of the messages indexed under
        C{uidvalidity}; empty on any failure.  The caller must not change
        it: it is kept, and given again while the file has not changed
        (a warm SEARCH of 100,000 messages would otherwise spend most of
        its time reading this table, 266 ms).

        Kept for the whole process, by the file's generation (L{_bump}):
        every write through L{FtsIndex} moves it on, and a write in this
        process also brings the kept list up to date (L{_written}), so
        the list is read again only after another process wrote.
        """
        conn = self._ensure()
        if conn is None:
            return {}
        try:
            generation = self._generation(conn)
            with _known_lock:
                known = _known.get(self.path)
                if known is not None and known[0] == generation and known[1] == uidvalidity:
                    _known.move_to_end(self.path)
                    return known[2]
            docs = {uid: (size, bool(complete)) for uid, size, complete in conn.execute(
                "SELECT uid, size, complete FROM doc WHERE uidvalidity = ?", (uidvalidity,))}
            if generation is not None:
                _keep(self.path, (generation, uidvalidity, docs))
            return docs
        except sqlite3.Error as e:
            self._failed("read", e)
            return {}

    @staticmethod
    def _generation(conn: sqlite3.Connection) -> Optional[int]:
        row = conn.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
        return None if row is None else row[0]

    @classmethod
    def _bump(cls, conn: sqlite3.Connection) -> tuple[Optional[int], int]:
        """
        In a write transaction: move the file's generation on, and give
        C{(before, after)}.  A new file starts at a random number, so a
        file put in the place of another (deleted, moved aside as
        corrupt) never takes up the generation of its predecessor.
        """
        before = cls._generation(conn)
        after = random.getrandbits(62) if before is None else before + 1
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('generation', ?)",
                     (after,))
        return before, after

    def _written(self, uidvalidity: int, generations: tuple[Optional[int], int],
                 changed: dict) -> None:
        """
        After a committed write of C{uidvalidity}'s rows (C{changed}: uid
        -> new value, or None for a removed row) that moved the file from
        generation C{before} to C{after}: if the kept list is that of
        C{before}, keep it with the change as that of C{after}, instead of
        reading the whole table at the next search.  Rows of another
        UIDVALIDITY, which the write dropped, were not in it.  A new
        dict, not the old one changed: a search may hold the old one and
        what it computed from it (L{imapd.fts.query}).
        """
        before, after = generations
        with _known_lock:
            known = _known.get(self.path)
            if known is None or known[0] != before or known[1] != uidvalidity:
                return
            docs = dict(known[2])
        for uid, value in changed.items():
            if value is None:
                docs.pop(uid, None)
            else:
                docs[uid] = value
        _keep(self.path, (after, uidvalidity, docs))

    def match(self, columns: Iterable[str], needle: str) -> Optional[set[int]]:
        """
        The UIDs of documents with C{needle} in one of C{columns}, or None
        when the index cannot answer (a failure, or a needle of fewer than
        L{MIN_NEEDLE} characters).  Rows of another UIDVALIDITY may be
        among them until the next write drops them: the caller keeps only
        UIDs that L{documents} gave for its UIDVALIDITY.
        """
        if len(needle) < MIN_NEEDLE:
            return None
        cols = [c for c in columns if c in COLUMNS]
        if not cols:
            return None
        conn = self._ensure()
        if conn is None:
            return None
        # An FTS5 string: any characters, a double quote written twice.
        phrase = '"%s"' % needle.replace('"', '""')
        query = "{%s} : %s" % (" ".join(cols), phrase)
        try:
            return {uid for (uid,) in conn.execute(
                "SELECT rowid FROM text WHERE text MATCH ?", (query,))}
        except sqlite3.Error as e:
            self._failed("query", e)
            return None

    def stats(self) -> dict[str, int]:
        """Counts for C{imapd-admin fts status}: documents, incomplete ones, file bytes."""
        import os

        conn = self._ensure()
        out = {"documents": 0, "incomplete": 0, "bytes": 0}
        if conn is None:
            return out
        try:
            out["documents"], out["incomplete"] = conn.execute(
                "SELECT count(*), coalesce(sum(complete = 0), 0) FROM doc").fetchone()
        except sqlite3.Error as e:
            self._failed("read", e)
        for suffix in ("", "-wal"):
            try:
                out["bytes"] += os.stat(self.path + suffix).st_size
            except OSError:
                pass
        return out

    # -- writing ---------------------------------------------------------

    def add(self, uidvalidity: int, docs: Iterable[FtsDoc]) -> bool:
        """
        Index C{docs} in one transaction, replacing any earlier row of
        the same UID; every row of another UIDVALIDITY goes first (its
        UIDs name nothing any more).  False when the write failed (logged).
        """
        docs = list(docs)
        for attempt in (1, 2):
            conn = self._ensure()
            if conn is None:
                return False
            try:
                with _transaction(conn):
                    generations = self._bump(conn)
                    self._drop_other_uidvalidity(conn, uidvalidity)
                    uids = [(d.uid,) for d in docs]
                    conn.executemany("DELETE FROM text WHERE rowid = ?", uids)
                    conn.executemany(
                        "INSERT OR REPLACE INTO doc (uid, uidvalidity, size, complete)"
                        " VALUES (?, ?, ?, ?)",
                        [(d.uid, uidvalidity, d.size, d.texts is not None) for d in docs])
                    conn.executemany(
                        "INSERT INTO text (rowid, header, body, parts) VALUES (?, ?, ?, ?)",
                        [(d.uid, *d.texts) for d in docs if d.texts is not None])
                self._written(uidvalidity, generations,
                              {d.uid: (d.size, d.texts is not None) for d in docs})
                return True
            except sqlite3.Error as e:
                corrupt = self._is_corrupt(e)
                self._failed("write", e)
                if not corrupt:
                    return False
        return False

    def remove(self, uidvalidity: int, uids: Iterable[int]) -> None:
        """Forget C{uids} (expunged), and everything of another UIDVALIDITY."""
        gone = [(u,) for u in uids]
        conn = self._ensure()
        if conn is None:
            return
        try:
            with _transaction(conn):
                generations = self._bump(conn)
                self._drop_other_uidvalidity(conn, uidvalidity)
                for i in range(0, len(gone), _CHUNK):
                    chunk = gone[i:i + _CHUNK]
                    conn.executemany("DELETE FROM doc WHERE uid = ?", chunk)
                    conn.executemany("DELETE FROM text WHERE rowid = ?", chunk)
            self._written(uidvalidity, generations, dict.fromkeys(u for (u,) in gone))
        except sqlite3.Error as e:
            self._failed("write", e)

    def clear(self) -> None:
        """
        Forget everything (C{imapd-admin fts rebuild}): the tables are
        dropped and made again, not emptied, because deleting rows from
        an FTS5 table reads its inverted index, which is what a rebuild
        may be meant to replace.
        """
        conn = self._ensure()
        if conn is None:
            return
        try:
            with _transaction(conn):
                # The generation goes on from where it was (the meta
                # table is dropped too): a kept list never matches.
                _before, generation = self._bump(conn)
                for table in self.tables:
                    conn.execute("DROP TABLE IF EXISTS %s" % table)
                for statement in self.schema.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute("INSERT INTO meta (key, value) VALUES ('generation', ?)",
                             (generation,))
        except sqlite3.Error as e:
            self._failed("write", e)

    @staticmethod
    def _is_corrupt(error: sqlite3.Error) -> bool:
        from index.mailbox import _is_corrupt

        return _is_corrupt(error)

    @staticmethod
    def _drop_other_uidvalidity(conn: sqlite3.Connection, uidvalidity: int) -> None:
        # A UIDVALIDITY change (RFC 3501 section 2.3.1.1) drops the
        # mailbox's rows.  Cheap when there are none: the doc index finds
        # no row below or above.
        old = [(uid,) for (uid,) in conn.execute(
            "SELECT uid FROM doc WHERE uidvalidity < ? OR uidvalidity > ?",
            (uidvalidity, uidvalidity))]
        if old:
            conn.executemany("DELETE FROM doc WHERE uid = ?", old)
            conn.executemany("DELETE FROM text WHERE rowid = ?", old)


def _keep(path: str, entry: tuple) -> None:
    with _known_lock:
        _known[path] = entry
        _known.move_to_end(path)
        while len(_known) > _KNOWN_FILES:
            _known.popitem(last=False)
