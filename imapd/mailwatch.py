# -*- test-case-name: tests.delivery.test_mailwatch -*-
"""
Waking IDLE sessions when their mailbox changes, instead of waiting for
the next poll (C{limits.idle_poll_interval}).

Two sources, both only hints (DESIGN.md: the store is the only truth, so
a woken session re-syncs against the store, and the poll stays the
safety net for what neither source sees, such as another node's writes
on NFS):

 - in-process notices: a delivery by this process's LMTP calls
   L{MailWatcher.changed} with the user's name;
 - inotify (L{twisted.internet.inotify}, Linux): the files a mailbox's
   changes show in (a Maildir's C{new/} and C{cur/}, an mbox file and its
   directory), which also catches the LDA, other server processes and
   mail programs on this machine.  Not on NFS or other shared storage
   (its events are this client's only, and a path lookup there may hang
   the reactor), and not where inotify is missing.

Wake-ups are coalesced over L{MailWatcher.SETTLE} seconds: a delivery is
several file events (a temporary file, its rename, the uidlist), and one
re-sync after the last is enough.
"""

from __future__ import annotations

import os
from typing import Callable, Optional

from twisted.logger import Logger

__all__ = ["MailWatcher", "watcher_for", "watch_paths"]

_log = Logger(namespace="imapd.mailwatch")


def watch_paths(mailbox) -> tuple[list[str], list[str]]:
    """
    Blocking (it may stat shared storage): C{(directories, files)} whose
    changes mean C{mailbox} changed (any entry of a directory; a file's
    content, or the file replaced in its directory), or nothing when
    inotify would not see them (NFS).
    """
    from storage.nfs import storage_flush

    directory = getattr(mailbox, "directory", None)
    path = getattr(mailbox, "path", None)
    if directory is not None:  # Maildir
        if storage_flush(directory):
            return [], []
        return [os.path.join(directory, "new"), os.path.join(directory, "cur")], []
    if path is not None:  # mbox
        if storage_flush(path):
            return [], []
        return [], [path]
    return [], []


class _Subscription:
    def __init__(self, watcher: "MailWatcher", user: str, callback: Callable[[], None]) -> None:
        self.watcher = watcher
        self.user = user
        self.callback = callback
        self.dirs: tuple[str, ...] = ()
        self.files: tuple[str, ...] = ()
        self._call = None

    def poke(self) -> None:
        """A change: wake the subscriber once things settle."""
        if self._call is None or not self._call.active():
            self._call = self.watcher.reactor.callLater(self.watcher.SETTLE, self.callback)

    def cancel(self) -> None:
        if self._call is not None and self._call.active():
            self._call.cancel()
        self.watcher._remove(self)


class MailWatcher:
    """
    The sessions of this process waiting for changes (see the module
    docstring).  Runs on the reactor thread.

    @param reactor: a real reactor for inotify; with a L{task.Clock}
        (unit tests) only in-process notices work.
    """

    #: Seconds to let a burst of file events settle before waking.
    SETTLE = 0.02
    #: inotify events that mean a message came, went or changed.
    _DIR_EVENTS = ("IN_CREATE", "IN_MOVED_TO", "IN_MOVED_FROM", "IN_DELETE")
    _FILE_EVENTS = ("IN_MODIFY", "IN_CLOSE_WRITE", "IN_ATTRIB")

    def __init__(self, reactor) -> None:
        self.reactor = reactor
        self._by_user: dict[str, set[_Subscription]] = {}
        #: directory -> subscriptions woken by any change of its entries
        self._dir_subs: dict[str, set[_Subscription]] = {}
        #: file -> subscriptions woken by its changes (or its replacement)
        self._file_subs: dict[str, set[_Subscription]] = {}
        #: watched path -> how many of the above need it
        self._watched: dict[str, int] = {}
        self._inotify = None
        self._inotify_failed = False

    def subscribe(self, user: str, callback: Callable[[], None], dirs=(),
                  files=()) -> _Subscription:
        """
        Call C{callback} (soon, once) after each change to C{user}'s mail
        made by this process, or seen by inotify in C{dirs} or C{files}
        (L{watch_paths}), until the returned subscription is cancelled.
        """
        sub = _Subscription(self, user, callback)
        self._by_user.setdefault(user, set()).add(sub)
        sub.dirs = tuple(d for d in dirs if self._hold(d, self._DIR_EVENTS))
        # A file is watched itself (appends) and in its directory (a
        # rewrite that renames a new file over it).
        sub.files = tuple(f for f in files if self._hold(f, self._FILE_EVENTS))
        for path in sub.files:
            self._hold(os.path.dirname(path), self._DIR_EVENTS)
        for table, paths in ((self._dir_subs, sub.dirs), (self._file_subs, sub.files)):
            for path in paths:
                table.setdefault(path, set()).add(sub)
        return sub

    def changed(self, user: str) -> None:
        """This process changed C{user}'s mail (a delivery)."""
        for sub in list(self._by_user.get(user, ())):
            sub.poke()

    def _remove(self, sub: _Subscription) -> None:
        subs = self._by_user.get(sub.user)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._by_user[sub.user]
        for table, paths in ((self._dir_subs, sub.dirs), (self._file_subs, sub.files)):
            for path in paths:
                subs = table.get(path)
                if subs is not None:
                    subs.discard(sub)
                    if not subs:
                        del table[path]
                self._release(path)
        for path in sub.files:
            self._release(os.path.dirname(path))

    # -- inotify -------------------------------------------------------------

    def _notifier(self):
        if self._inotify is None and not self._inotify_failed:
            from twisted.internet.interfaces import IReactorFDSet

            if not IReactorFDSet.providedBy(self.reactor):
                self._inotify_failed = True
                return None
            try:
                from twisted.internet import inotify

                notifier = inotify.INotify(self.reactor)
                notifier.startReading()
                self._inotify = notifier
            except Exception as e:  # no inotify here (not Linux, no instances left)
                self._inotify_failed = True
                _log.info("No inotify ({error}): IDLE sees other processes' deliveries at "
                          "its poll", error=str(e))
        return self._inotify

    def _hold(self, path: str, events) -> bool:
        """Watch C{path} (once for all holders); False if it cannot be."""
        if path in self._watched:
            self._watched[path] += 1
            return True
        notifier = self._notifier()
        if notifier is None:
            return False
        from twisted.internet import inotify
        from twisted.python.filepath import FilePath

        mask = 0
        for name in events:
            mask |= getattr(inotify, name)
        try:
            notifier.watch(FilePath(path), mask, callbacks=[self._event])
        except Exception as e:
            _log.debug("Cannot watch {path}: {error}", path=path, error=str(e))
            return False
        self._watched[path] = 1
        return True

    def _release(self, path: str) -> None:
        left = self._watched.get(path, 0) - 1
        if left > 0:
            self._watched[path] = left
            return
        self._watched.pop(path, None)
        if self._inotify is not None:
            from twisted.python.filepath import FilePath

            try:
                self._inotify.ignore(FilePath(path))
            except KeyError:
                pass  # gone with its inode (deleted or replaced)

    def _event(self, _ignored, filepath, mask) -> None:
        path = filepath.path
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        # A directory's event names the entry: wake the directory's
        # subscribers, and those of that entry if it is a watched file
        # (replaced by a rename).  A file's own event names the file.
        woken = set(self._dir_subs.get(os.path.dirname(path), ()))
        woken |= self._file_subs.get(path, set())
        for sub in woken:
            sub.poke()


_WATCHERS: dict[int, MailWatcher] = {}


def watcher_for(reactor) -> MailWatcher:
    """The process's one L{MailWatcher} for C{reactor} (one inotify descriptor)."""
    watcher = _WATCHERS.get(id(reactor))
    if watcher is None or watcher.reactor is not reactor:
        watcher = _WATCHERS[id(reactor)] = MailWatcher(reactor)
    return watcher
