# -*- test-case-name: tests.locking.test_dotlock -*-
"""
The NFS-safe dotlock: C{NAME.lock} beside C{NAME}.

Protocol (the one procmail, mutt, UW-IMAP and Dovecot agree on, written
here from the description, not from their code):

  1. Create a file with a unique name in the lock's directory (host name,
     pid, time and random bytes in the name) holding C{"hostname pid\\n"}.
  2. C{link()} it to C{NAME.lock} and B{ignore} the result: over NFS a
     retransmitted LINK whose first reply was lost fails with EEXIST although
     it succeeded, and a failed one may look like a success.
  3. C{stat()} the unique file: we own the lock if and only if its link count
     is now 2.  Then remove the unique file.

C{O_EXCL} is never relied upon (it was not atomic over NFSv2 and still is
not on some servers); the unique file is created without it, its name alone
makes it ours.  Nothing is C{mmap}ed.

Staleness is judged without the local clock.  The unique file we have just
written doubles as the probe: its mtime is the file server's "now", and a
lock is stale when that is more than C{stale_age} seconds (traditionally
five minutes) after the lock file's mtime.  A lock naming this host and a
pid that no longer runs is stale at once.  Holders that keep a lock for long
call L{DotLock.refresh} (or set C{refresh_interval} for a background thread)
so they never look stale while alive.

In a spool directory the user may not write (Debian's 2775 C{root:mail}
C{/var/mail}), a process that has a privileged group as its saved gid
(C{[service] mail_privileged_group}, L{locking.privgroup}) takes it as its
effective gid only around the calls that create or remove entries of the
directory: after a first attempt was refused, for the rest of that lock's
life.

Every call here blocks (it sleeps between retries and NFS may hang): the
server calls it from a thread pool (C{deferToThreadPool}), never from the
reactor thread.
"""

from __future__ import annotations

import errno
import os
import secrets
import socket
import stat
import threading
import time
import warnings
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from typing import Any

from twisted.logger import Logger
from zope.interface import implementer

from locking import privgroup
from locking._retry import Backoff
from locking.errors import CannotLock, LockError, LockLost, LockTimeout
from locking.interfaces import ILock

_log = Logger(namespace="locking.dotlock")

# Errors that mean "this process may never create files there": the
# directory's permissions or a read-only mount.  Retrying cannot help.
_PERMISSION_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS})
# Errors that mean the file system is full for us; the lock cannot be created
# now, and the message should say why rather than time out.
_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})

# A break-lock is held only for a stat, a rename and an unlink, so a
# break-lock older than this is left by a crashed breaker.
_BREAK_LOCK_STALE_AGE = 30.0


@dataclass(frozen=True)
class DotlockSettings:
    """
    How a L{DotLock} behaves.  Frozen: one settings object is shared by every
    lock of a store.
    """

    # Appended to the protected path to name the lock file.  ".lock" is what
    # every other mail program (MTAs' local delivery, mutt, pine) uses for
    # mbox files; changing it means they no longer exclude us.
    lock_suffix: str = ".lock"

    # Default seconds acquire() waits (also used by ``with lock:``).  Long
    # enough to outlast a normal mbox rewrite by another program.
    timeout: float = 30.0

    # Seconds after its last modification (by the file server's clock) after
    # which a lock whose holder cannot be checked is presumed dead: the
    # traditional five-minute rule of mail programs.
    stale_age: float = 300.0

    # Permission bits of the lock file.  Other tools only need it to exist;
    # 0600 avoids exposing host names and pids.  Use 0660 when a group of
    # programs must be able to inspect it.
    mode: int = 0o600

    # When set, a background thread touches the lock every this many seconds
    # while it is held, for long holds that cannot call refresh() themselves.
    # Must be well below stale_age.  None: no thread (most holds are brief).
    refresh_interval: float | None = None

    # First and largest pause between attempts (seconds), doubled with jitter
    # in between: short first pauses keep brief holds cheap, the cap keeps a
    # crowd of waiters from hammering the file server.
    retry_min: float = 0.001
    retry_max: float = 0.2

    # Written into the lock file and compared when judging staleness: a lock
    # naming this host can be checked by pid.  Overridable so that tests can
    # pretend to be another node.
    hostname: str = field(default_factory=socket.gethostname)


@dataclass(frozen=True)
class _Observation:
    """
    What we saw of somebody else's lock file.

    @ivar stat: its C{lstat()}.
    @ivar holder: its content (stripped), or C{None} if unreadable.
    @ivar age: server-clock seconds since its mtime.
    @ivar stale: why it is stale, or C{None} if it is not.
    """

    stat: os.stat_result
    holder: str | None
    age: float
    stale: str | None


def _identity(st: os.stat_result) -> tuple[int, int, int, int]:
    """
    @return: what tells one lock file from another: device and inode, plus
        the mtime because freed inode numbers are reused at once, plus the
        size because a file rewritten in place within one tick of a coarse
        file clock keeps all three.
    """
    return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)


def _describe_directory(directory: str) -> str:
    """
    @return: C{directory} with its mode and owner, for error messages.
    """
    try:
        st = os.stat(directory)
    except OSError as e:
        return f"{directory} ({e.strerror})"
    owner: Any = st.st_uid
    group: Any = st.st_gid
    try:
        import grp
        import pwd

        owner = pwd.getpwuid(st.st_uid).pw_name
        group = grp.getgrgid(st.st_gid).gr_name
    except (ImportError, KeyError):
        pass
    return f"{directory} (mode {stat.S_IMODE(st.st_mode):04o}, owner {owner}:{group})"


@implementer(ILock)
class DotLock:
    """
    An exclusive dotlock protecting C{path}; the lock file is C{path +
    settings.lock_suffix}.  Not reentrant; one object per holder.

    @ivar path: the protected path.
    @ivar lock_path: the lock file's path.
    @ivar settings: the L{DotlockSettings}.
    @ivar lost: C{True} once we noticed that our lock file was removed or
        replaced by somebody else.
    """

    def __init__(
        self,
        path: str,
        settings: DotlockSettings | None = None,
        *,
        _os: Any = None,
        _level: int = 0,
    ) -> None:
        """
        @param _os: a stand-in for the L{os} module (tests inject faults
            through it).
        @param _level: 0 for a real lock, 1 for the break-lock that
            serializes breakers of a stale lock.
        """
        self.path = path
        self.settings = settings if settings is not None else DotlockSettings()
        self.lock_path = path + self.settings.lock_suffix
        self._dir = os.path.dirname(os.path.abspath(self.lock_path))
        self._os = _os if _os is not None else os
        self._level = _level
        self._log = _log
        # (st_dev, st_ino, st_mtime_ns) of the lock file while we hold it,
        # and the random token written into it: how we tell our lock from one
        # that replaced it (see _is_ours).
        self._ident: tuple[int, int, int, int] | None = None
        self._token = ""
        # Serializes refresh (maybe from the refresher thread) with release.
        self._mutex = threading.Lock()
        self._refresher: _Refresher | None = None
        # The process that took the lock: a forked child inherits this
        # object but must never remove its parent's lock.
        self._pid = 0
        self.lost = False
        # Whether the directory needs the privileged group (learnt from a
        # refused attempt; see locking.privgroup).
        self._privileged = False

    def __repr__(self) -> str:
        return f"<DotLock {self.lock_path!r} held={self.held}>"

    @property
    def held(self) -> bool:
        """
        C{True} while we hold the lock.
        """
        return self._ident is not None

    @property
    def server_time(self) -> float | None:
        """
        While held: the lock file's mtime in seconds, that is the file
        server's clock when we took (or last refreshed) the lock.  What
        is read under the lock was read no earlier than this; comparing
        it with the protected file's times needs no local clock, which
        may be seconds off the server's.  C{None} when not held.
        """
        return None if self._ident is None else self._ident[2] / 1e9

    # -- ILock ---------------------------------------------------------------

    def acquire(self, timeout: float | None = None) -> None:
        """
        Take the lock, retrying with exponential backoff and jitter.  Blocks;
        call it from a thread pool.

        @param timeout: seconds; C{None} means C{settings.timeout}, C{0} a
            single attempt.
        @raises LockTimeout: the lock stayed held; the error names the holder
            and the lock's age by the file server's clock.
        @raises CannotLock: the directory is not writable for us.
        @raises LockError: another failure (e.g. no space left); no lock file
            of ours is left behind.
        """
        if self.held:
            raise LockError(f"{self.lock_path} is already held by this object",
                            self.path)
        if timeout is None:
            timeout = self.settings.timeout
        backoff = Backoff(timeout, self.settings.retry_min, self.settings.retry_max)
        last: _Observation | None = None
        while True:
            owned, probe = self._attempt_as_needed()
            if owned:
                self.lost = False
                self._pid = os.getpid()
                if self.settings.refresh_interval and self._level == 0:
                    self._refresher = _Refresher(self, self.settings.refresh_interval)
                    self._refresher.start()
                return
            seen = self._observe(probe)
            if seen is not None:
                last = seen
                if seen.stale is not None and self._break(seen, backoff):
                    # Retry at once: the lock file is gone.
                    continue
            elif backoff.remaining() > 0:
                # Released between our link() and our look: retry at once.
                continue
            if not backoff.sleep():
                raise self._timeout(last, backoff.waited())

    def release(self) -> None:
        """
        Remove our lock file.  If it was removed or replaced meanwhile, log
        that and warn with L{LockLost}, but do not raise and do not remove
        the other lock.  In a forked child the inherited lock is only
        forgotten: it belongs to the parent.
        """
        refresher, self._refresher = self._refresher, None
        if refresher is not None:
            refresher.stop()
        with self._mutex:
            ident, self._ident = self._ident, None
            if ident is None or self._pid != os.getpid():
                # Not held, or held by the process we were forked from.
                return
            try:
                st = self._os.lstat(self.lock_path)
            except FileNotFoundError:
                self._lost("removed")
                return
            except OSError as e:
                self._log.warn("Cannot check lock {lock} before removing it: {err}",
                               lock=self.lock_path, err=e)
                return
            if not self._is_ours(st, ident):
                # Someone broke our lock and another holder took it: removing
                # it would release *their* lock.
                self._lost("replaced")
                return
            try:
                with self._directory_writes():
                    self._os.unlink(self.lock_path)
            except FileNotFoundError:
                self._lost("removed")
            except OSError as e:
                self._log.warn("Cannot remove lock {lock}: {err}",
                               lock=self.lock_path, err=e)

    def refresh(self) -> None:
        """
        Touch the lock file so it never looks stale while we are alive.

        @raises LockLost: the lock file was removed or replaced.
        @raises LockError: we do not hold the lock.
        """
        with self._mutex:
            if self._ident is None:
                raise LockError(f"{self.lock_path} is not held", self.path)
            self._touch()

    def __enter__(self) -> DotLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    # -- one attempt -----------------------------------------------------------

    def _directory_writes(self):
        """
        A context for calls that create or remove entries of the lock's
        directory: the privileged group held if this directory needs it.
        """
        return privgroup.held() if self._privileged else nullcontext()

    def _attempt_as_needed(self) -> tuple[bool, os.stat_result]:
        """
        L{_attempt}, under the privileged group if the directory refuses
        us without it and we have one.
        """
        if not self._privileged:
            try:
                return self._attempt()
            except CannotLock as e:
                cause = e.__cause__
                if (not isinstance(cause, OSError)
                        or cause.errno not in (errno.EACCES, errno.EPERM)
                        or privgroup.available() is None):
                    raise
                self._privileged = True
                self._log.debug("Dotlocking in {dir} with the privileged group",
                                dir=self._dir)
        with privgroup.held():
            return self._attempt()

    def _attempt(self) -> tuple[bool, os.stat_result]:
        """
        One round of create unique file, link, count links, remove.

        @return: whether we now own the lock, and the unique file's stat,
            whose mtime is the file server's clock at creation (the probe
            staleness is judged against).
        """
        o = self._os
        token = secrets.token_hex(6)
        unique = self._unique_name(token)
        self._create_unique(unique, token)
        try:
            link_error: OSError | None = None
            try:
                o.link(unique, self.lock_path)
            except OSError as e:
                # Ignored on purpose (see the module docstring): only the
                # link count says whether the link happened.
                link_error = e
            try:
                st = o.stat(unique)
            except OSError as e:
                raise LockError(
                    f"cannot lock {self.path}: stat of {unique} failed: {e}",
                    self.path) from e
            if st.st_nlink == 2:
                # link() does not change the mtime, so this is the lock file's.
                self._ident = _identity(st)
                self._token = token
                return True, st
            if (link_error is not None and link_error.errno != errno.EEXIST
                    and not self._lexists(self.lock_path)):
                # Nobody holds the lock, yet we cannot link: waiting will not
                # help (no hard links on this file system, quota, ...).
                raise self._link_failure(link_error)
            return False, st
        finally:
            self._unlink_quietly(unique)

    def _unique_name(self, token: str) -> str:
        """
        @return: a path in the lock's directory that no other process, on
            this host or another, will use.
        """
        # Host names cannot contain "/" but may be odd; keep the file name
        # portable and short enough for NAME_MAX.
        host = "".join(c if c.isalnum() or c in "-_" else "_"
                       for c in self.settings.hostname)[:64]
        base = os.path.basename(self.lock_path)[:100]
        name = ".%s.%s.%d.%d.%s" % (base, host, os.getpid(), time.time_ns(), token)
        return os.path.join(self._dir, name)

    def _content(self, token: str) -> bytes:
        # "hostname pid token": the first two name the holder in LockTimeout
        # and let holders on this host be checked with kill(pid, 0) (the pid
        # is read each time because a forked child is another holder); the
        # random token tells this acquisition's lock from any other.
        return f"{self.settings.hostname} {os.getpid()} {token}\n".encode()

    def _create_unique(self, unique: str, token: str) -> None:
        """
        Create the unique file with our content and mode.

        @raises CannotLock: the directory does not let us create files.
        @raises LockError: another error (e.g. ENOSPC); nothing is left.
        """
        o = self._os
        # No O_EXCL (see the module docstring); O_NOFOLLOW so a planted
        # symlink cannot redirect the write.
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
        flags |= getattr(os, "O_CLOEXEC", 0)
        try:
            fd = o.open(unique, flags, self.settings.mode)
        except OSError as e:
            raise self._create_failure(e) from e
        try:
            try:
                # The umask may have removed bits the settings asked for.
                o.fchmod(fd, self.settings.mode)
                data = self._content(token)
                if o.write(fd, data) != len(data):
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            finally:
                # close() reports deferred NFS write errors (ENOSPC, EDQUOT).
                o.close(fd)
        except OSError as e:
            self._unlink_quietly(unique)
            raise self._create_failure(e) from e

    # -- other holders ---------------------------------------------------------

    def _observe(self, probe: os.stat_result) -> _Observation | None:
        """
        Look at the existing lock file and judge whether it is stale.

        @param probe: the stat of a file we just created in the same
            directory; its mtime is the file server's "now".
        @return: what we saw, or C{None} if there is no lock file.
        """
        try:
            st = self._os.lstat(self.lock_path)
        except FileNotFoundError:
            return None
        except OSError as e:
            raise LockError(f"cannot examine {self.lock_path}: {e}", self.path) from e
        holder = self._read_holder()
        # Both mtimes come from the file server's clock, so their difference
        # is meaningful even if our clock is off.  A lock "from the future"
        # has a negative age and is never stale.
        age = (probe.st_mtime_ns - st.st_mtime_ns) / 1e9
        stale_age = self.settings.stale_age
        if self._level:
            stale_age = min(stale_age, _BREAK_LOCK_STALE_AGE)
        stale = None
        if not stat.S_ISREG(st.st_mode):
            # Never remove what is not a lock file we understand.
            holder = holder or "(not a regular file)"
        elif self._holder_is_dead(holder):
            stale = f"its holder ({holder}) no longer runs"
        elif age > stale_age:
            stale = f"it was not modified for {age:.0f} s (stale after {stale_age:.0f} s)"
        return _Observation(st, holder, age, stale)

    def _read_holder(self) -> str | None:
        o = self._os
        try:
            # O_NONBLOCK: a FIFO planted as the lock must not hang us.
            fd = o.open(self.lock_path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            return None
        try:
            data = o.read(fd, 512)
        except OSError:
            return None
        finally:
            o.close(fd)
        return data.decode("utf-8", "replace").strip()

    def _holder_is_dead(self, holder: str | None) -> bool:
        """
        @return: C{True} if C{holder} names this host and a pid that does not
            run (C{kill(pid, 0)} fails with ESRCH).
        """
        if not holder:
            return False
        parts = holder.split()
        if len(parts) < 2 or parts[0] != self.settings.hostname:
            return False
        try:
            pid = int(parts[1])
        except ValueError:
            return False
        if pid <= 0:
            # kill(0 or negative) would signal process groups.
            return False
        try:
            self._os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except OSError:
            # EPERM: it runs under another user.
            return False
        return False

    def _break(self, seen: _Observation, backoff: Backoff) -> bool:
        """
        Remove the stale lock C{seen}, so that of several processes that
        judged it stale at the same time at most one removes it, and a fresh
        lock taken meanwhile by somebody else is never removed.

        Why this is race-free:
          - Breakers serialize on a second-level dotlock, C{NAME.lock.break},
            taken with the same link-count protocol.  Inside it, a breaker
            re-checks that C{NAME.lock} is still the very file it judged
            stale (same device, inode I{and} mtime: a refresh by a live
            holder also cancels the break, and a re-used inode number is not
            mistaken for the old file).  The first breaker removes it;
            the second sees a different inode (or none) and gives up.
          - Nobody but breakers removes a lock they do not own, so between
            the re-check and the removal the file can only change if its own
            (presumed dead) holder releases it.  To cover that, the lock is
            not unlinked by name but renamed to a unique name first and the
            renamed file's inode is compared with the judged one: if it is a
            different, fresh lock we put it back with link() (which fails
            rather than overwrite yet another lock) and give up.
          - The break-lock itself is only held for those few calls; if a
            breaker dies holding it, it is broken by the same stale rules
            (dead pid on this host, or older than 30 s), by rename and inode
            check alone, without a third level.

        @return: C{True} if the stale lock is gone.
        """
        o = self._os
        breaker = None
        if self._level == 0:
            breaker = DotLock(
                self.lock_path,
                replace(self.settings, lock_suffix=".break", refresh_interval=None),
                _os=o, _level=1)
            breaker._privileged = self._privileged
            try:
                breaker.acquire(timeout=min(backoff.remaining(), 5.0))
            except LockTimeout:
                return False
        try:
            try:
                now = o.lstat(self.lock_path)
            except FileNotFoundError:
                return True
            if _identity(now) != _identity(seen.stat):
                return False
            grave = self._unique_name(secrets.token_hex(6)) + ".stale"
            with self._directory_writes():
                return self._break_by_rename(seen, grave)
        finally:
            if breaker is not None:
                breaker.release()

    def _break_by_rename(self, seen: _Observation, grave: str) -> bool:
        """The rename and inode check of L{_break}, inside the break-lock."""
        o = self._os
        try:
            o.rename(self.lock_path, grave)
        except FileNotFoundError:
            return True
        except OSError as e:
            # E.g. a sticky (1777) spool where the stale lock belongs to
            # another user: we cannot remove it, only wait or time out.
            self._log.warn(
                "Cannot break stale lock {lock} ({why}; held by {holder!r}):"
                " {err}", lock=self.lock_path, why=seen.stale,
                holder=seen.holder, err=e)
            return False
        try:
            moved = o.lstat(grave)
            # rename() changes the ctime only, so the identity holds.
            if _identity(moved) == _identity(seen.stat):
                self._log.warn(
                    "Broke stale lock {lock}: {why}; held by {holder!r}",
                    lock=self.lock_path, why=seen.stale, holder=seen.holder)
                return True
            # Not the stale file: a fresh lock appeared in between.
            try:
                o.link(grave, self.lock_path)
            except OSError:
                pass
            self._log.warn(
                "Did not break {lock}: it was replaced while breaking it",
                lock=self.lock_path)
            return False
        finally:
            self._unlink_quietly(grave)

    # -- helpers ---------------------------------------------------------------

    def _touch(self) -> None:
        """
        Update the lock file's mtime; caller holds C{self._mutex}.
        """
        assert self._ident is not None
        try:
            st = self._os.lstat(self.lock_path)
        except FileNotFoundError:
            self.lost = True
            raise LockLost(f"{self.lock_path} was removed while we held it",
                           self.path) from None
        if not self._is_ours(st, self._ident):
            self.lost = True
            raise LockLost(f"{self.lock_path} was replaced while we held it",
                           self.path)
        # times=None, not time.time(): over NFS this asks the server to stamp
        # its own clock, the one staleness is judged by.  (If the file were
        # replaced right after the lstat we would merely freshen somebody
        # else's live lock.)
        self._os.utime(self.lock_path, None)
        self._ident = _identity(self._os.lstat(self.lock_path))

    def _is_ours(self, st: os.stat_result, ident: tuple[int, int, int, int]) -> bool:
        """
        Whether the lock file whose C{lstat} is C{st} is the one we created.

        The same device, inode, mtime and size are enough (the usual case,
        no extra I/O).  The mtime matters because file systems reuse a freed
        inode number at once: a lock removed and re-created by others may
        carry our old inode.  If only the mtime differs (somebody touched
        our file), the token we wrote into it decides.
        """
        if _identity(st) == ident:
            return True
        if (st.st_dev, st.st_ino) != ident[:2]:
            return False
        holder = self._read_holder() or ""
        return holder.split()[2:3] == [self._token]

    def _lost(self, how: str) -> None:
        self.lost = True
        message = (f"Lock file {self.lock_path} was {how} by someone else while"
                   f" we held it; changes made under it may have raced")
        self._log.warn("{message}", message=message, lock=self.lock_path)
        warnings.warn(LockLost(message, self.path), stacklevel=3)

    def _lexists(self, path: str) -> bool:
        try:
            self._os.lstat(path)
        except OSError:
            return False
        return True

    def _unlink_quietly(self, path: str) -> None:
        try:
            self._os.unlink(path)
        except OSError:
            pass

    def _create_failure(self, e: OSError) -> LockError:
        if e.errno in _PERMISSION_ERRNOS:
            return CannotLock(self._cannot_lock_message(e), self.path, self._dir)
        if e.errno in _SPACE_ERRNOS:
            return LockError(
                f"cannot lock {self.path}: no space (or quota) left to create a"
                f" lock file in {self._dir}: {e.strerror}; nothing was written",
                self.path)
        return LockError(f"cannot lock {self.path}: cannot create a lock file in"
                         f" {self._dir}: {e}", self.path)

    def _link_failure(self, e: OSError) -> LockError:
        if e.errno in _PERMISSION_ERRNOS:
            return CannotLock(
                f"cannot lock {self.path}: link() to {self.lock_path} failed"
                f" ({e.strerror}); the file system in {_describe_directory(self._dir)}"
                f" may not support hard links: configure fcntl-only locking",
                self.path, self._dir)
        return LockError(f"cannot lock {self.path}: link() to {self.lock_path}"
                         f" failed: {e}", self.path)

    def _cannot_lock_message(self, e: OSError) -> str:
        where = _describe_directory(self._dir)
        who = f"uid {os.geteuid()}" if hasattr(os, "geteuid") else "this process"
        if e.errno == errno.EROFS:
            advice = ("the file system is read-only: configure fcntl-only locking"
                      " (lock chain [\"fcntl\"]) or \"dotlock_try\"")
        else:
            advice = ("make it 1777 (sticky and world-writable, like /var/mail) or"
                      " group-writable for the mail group this server runs in,"
                      " or configure fcntl-only locking (lock chain [\"fcntl\"])"
                      " or \"dotlock_try\"")
        return (f"cannot lock {self.path}: {who} may not create {self.lock_path}"
                f" in directory {where}: {e.strerror}; {advice}")

    def _timeout(self, seen: _Observation | None, waited: float) -> LockTimeout:
        if seen is None:
            return LockTimeout(f"timed out after {waited:.1f} s waiting for"
                               f" {self.lock_path}", self.path, waited=waited)
        holder = repr(seen.holder) if seen.holder else "an unknown holder (empty lock file)"
        return LockTimeout(
            f"{self.lock_path} is held by {holder} for {seen.age:.1f} s (by the"
            f" file server's clock); gave up after waiting {waited:.1f} s",
            self.path, holder=seen.holder, age=seen.age, waited=waited)


class _Refresher(threading.Thread):
    """
    Touches a held L{DotLock} every C{interval} seconds until stopped, for
    holds that may outlast C{stale_age}.
    """

    def __init__(self, lock: DotLock, interval: float) -> None:
        super().__init__(name=f"dotlock refresher {lock.lock_path}", daemon=True)
        self._lock = lock
        self._interval = interval
        self._stopped = threading.Event()

    def stop(self) -> None:
        self._stopped.set()
        if threading.current_thread() is not self:
            # Bounded: a touch stuck on a hung NFS server must not hang
            # release(); the mutex keeps a late touch from misfiring.
            self.join(self._interval + 1.0)

    def run(self) -> None:
        lock = self._lock
        while not self._stopped.wait(self._interval):
            with lock._mutex:
                if lock._ident is None or self._stopped.is_set():
                    return
                try:
                    lock._touch()
                except LockLost as e:
                    lock._log.warn("{message}", message=str(e), lock=lock.lock_path)
                    return
                except OSError as e:
                    lock._log.warn("Cannot refresh {lock}: {err}",
                                   lock=lock.lock_path, err=e)
