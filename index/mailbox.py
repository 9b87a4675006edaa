# -*- test-case-name: tests.index.test_mailbox_index -*-
"""
L{MailboxIndex}: the per-node cache of parsed message data for one mailbox.

One SQLite database per mailbox, in WAL mode, under the node's index
directory.  The file name is the SHA-256 of an identity string the caller
chooses (user, mailbox name and location, say), so names never need
escaping and two mailboxes never share a file.

Rows are keyed by C{(uidvalidity, uid)}.  That key is what makes the cache
safe: RFC 3501 section 2.3.1.1 promises that the message a UID names under
one UIDVALIDITY never changes, so a row can be reused until the UID is
expunged or the UIDVALIDITY changes.  UIDs themselves never come from here
(DESIGN.md rule 1): the store hands them out, and this module only
remembers what was computed for them.  Beside the per-message columns
(L{FIELDS}), a second table keeps answers to section requests the caller
names by a string (a C{HEADER.FIELDS} list, say), so a client asking for
the same fields every time gets them without parsing the header again.

It is a cache (DESIGN.md rule 2), so nothing here raises to the caller:
  - a missing file is created empty;
  - a file SQLite cannot read (truncated, scribbled on, not a database) is
    logged, renamed aside to C{<name>.corrupt-<time>} and rebuilt empty;
  - a busy or failing database (another process holding the write lock
    past C{busy_timeout}, a full disk) is logged and the call answers
    "nothing cached" or drops the writes.

Several server processes on one node may share the directory: WAL lets
readers run beside one writer, C{busy_timeout} makes writers queue, and
each L{MailboxIndex.put_many} is one transaction.

This package imports nothing from C{storage} or C{imapd} (STYLE.md item 9).
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import time
from contextlib import contextmanager
from typing import Iterable, Mapping, Optional

from twisted.logger import Logger

__all__ = ["MailboxIndex", "FIELDS", "SEARCH_FIELDS", "index_path"]

_log = Logger()

#: Text columns for the header fields SEARCH names with keys of their own
#: (RFC 3501 section 6.4.4: BCC, CC, FROM, SUBJECT, TO), in whatever
#: searchable form the caller computes (this package does not interpret
#: them); NULL means "not computed yet".
SEARCH_FIELDS = ("search_from", "search_to", "search_cc", "search_bcc", "search_subject")

#: The cached columns: wire-encoded ENVELOPE, BODY (non-extended),
#: BODYSTRUCTURE (extended), the header block (BODY[HEADER]) as bytes, the
#: message size the store reported when the row was written (which lets a
#: reader check the row belongs to the message it expects; NULL when the
#: store had not computed it yet), and
#: L{SEARCH_FIELDS}, C{sortkeys}: the SORT and THREAD keys (RFC 5256) as
#: text in whatever form the caller chooses, and C{internaldate} (POSIX
#: time) as the store reported it, and C{preview}, the RFC 8970 PREVIEW
#: text.
FIELDS = ("envelope", "body", "bodystructure", "header", "size") + SEARCH_FIELDS + (
    "sortkeys", "internaldate", "preview")

#: Bumped whenever the table layout or the meaning of a column changes; a
#: file with another version is rebuilt (it is only a cache).  6: the
#: address search columns hold each address in every form; the preview
#: column (RFC 8970 PREVIEW text).
SCHEMA_VERSION = 6

#: Milliseconds a writer waits for another process's transaction.  Long
#: enough for one FETCH batch elsewhere, short enough that a stuck peer
#: costs a cache miss, not a hung command.
BUSY_TIMEOUT_MS = 5000

#: Seconds to work uncached after the database could not be opened.
RETRY_AFTER = 30.0

#: Seconds between touches of a database file in use, which keep its
#: modification time a "last used" time for L{index.cleanup.sweep} even
#: when it is only read.
TOUCH_INTERVAL = 3600.0

#: Host parameters per statement: SQLite before 3.32 allowed only 999.
_CHUNK = 900

_SCHEMA = """
CREATE TABLE IF NOT EXISTS message (
    uid INTEGER PRIMARY KEY,
    uidvalidity INTEGER NOT NULL,
    size INTEGER,
    internaldate REAL,
    search_from TEXT,
    search_to TEXT,
    search_cc TEXT,
    search_bcc TEXT,
    search_subject TEXT,
    sortkeys TEXT,
    preview TEXT,
    envelope BLOB,
    body BLOB,
    bodystructure BLOB,
    header BLOB
);
CREATE INDEX IF NOT EXISTS message_uidvalidity ON message (uidvalidity);
CREATE TABLE IF NOT EXISTS section (
    uidvalidity INTEGER NOT NULL,
    uid INTEGER NOT NULL,
    spec TEXT NOT NULL,
    size INTEGER,
    data BLOB NOT NULL,
    PRIMARY KEY (uidvalidity, uid, spec)
) WITHOUT ROWID;
"""

# Why "message" is keyed by the UID alone, as a rowid table: its rows are
# a few kB (header block, ENVELOPE, BODYSTRUCTURE), and a WITHOUT ROWID
# table keeps only about 1 kB of a row in its b-tree, so every read of a
# column behind the blobs followed overflow pages (a warm SEARCH FROM of
# 10,000 messages spent 60 ms in SQLite; as a rowid table, 11 ms).  One
# database holds one UIDVALIDITY at a time (L{_drop_other_uidvalidity}
# runs before every write), so the UID is unique; the uidvalidity column
# and its index still let every read check it and a change wipe cheaply.
# Small columns come first so that they sit in the row's first page.


def index_path(index_dir: str, identity: str) -> str:
    """
    The database file for a mailbox: C{<index_dir>/<sha256(identity)>.db}.
    """
    digest = hashlib.sha256(identity.encode("utf-8", "surrogateescape")).hexdigest()
    return os.path.join(index_dir, digest + ".db")


def _is_corrupt(error: sqlite3.Error) -> bool:
    # Only "file is not a database" and "database disk image is
    # malformed" mean the content is unusable.  "database is locked", I/O
    # errors and "unable to open" leave a file that may be fine, and a
    # ProgrammingError is our bug: none of those moves the file aside.
    name = getattr(error, "sqlite_errorname", None) or ""
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
        return True
    return type(error) is sqlite3.DatabaseError


@contextmanager
def _transaction(conn: sqlite3.Connection):
    # BEGIN IMMEDIATE takes the write lock up front, so two writers queue
    # on busy_timeout instead of one failing at its first write.
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if conn.in_transaction:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
        raise
    conn.execute("COMMIT")


def _drop_other_uidvalidity(conn: sqlite3.Connection, uidvalidity: int) -> None:
    # Two ranges rather than "!=", so SQLite walks the uidvalidity index
    # (message) or the primary key (section) instead of scanning the table
    # at every batch.
    for table in ("message", "section"):
        conn.execute("DELETE FROM %s WHERE uidvalidity < ? OR uidvalidity > ?" % table,
                     (uidvalidity, uidvalidity))


class MailboxIndex:
    """
    An open cache database for one mailbox.

    Not shared between threads: SQLite connections belong to the thread
    that made them, so callers keep one per thread (or open one per
    batch).

    @ivar path: the database file.
    """

    #: The tables, their layout and its version; a subclass keeping other
    #: data in a file of its own (L{index.fts.FtsIndex}) names its own,
    #: and inherits the opening, corruption and retry rules.
    tables: tuple[str, ...] = ("message", "section")
    schema: str = _SCHEMA
    schema_version: int = SCHEMA_VERSION

    def __init__(self, path: str) -> None:
        self.path = path
        self._conn: Optional[sqlite3.Connection] = None
        self._ident: Optional[tuple[int, int]] = None
        self._retry_at = 0.0
        self._touched = float("-inf")

    # -- opening ---------------------------------------------------------

    @classmethod
    def open(cls, index_dir: str, identity: str) -> "MailboxIndex":
        """
        Open (creating if needed) the database for C{identity}.  Never
        raises: on failure the object answers "nothing cached" and retries
        the open at the next call.
        """
        index = cls(index_path(index_dir, identity))
        index._ensure()
        return index

    def _connect(self) -> sqlite3.Connection:
        """
        Open and set up the file, retrying while another process holds it
        locked: two processes creating one index at once both reach
        C{journal_mode=WAL}, which takes an exclusive lock SQLite does not
        always wait for, and a refused open would cost that process its
        cache for L{RETRY_AFTER} seconds.
        """
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        delay = 0.01
        while True:
            try:
                return self._connect_once()
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) and "busy" not in str(e):
                    raise
                if time.monotonic() + delay > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 0.2)

    def _connect_once(self) -> sqlite3.Connection:
        os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
        # The rows hold users' mail headers: create the file private
        # (SQLite would use 0644); its -wal and -shm files take this mode.
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000,
                               isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA busy_timeout=%d" % BUSY_TIMEOUT_MS)
            conn.execute("PRAGMA journal_mode=WAL")
            # A cache need not survive a power cut: NORMAL skips the fsync
            # per commit that WAL would otherwise do.
            conn.execute("PRAGMA synchronous=NORMAL")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version != self.schema_version:
                with _transaction(conn):
                    # Checked again under the write lock: another process
                    # may have built the table meanwhile.
                    version = conn.execute("PRAGMA user_version").fetchone()[0]
                    if version != self.schema_version:
                        for table in self.tables:
                            conn.execute("DROP TABLE IF EXISTS %s" % table)
                        for statement in self.schema.split(";"):
                            if statement.strip():
                                conn.execute(statement)
                        conn.execute("PRAGMA user_version=%d" % self.schema_version)
        except BaseException:
            conn.close()
            raise
        return conn

    def _file_ident(self) -> Optional[tuple[int, int]]:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_dev, st.st_ino)

    def _ensure(self) -> Optional[sqlite3.Connection]:
        """
        The connection, (re)opened if the file was removed or replaced
        since (another process moved a corrupt file aside, or an admin
        deleted the directory): writes to an unlinked file would be lost.
        """
        ident = self._file_ident()
        if self._conn is not None and ident == self._ident:
            self._touch()
            return self._conn
        self._drop()
        if time.monotonic() < self._retry_at:
            return None
        for attempt in (1, 2):
            try:
                self._conn = self._connect()
            except (sqlite3.Error, OSError) as e:
                if attempt == 1 and isinstance(e, sqlite3.Error) and _is_corrupt(e):
                    self._move_aside(e)
                    continue
                # Without the back-off, an unwritable directory would log
                # once per FETCH batch.
                self._retry_at = time.monotonic() + RETRY_AFTER
                _log.warn("index {path}: cannot open: {error}; uncached for {delay}s",
                          path=self.path, error=e, delay=RETRY_AFTER)
                return None
            self._ident = self._file_ident()
            self._touched = float("-inf")
            self._touch()
            return self._conn
        return None

    def _touch(self) -> None:
        now = time.monotonic()
        if now - self._touched < TOUCH_INTERVAL:
            return
        self._touched = now
        try:
            os.utime(self.path)
        except OSError:
            pass

    def _drop(self) -> None:
        conn, self._conn, self._ident = self._conn, None, None
        if conn is not None:
            try:
                conn.close()
            except sqlite3.Error:
                pass

    def _move_aside(self, error: Exception) -> None:
        self._drop()
        aside = "%s.corrupt-%d" % (self.path, int(time.time()))
        _log.error("index {path}: unreadable ({error}); moved to {aside} and rebuilt",
                   path=self.path, error=error, aside=aside)
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            pass
        except OSError as e:
            _log.error("index {path}: cannot move aside: {error}", path=self.path, error=e)
            try:
                os.unlink(self.path)
            except OSError:
                pass
        # The WAL and shared-memory files belong to the old database; a
        # new one must not inherit them.
        for suffix in ("-wal", "-shm"):
            try:
                os.rename(self.path + suffix, aside + suffix)
            except OSError:
                pass

    def _failed(self, what: str, error: sqlite3.Error) -> None:
        if _is_corrupt(error):
            self._move_aside(error)
        else:
            _log.warn("index {path}: {what} failed: {error}", path=self.path,
                      what=what, error=error)
            self._drop()

    def close(self) -> None:
        """Close the connection; the object may be used again after."""
        self._drop()

    # -- reading ---------------------------------------------------------

    def get_many(self, uidvalidity: int, uids: Iterable[int],
                 fields: Iterable[str] = FIELDS) -> dict[int, dict]:
        """
        The cached rows for C{uids} under C{uidvalidity}.

        @param fields: the columns wanted, among L{FIELDS}.
        @return: C{{uid: {field: value}}} for the UIDs that have a row;
            a column never written is C{None}.  Empty on any failure.
        """
        cols = [f for f in fields if f in FIELDS]
        uids = list(uids)
        if not cols or not uids:
            return {}
        conn = self._ensure()
        if conn is None:
            return {}
        select = ", ".join(cols)
        out: dict[int, dict] = {}
        try:
            for i in range(0, len(uids), _CHUNK):
                chunk = uids[i:i + _CHUNK]
                rows = conn.execute(
                    # "+uidvalidity": look rows up by UID (the rowid), and
                    # only check the UIDVALIDITY, not walk its index.
                    "SELECT uid, %s FROM message WHERE uid IN (%s) AND +uidvalidity = ?"
                    % (select, ",".join("?" * len(chunk))),
                    [*chunk, uidvalidity])
                for row in rows:
                    out[row[0]] = dict(zip(cols, row[1:]))
        except sqlite3.Error as e:
            self._failed("read", e)
            return {}
        return out

    def get_sections(self, uidvalidity: int, uids: Iterable[int],
                     spec: str) -> dict[int, tuple[Optional[int], bytes]]:
        """
        Cached answers to one section request (C{spec} is the caller's
        canonical text for it, such as the field list of a
        C{HEADER.FIELDS}) for C{uids}.

        @return: C{{uid: (size, data)}}, C{size} being the message size
            given when the answer was stored.  Empty on any failure.
        """
        uids = list(uids)
        if not uids:
            return {}
        conn = self._ensure()
        if conn is None:
            return {}
        out: dict[int, tuple[Optional[int], bytes]] = {}
        try:
            for i in range(0, len(uids), _CHUNK):
                chunk = uids[i:i + _CHUNK]
                rows = conn.execute(
                    "SELECT uid, size, data FROM section WHERE uidvalidity = ? AND spec = ?"
                    " AND uid IN (%s)" % ",".join("?" * len(chunk)),
                    [uidvalidity, spec, *chunk])
                for uid, size, data in rows:
                    out[uid] = (size, data)
        except sqlite3.Error as e:
            self._failed("read", e)
            return {}
        return out

    # -- writing ---------------------------------------------------------

    def put_many(self, uidvalidity: int, rows: Mapping[int, Mapping[str, object]]) -> None:
        """
        Store computed columns, one transaction for all C{rows}
        (C{{uid: {field: value}}}).  Columns a row leaves out keep what the
        table had, unless the row's C{size} differs from the stored one:
        then the whole row is replaced.  A row may also carry
        C{"sections": {spec: data}}, answers for L{get_sections}, stored
        with the row's size.  Rows of another UIDVALIDITY are dropped
        first: once the store has a new one, the old UIDs name nothing.  Failures are
        logged and the rows dropped.
        """
        if not rows:
            return
        params = []
        sections = []
        for uid, row in rows.items():
            params.append((uidvalidity, uid, *(row.get(f) for f in FIELDS)))
            for spec, data in (row.get("sections") or {}).items():
                sections.append((uidvalidity, uid, spec, row.get("size"), data))
        # COALESCE keeps the columns this batch did not compute, as long
        # as the row describes a message of the same size; a row with
        # another size belonged to some other message (a mailbox deleted
        # and recreated with the same UIDVALIDITY) and is replaced whole.
        sets = ["%s = CASE WHEN excluded.size IS NULL OR size IS excluded.size "
                "THEN COALESCE(excluded.%s, %s) ELSE excluded.%s END" % (f, f, f, f)
                for f in FIELDS if f != "size"]
        sets.append("size = COALESCE(excluded.size, size)")
        sql = (
            "INSERT INTO message (uidvalidity, uid, %s) VALUES (?, ?, %s) "
            "ON CONFLICT (uid) DO UPDATE SET %s"
            % (", ".join(FIELDS), ", ".join("?" * len(FIELDS)), ", ".join(sets)))
        for attempt in (1, 2):
            conn = self._ensure()
            if conn is None:
                return
            try:
                with _transaction(conn):
                    _drop_other_uidvalidity(conn, uidvalidity)
                    conn.executemany(sql, params)
                    conn.executemany(
                        "INSERT OR REPLACE INTO section (uidvalidity, uid, spec, size, data)"
                        " VALUES (?, ?, ?, ?, ?)", sections)
                return
            except sqlite3.Error as e:
                corrupt = _is_corrupt(e)
                self._failed("write", e)
                if not corrupt:
                    return
                # Moved aside: the retry writes into the rebuilt file.

    def prune(self, uidvalidity: int, live_uids: Iterable[int]) -> None:
        """
        Forget expunged messages: drop every row of another UIDVALIDITY
        and every UID not in C{live_uids}.  Failures are logged.
        """
        live = set(live_uids)
        conn = self._ensure()
        if conn is None:
            return
        try:
            with _transaction(conn):
                _drop_other_uidvalidity(conn, uidvalidity)
                gone = [(uidvalidity, uid) for (uid,) in conn.execute(
                    "SELECT uid FROM message WHERE uidvalidity = ?", (uidvalidity,))
                    if uid not in live]
                conn.executemany(
                    "DELETE FROM message WHERE uidvalidity = ? AND uid = ?", gone)
                conn.executemany(
                    "DELETE FROM section WHERE uidvalidity = ? AND uid = ?", gone)
        except sqlite3.Error as e:
            self._failed("prune", e)
