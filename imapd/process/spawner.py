# -*- test-case-name: tests.process.test_processes -*-
"""
C{imapd: spawner}: forks the master's children from an imported image.

The master imports everything a child needs (L{preload}), moves it out of
the collector's sight (C{gc.freeze}) and forks the spawner from itself
(L{imapd.process.master}; its control socket on descriptor 3), so that
the master, the spawner and every child share one image: each process's
own memory is what it wrote since the fork.  The spawner forgets what it
inherited of the master's running Twisted (L{forget_master}: no reactor,
no log observers, default signal handlers), so that a fork of it is a
consistent process that installs its own reactor and starts serving in
milliseconds (a system user's worker is forked at that user's login).
It runs no thread.  Then it waits on its control socket for C{spawn}
requests (the child's control socket and listeners travel with them),
forks, answers C{spawned} with the pid, reaps its children and reports
each exit (C{exited}).  It dies with the master (PR_SET_PDEATHSIG), and
its children die with it.
"""

from __future__ import annotations

import gc
import os
import select
import signal
import socket
import sys
import traceback

from imapd.process.wire import Decoder, frame

__all__ = ["preload", "forget_master", "run_forked", "run_then_exit"]

#: Modules imported before serving, besides L{imapd.tap.WARM_MODULES}.
PRELOAD = (
    # every command module (imapd.commands.lookup imports them on first use)
    *(f"imapd.commands.{name}" for name in (
        "any", "append", "auth", "compress", "context", "copymove", "fetch", "idle",
        "mailboxes", "notify", "quota", "search", "select", "sort", "store", "thread",
        "urlauth")),
    "imapd.protocol", "imapd.commands", "imapd.account", "imapd.server", "imapd.errors",
    "imapd.logtext", "imapd.tls", "imapd.auth.authenticator", "imapd.auth.checker",
    "imapd.auth.sasl", "imapd.auth.throttle",
    "imapd.process.channel", "imapd.process.child", "imapd.process.login",
    "imapd.process.worker", "imapd.process.authproc", "imapd.process.services",
    "imapd.delivery.lmtp", "imapd.delivery.core", "imapd.process.privileges",
    "imapd.process.sysutil", "imapd.process.wire", "imapd.proxyprotocol",
    # what the reactor and TLS import when they start (a chrooted login
    # process cannot import anything any more)
    "twisted.internet.epollreactor", "twisted.internet.tcp", "twisted.internet.unix",
    "twisted.internet.task", "twisted.internet.threads", "twisted.internet.ssl",
    "twisted.internet._sslverify", "twisted.internet._newtls", "twisted.protocols.tls",
    "twisted.internet.endpoints", "twisted.logger", "twisted.python.sendmsg",
    "storage.registry", "encodings.idna",
    # what the children import as they start (unpickling the effective
    # settings, a pool worker's cluster hooks): imported after the fork,
    # a module's objects would be private to each child, and the import
    # machinery's own tables would be unshared too
    "conf.endpoints", "imapd.defaults", "imapd.cluster.owner", "imapd.cluster.placement",
    "imapd.cluster.service", "imapd.cluster.sessions", "imapd.process.delivery",
)

#: Imported too where they exist: Twisted's inotify, which IDLE and a
#: delivery's wake-up start in a worker, loads the C library through
#: ctypes when imported (ctypes.util.find_library runs ldconfig): done
#: in each worker, that was a subprocess and memory of its own.
OPTIONAL_PRELOAD = ("twisted.internet.inotify",)


def preload() -> None:
    """
    Import what every child needs (L{PRELOAD}, L{imapd.tap.WARM_MODULES}),
    then freeze everything allocated so far (L{imapd.tap.warm_up}).  The
    master calls it before it forks the spawner; none of these modules
    installs a reactor or starts a thread when imported.
    """
    import importlib

    from imapd import tap

    for name in PRELOAD:
        importlib.import_module(name)
    for name in OPTIONAL_PRELOAD:
        try:
            importlib.import_module(name)
        except (ImportError, OSError):
            pass  # not on this system: nobody imports it later either
    _load_name_services()
    # imports, gc.freeze and the GC threshold, as the single process does
    tap.warm_up()


def _load_name_services() -> None:
    """
    Have the C library load its name-service modules (nsswitch.conf's
    C{files}, C{systemd}, ...) here, once: a system user's worker looks its
    user and groups up (C{initgroups}) right after the fork, and a module
    it loaded itself, relocated and initialised, was 0.3 MB of memory of
    its own in every such worker.
    """
    import grp
    import pwd

    try:
        root = pwd.getpwuid(0)
        grp.getgrgid(0)
        os.getgrouplist(root.pw_name, root.pw_gid)
    except (KeyError, OSError):
        pass  # no such entries (a minimal container): nothing to load


def forget_master() -> None:
    """
    In the spawner just forked from the master: drop what belongs to the
    master's running Twisted, so that each child starts as a fresh
    interpreter would (its own reactor, its own log observer).

      - the collector, which Twisted's fork turned off, is on again;
      - every Python signal handler (the reactor's, SIGHUP's reload,
        twistd's log rotation) is back to the default, and no wake-up fd;
        SIGPIPE and SIGXFSZ are ignored again, as the interpreter has them
        at start (Twisted's fork reset them for a program it would execute:
        a login process writing to a client that left would die of it);
      - standard output and error are the process's own again (twistd may
        have sent them into its log);
      - the log publisher has no observer, and a new log beginner buffers
        until a child begins logging (the master's observers write to the
        master's log file, whose descriptor the fork closed);
      - the master's reactor is uninstalled, so a child can install one;
        the master's processes are not ours to reap.
    """
    import gc
    import warnings

    gc.enable()
    signal.set_wakeup_fd(-1)
    for sig in signal.valid_signals():
        try:
            if callable(signal.getsignal(sig)):
                signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError):
            pass
    for name in ("SIGPIPE", "SIGXFSZ"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)
    sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__

    import twisted.internet
    import twisted.logger
    from twisted.internet import process
    from twisted.logger import _global

    publisher = _global.globalLogPublisher
    for observer in list(getattr(publisher, "_observers", ())):
        publisher.removeObserver(observer)
    warnings.showwarning = getattr(_global.globalLogBeginner, "_oldshowwarning",
                                   warnings.showwarning)
    beginner = _global.LogBeginner(publisher, sys.stderr, sys, warnings)
    _global.globalLogBeginner = twisted.logger.globalLogBeginner = beginner

    sys.modules.pop("twisted.internet.reactor", None)
    if hasattr(twisted.internet, "reactor"):
        del twisted.internet.reactor
    process.reapProcessHandlers.clear()


def _status(status: int) -> tuple[int, str]:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        return -sig, f"killed by {signal.Signals(sig).name}"
    code = os.WEXITSTATUS(status)
    return code, f"exit status {code}"


class Spawner:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.decoder = Decoder()
        self.children: dict[int, object] = {}  # pid -> child id
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)
        os.set_blocking(self.wake_r, False)

    def send(self, message: dict) -> None:
        self.sock.sendall(frame(message))

    def run(self) -> int:
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.set_wakeup_fd(self.wake_w)
        # The master ends its children itself (it knows their pids); the
        # spawner goes when its control socket closes.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        while True:
            self.reap()
            try:
                ready, _, _ = select.select([self.sock, self.wake_r], [], [])
            except InterruptedError:
                continue
            if self.wake_r in ready:
                try:
                    os.read(self.wake_r, 4096)
                except BlockingIOError:
                    pass
            if self.sock in ready:
                try:
                    data, fds, _flags, _addr = socket.recv_fds(self.sock, 65536, 64)
                except InterruptedError:
                    continue
                for fd in fds:
                    self.decoder.add_fd(fd)
                if not data:
                    return 0
                self.decoder.feed(data)
                for message, mfds in self.decoder.messages():
                    self.handle(message, mfds)

    def reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            cid = self.children.pop(pid, None)
            code, text = _status(status)
            self.send({"op": "exited", "id": cid, "pid": pid, "code": code, "text": text})

    def handle(self, message: dict, fds: list[int]) -> None:
        try:
            if message.get("op") != "spawn":
                sys.stderr.write(f"imapd spawner: unknown request {message.get('op')!r}\n")
                return
            sys.stdout.flush()
            sys.stderr.flush()
            # Whatever the spawner allocated since the last fork goes out of
            # the collector's sight too: a collection in the child would
            # otherwise write to those objects' headers and unshare their
            # pages (gc.freeze's documented use before fork).
            gc.freeze()
            pid = os.fork()
            if pid == 0:
                self._child(message, fds)
            self.children[pid] = message.get("id")
            self.send({"op": "spawned", "id": message.get("id"), "pid": pid})
        finally:
            for fd in fds:
                try:
                    os.close(fd)
                except OSError:
                    pass

    def _child(self, message: dict, fds: list[int]) -> None:
        def start() -> int:
            signal.set_wakeup_fd(-1)
            for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                signal.signal(sig, signal.SIG_DFL)
            self.sock.close()
            os.close(self.wake_r)
            os.close(self.wake_w)
            from imapd.process.child import run

            return run(message, fds, spawner=os.getppid())

        run_then_exit(start)


def run_then_exit(life) -> None:
    """
    In a child just forked: run C{life()} and end the process with its
    exit code (1 for a C{SystemExit} without one, 70 and the traceback on
    stderr for any other exception).  Never returns: a forked child that
    returned into its parent's code would be a second copy of the parent.
    """
    code = 70
    try:
        code = life()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def run_forked(master: int) -> int:
    """The spawner's life, in the process the master just forked."""
    from imapd.process.sysutil import die_with_parent, set_title

    forget_master()
    die_with_parent(master)
    set_title("imapd: spawner")
    sock = socket.socket(fileno=3)
    sock.setblocking(True)
    return Spawner(sock).run()
