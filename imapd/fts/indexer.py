# -*- test-case-name: tests.imapd.fts.test_fts_indexer -*-
"""
Keeping the full-text index current without slowing writes.

L{update_mailbox} (blocking, in the storage pool) brings one mailbox's
index in step with the store: rows of expunged UIDs and of an old
UIDVALIDITY go, messages without a row are read and indexed, a batch per
transaction.  Nothing else writes the index except a SEARCH that had to
read messages anyway (L{imapd.fts.query.FtsSearch.learn}).

Who asks for it, always after the command's tagged response is sent
(L{imapd.protocol.IMAPServerProtocol.after_answer}), never inside it:
APPEND and COPY/MOVE for their target, any command after which the
selected mailbox has UIDs the session had not seen (new mail found by a
sync: an MDA, another session, another process), a SEARCH that met
messages the index lacked (the rest of a cold mailbox), and LMTP after a
delivery.  L{schedule} waits for a pause in the mailbox's new mail
(L{QUIET}), then runs one job per mailbox at a time in a share of the
storage pool of its own (so indexing never waits in front of the user's
next command), and one more if asked again meanwhile.

In the multi-process server a user's sessions and deliveries live in one
mail worker, so that worker is the only writer of the user's index files;
several processes on one node would still be safe (SQLite WAL,
C{busy_timeout}), only slower.  A SIGKILL at any instant leaves the last
committed batch (L{index.fts}: the document list and the text change in
one transaction), and the next job or SEARCH indexes the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Hashable, Optional

from twisted.internet import defer
from twisted.logger import Logger

from index.fts import FtsDoc
from imapd.fts import DEFAULT, FtsSettings

__all__ = ["update_mailbox", "UpdateResult", "schedule", "index_later", "after_command",
           "BATCH"]

_log = Logger()

#: Messages per transaction: a SIGKILL loses at most one batch of work,
#: and a reader never waits long behind a writer.
BATCH = 200


@dataclass(frozen=True)
class UpdateResult:
    """What L{update_mailbox} did: messages indexed, rows removed, messages now in the index."""

    indexed: int
    removed: int
    documents: int


def update_mailbox(store, user: str, index_dir: str, name: str,
                   settings: FtsSettings = DEFAULT,
                   rebuild: bool = False) -> UpdateResult:
    """
    Blocking: bring the full-text index of mailbox C{name} in step with
    the store (see the module docstring).

    @param store: the user's store, or a function opening it (then it is
        closed again).
    @param rebuild: forget the mailbox's index first (C{imapd-admin fts
        rebuild}).
    """
    from imapd.cache import mailbox_identity
    from imapd.fts.extract import document
    from imapd.fts.query import fts_index
    from imapd.message import Message
    from storage.errors import MessageExpunged

    if callable(store):  # a store to open now, and close after
        opened = store()
        try:
            return update_mailbox(opened, user, index_dir, name, settings, rebuild)
        finally:
            opened.close()
    mailbox = store.open(name, readonly=True)
    try:
        snapshot = mailbox.sync()
        index = fts_index(index_dir, mailbox_identity(user, mailbox))
        if rebuild:
            index.clear()
        uidvalidity = snapshot.uidvalidity
        docs = index.documents(uidvalidity)
        live = {r.uid: r for r in snapshot.messages}
        gone = [uid for uid in docs if uid not in live]
        if gone:
            index.remove(uidvalidity, gone)
        missing = []
        for uid, record in live.items():
            row = docs.get(uid)
            known = record.known_size
            if row is None or (known is not None and row[0] is not None and row[0] != known):
                missing.append(uid)
        indexed = 0
        for start in range(0, len(missing), BATCH):
            batch = []
            for uid in missing[start:start + BATCH]:
                try:
                    size = live[uid].size
                    if size > settings.max_message_size:
                        # Recorded as not indexed, never read here: a
                        # search reads it (issue 18: no client-made
                        # message makes a background job hold it whole).
                        batch.append(FtsDoc(uid, size, None))
                        continue
                    raw = mailbox.read(uid)
                except MessageExpunged:
                    continue
                message = Message(raw)
                batch.append(FtsDoc(uid, len(message.raw),
                                    document(message, settings.max_part_size)))
            if batch and not index.add(uidvalidity, batch):
                break
            indexed += len(batch)
        return UpdateResult(indexed, len(gone), len(docs) - len(gone) + indexed)
    finally:
        mailbox.close()


#: Seconds without a new request before a mailbox is indexed, and the
#: longest a request waits for such a pause.  A burst of writes (a client
#: APPENDing a folder, a COPY of thousands, an MTA's queue run) is indexed
#: once it ends, in one job, instead of by one job per message that
#: competes with the writes for the process (measured with imapbench: 500
#: APPENDs took 30% to 200% longer with a job per APPEND).  Searches
#: meanwhile read what is not indexed yet, so nothing is ever wrong.
QUIET = 2.0
MAX_WAIT = 60.0


class _Pending:
    """One mailbox's indexing: its timer, or that it runs (and whether it is wanted again)."""

    def __init__(self, first: float) -> None:
        self.first = first
        self.timer = None
        self.running = False
        self.again = False


#: Mailboxes with a job waiting or running.
_pending: dict[Hashable, _Pending] = {}


def schedule(clock, pool, ident: Hashable, pool_key: Hashable, job: Callable) -> None:
    """
    Run C{job} (blocking) in the storage C{pool} under C{pool_key} once
    C{ident} (a mailbox) has had no new request for L{QUIET} seconds, or
    L{MAX_WAIT} after the first; while one runs, once more after it.
    Reactor thread.  Without a pool (unit tests) the job runs at once.
    """
    now = clock.seconds() if clock is not None else 0.0
    state = _pending.get(ident)
    if state is None:
        state = _pending[ident] = _Pending(now)
    if state.running:
        state.again = True
        return
    if pool is None:
        _start(clock, pool, ident, pool_key, job)
        return
    if state.timer is not None and state.timer.active():
        state.timer.cancel()
    delay = max(0.0, min(QUIET, state.first + MAX_WAIT - now))
    state.timer = clock.callLater(delay, _start, clock, pool, ident, pool_key, job)


def _start(clock, pool, ident: Hashable, pool_key: Hashable, job: Callable) -> None:
    state = _pending[ident]
    state.timer = None
    state.running = True
    state.again = False

    def failed(failure):
        _log.failure("full-text indexing of {ident} failed", failure, ident=ident)

    def done(_):
        state.running = False
        if state.again:
            state.first = clock.seconds() if clock is not None else 0.0
            schedule(clock, pool, ident, pool_key, job)
        else:
            del _pending[ident]

    if pool is None:
        d = defer.maybeDeferred(job)
    elif hasattr(pool, "per_key"):  # imapd.server.StoragePool
        d = pool.run(clock, pool_key, job)
    else:
        from twisted.internet.threads import deferToThreadPool

        d = deferToThreadPool(clock, pool, job)
    d.addErrback(failed).addBoth(done)


def index_later(clock, pool, store, user: str, index_dir: Optional[str], name: str,
                settings: Optional[FtsSettings]) -> None:
    """
    Ask for L{update_mailbox} of C{name} in the background (see
    L{schedule}); nothing when indexing is off.  Reactor thread.
    """
    settings = settings or DEFAULT
    if not settings.enabled or not index_dir:
        return
    # Its own share of the pool: the user's next command does not queue
    # behind indexing.
    def job():
        from storage.errors import MailboxNotFound

        try:
            return update_mailbox(store, user, index_dir, name, settings)
        except MailboxNotFound:  # deleted (or renamed) before its turn
            return None
    schedule(clock, pool, (index_dir, user, name), (user, "fts"), job)


def for_session(session, name: str) -> None:
    """L{index_later} for mailbox C{name} of C{session}'s account."""
    account = session.account
    if account is None:
        return
    index_later(session.clock, session.context.storage_pool, account.store, account.user,
                getattr(account, "index_dir", None), name, session.context.fts)


def after_command(session) -> None:
    """
    After a command's answer: bring the selected mailbox's index in step
    if its UIDs changed since the last look (new mail found by a sync,
    APPEND or COPY into it; expunged messages, whose rows go).  The first
    look, at SELECT, only takes note: what was there before is indexed by
    the first SEARCH that reads it.
    """
    view = session.selected
    if view is None:
        return
    uids = view.uids
    now = (uids[-1] if uids else 0, len(uids))
    seen = getattr(view, "fts_seen", None)
    view.fts_seen = now
    if seen is not None and now != seen:
        for_session(session, view.mailbox.name)
