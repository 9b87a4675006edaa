"""
No global load (issue 6): start-up and login cost do not grow with the
number of users or mailboxes.  10,000 user directories sit beside the one
user who logs in; the real daemon runs with an audit hook (a
C{sitecustomize} on C{PYTHONPATH}) that records every file-system call on a
path under the mail root: C{open}, C{os.listdir}, C{os.scandir}, the
modifying calls (audit events), and C{os.stat}/C{os.lstat}/C{os.access}
(wrapped, as they raise no audit event).  The test counts, it does not
time: start-up touches no mail directory at all, and login, SELECT and
FETCH touch only the user's own (plus a stat() of the mail root on the way
there), never a listing of the mail root or anything of another user.
All of it happens in the storage thread pool, none on the reactor thread.
(The passwd-file is read whole at the first login and then only stat()ed;
that is the authentication backend's cost, not the store's.)
"""

from __future__ import annotations

import imaplib
import os
from pathlib import Path

from e2e_helpers import USER, PASSWORD, Daemon, write_config
from e2e_sessions import add_users, make_maildir

USERS = 10_000

AUDIT = r'''
import os
import sys
import threading

_root = os.environ.get("IMAPD_AUDIT_ROOT")
_path = os.environ.get("IMAPD_AUDIT_LOG")
if _root and _path:
    _lock = threading.Lock()
    _events = {"open", "os.listdir", "os.scandir", "os.mkdir", "os.rename", "os.replace",
               "os.remove", "os.rmdir", "os.utime", "os.chmod", "os.link", "os.symlink",
               "os.truncate", "shutil.rmtree"}

    def _note(event, path):
        if isinstance(path, int) or path is None:
            return
        try:
            p = os.fsdecode(path)
        except TypeError:
            return
        if not p.startswith("/"):
            p = os.path.join(os.getcwd(), p)
        if p == _root or p.startswith(_root + "/"):
            # Opened for each line: the daemon forks its children from the
            # master and they close the descriptors they did not make, so
            # a file kept open here would be gone (or another file) there.
            line = "%s\t%s\t%s\n" % (event, p, threading.current_thread().name)
            with _lock:
                fd = os.open(_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    os.write(fd, line.encode("utf-8", "surrogateescape"))
                finally:
                    os.close(fd)

    def _hook(event, args):
        if event in _events:
            for arg in args[:2]:
                _note(event, arg)

    sys.addaudithook(_hook)
    for _name in ("stat", "lstat", "access"):
        def _wrap(path, *args, _real=getattr(os, _name), _event="os." + _name, **kwargs):
            _note(_event, path)
            return _real(path, *args, **kwargs)
        setattr(os, _name, _wrap)
'''


def _records(log: Path) -> list[tuple[str, str, str]]:
    """(event, path, thread name) for each call the hook saw."""
    if not log.exists():
        return []
    return [tuple(line.split("\t", 2)) for line in log.read_text().splitlines()]


def _events(log: Path) -> list[tuple[str, str]]:
    return [(event, path) for event, path, _thread in _records(log)]


def test_startup_and_login_touch_only_the_users_directory(tmp_path, tls_files, monkeypatch):
    """With 10,000 other users, nothing but the logged-in user's own Maildir is opened, listed or stat()ed."""
    mail = tmp_path / "mail"
    make_maildir(mail / USER)
    (mail / USER / "cur" / "1.M1P1.test,S=23:2,S").write_bytes(b"Subject: hi\r\n\r\nhello\r\n")
    others = [f"user{i:05d}" for i in range(USERS)]
    for name in others:
        (mail / name).mkdir()
    config, (port, _tls_port) = write_config(tmp_path, tls_files)
    add_users(tmp_path / "passwd", others, USER)

    hook_dir = tmp_path / "audit"
    hook_dir.mkdir()
    (hook_dir / "sitecustomize.py").write_text(AUDIT)
    log = tmp_path / "audit.log"
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(hook_dir)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])))
    monkeypatch.setenv("IMAPD_AUDIT_ROOT", str(mail))
    monkeypatch.setenv("IMAPD_AUDIT_LOG", str(log))

    daemon = Daemon(["--config", str(config)], tmp_path).start()
    try:
        daemon.wait_for_greeting(port)
        at_start = _events(log)
        client = imaplib.IMAP4("127.0.0.1", port, timeout=60)
        client.login(USER, PASSWORD)
        after_login = _events(log)
        typ, data = client.select("INBOX")
        assert typ == "OK" and data == [b"1"]
        typ, data = client.fetch("1", "(BODY.PEEK[])")
        assert typ == "OK" and b"hello" in data[0][1]
        client.logout()
    finally:
        daemon.stop()
    events = _events(log)

    # Start-up touched no mail directory at all.  The one exception is the
    # mail root itself: to decide mail.nfs_storage = "auto" (issue 20) the
    # daemon asks which filesystem the root is on, a stat() or two that do
    # not grow with the users; nothing below the root, and no listing.
    assert set(at_start) <= {
        ("os.stat", str(mail)), ("os.access", str(mail)), ("os.lstat", str(mail))}
    # The positive control: the hook saw login prepare the user's INBOX,
    # SELECT list it and FETCH open the message.
    own = str(mail / USER)
    assert any(p.startswith(own) for _e, p in after_login), after_login
    assert ("os.scandir", own + "/cur") in events or ("os.listdir", own + "/cur") in events, events
    assert any(e == "open" and p.startswith(own + "/cur/") for e, p in events), events
    # Nothing outside the user's own directory, except stat() of the mail
    # root on the way to it (os.makedirs checks the parent exists):
    # never a listing of the root, nothing of any other user.
    outside = [(e, p) for e, p in events
               if p != own and not p.startswith(own + "/")
               and not (e in ("os.stat", "os.lstat", "os.access") and p == str(mail))]
    assert outside == []
    assert not any(p.startswith(str(mail / "user")) for _e, p in events)
    # All of the sessions' work ran in the storage pool, none on the reactor
    # thread (issue 6: "disk work runs in dedicated thread pools"); the
    # start-up look above runs before the reactor serves anybody.
    threads = {thread for _e, _p, thread in _records(log)[len(at_start):]}
    assert threads and all(t.startswith("PoolThread-imapd-storage") for t in threads), threads
