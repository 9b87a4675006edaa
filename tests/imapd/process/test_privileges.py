"""
Tests for L{imapd.process.privileges.become_user} and the privileged group
of L{locking.privgroup}, as root: each check runs in a forked child that
becomes a test user (L{tests.system_users}) for good, as a system user's
mail worker does, and reports what it saw through a pipe.
"""

from __future__ import annotations

import grp
import json
import os
import threading
import traceback

import pytest

from imapd.auth.userdb import UserRecord
from imapd.process.privileges import PrivilegeError, become_user
from locking import CannotLock, DotLock, privgroup
from tests.system_users import (  # noqa: F401 - fixtures, registered by name
    MAIL_GROUP, make_system_user, mail_spool, system_root)


def in_child(check):
    """
    Run C{check()} in a forked child; return its JSON result, or fail
    with the child's traceback.
    """
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        os.close(read)
        try:
            out = {"ok": check()}
        except BaseException:
            out = {"error": traceback.format_exc()}
        try:
            os.write(write, json.dumps(out).encode())
        finally:
            os._exit(0)
    os.close(write)
    chunks = []
    while chunk := os.read(read, 65536):
        chunks.append(chunk)
    os.close(read)
    os.waitpid(pid, 0)
    out = json.loads(b"".join(chunks) or b'{"error": "the child wrote nothing"}')
    if "error" in out:
        pytest.fail("in the child:\n" + out["error"])
    return out["ok"]


def status() -> dict[str, list[int]]:
    """The Uid, Gid and Groups lines of /proc/self/status, as numbers."""
    lines = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("Uid", "Gid", "Groups"):
                lines[key] = [int(v) for v in value.split()]
    return lines


def record_of(user) -> UserRecord:
    return UserRecord(user.name, user.uid, user.gid, str(user.home))


def test_child_becomes_the_user_for_good(make_system_user):
    alice = make_system_user("alice")
    mail = grp.getgrnam(MAIL_GROUP).gr_gid

    def check():
        become_user(record_of(alice), MAIL_GROUP)
        seen = status()
        try:
            os.setuid(0)
            regained = True
        except PermissionError:
            regained = False
        return {"status": seen, "regained": regained, "gid": os.getresgid()}

    seen = in_child(check)
    assert seen["status"]["Uid"] == [alice.uid] * 4  # real, effective, saved, fs
    # The privileged group is the saved gid only: not effective, not in
    # the supplementary groups.
    assert seen["status"]["Gid"] == [alice.gid, alice.gid, mail, alice.gid]
    assert sorted(seen["status"]["Groups"]) == sorted(os.getgrouplist(alice.name, alice.gid))
    assert mail not in seen["status"]["Groups"] and 0 not in seen["status"]["Groups"]
    assert seen["regained"] is False
    assert seen["gid"] == [alice.gid, alice.gid, mail]


def test_without_a_privileged_group_nothing_is_saved(make_system_user):
    alice = make_system_user("alice")
    seen = in_child(lambda: (become_user(record_of(alice)), status())[1])
    assert seen["Gid"] == [alice.gid] * 4


def test_cannot_open_another_users_file(make_system_user):
    alice, bob = make_system_user("alice"), make_system_user("bob")
    secret = bob.home / "secret"
    secret.write_text("bob's mail\n")
    os.chown(secret, bob.uid, bob.gid)
    secret.chmod(0o600)
    own = alice.home / "mine"
    own.write_text("alice's mail\n")
    os.chown(own, alice.uid, alice.gid)
    own.chmod(0o600)

    def check():
        become_user(record_of(alice), MAIL_GROUP)
        results = {"own": open(own).read()}
        for name, path in (("bob", secret), ("bob_home", bob.home)):
            try:
                os.listdir(path) if name == "bob_home" else open(path).read()
                results[name] = "opened"
            except PermissionError:
                results[name] = "refused"
        return results

    assert in_child(check) == {"own": "alice's mail\n", "bob": "refused", "bob_home": "refused"}


def spool_mbox(spool, user):
    """The user's mbox in the spool, as an MDA leaves it: 0660 user:mail."""
    mbox = spool / user.name
    mbox.write_bytes(b"")
    os.chown(mbox, user.uid, grp.getgrnam(MAIL_GROUP).gr_gid)
    mbox.chmod(0o660)
    return mbox


def test_dotlock_in_a_2775_spool_only_through_the_privileged_group(make_system_user,
                                                                     mail_spool):
    alice = make_system_user("alice")
    mbox = spool_mbox(mail_spool, alice)
    mail = grp.getgrnam(MAIL_GROUP).gr_gid

    def check():
        become_user(record_of(alice), MAIL_GROUP)
        try:
            open(mail_spool / "direct", "w")
            direct = "created"
        except PermissionError:
            direct = "refused"
        lock = DotLock(str(mbox))
        lock.acquire(timeout=5)
        st = os.stat(str(mbox) + ".lock")
        during = os.getresgid()
        lock.release()
        return {"direct": direct, "owner": [st.st_uid, st.st_gid], "during": during,
                "after": os.getresgid(), "left": sorted(os.listdir(mail_spool))}

    seen = in_child(check)
    # The user alone may not create files in the spool ...
    assert seen["direct"] == "refused"
    # ... but locks its mbox there, with the group only around the calls.
    assert seen["owner"] == [alice.uid, mail]
    assert seen["during"] == [alice.gid, alice.gid, mail]
    assert seen["after"] == [alice.gid, alice.gid, mail]
    assert seen["left"] == [alice.name]


def test_dotlock_in_the_spool_refused_without_the_group(make_system_user, mail_spool):
    alice = make_system_user("alice")
    mbox = spool_mbox(mail_spool, alice)

    def check():
        become_user(record_of(alice))
        try:
            DotLock(str(mbox)).acquire(timeout=1)
        except CannotLock as e:
            return str(e)
        return "locked"

    assert "may not create" in in_child(check)


def test_the_group_is_the_locking_threads_alone(make_system_user):
    """
    While one thread holds the privileged group, another thread (a Maildir
    write in the storage pool) keeps the user's own group.
    """
    alice = make_system_user("alice")
    mail = grp.getgrnam(MAIL_GROUP).gr_gid

    def check():
        become_user(record_of(alice), MAIL_GROUP)
        inside, done = threading.Event(), threading.Event()
        other = {}

        def elsewhere():
            inside.wait(10)
            other["egid"] = os.getegid()
            done.set()

        thread = threading.Thread(target=elsewhere)
        thread.start()
        with privgroup.held():
            mine = os.getegid()
            inside.set()
            done.wait(10)
        thread.join()
        return {"mine": mine, "other": other.get("egid"), "after": os.getegid(),
                "per_thread": privgroup.per_thread()}

    seen = in_child(check)
    assert seen["per_thread"] is True  # Linux on this machine
    assert seen["mine"] == mail
    assert seen["other"] == alice.gid
    assert seen["after"] == alice.gid


def test_become_user_without_uid_refused():
    with pytest.raises(PrivilegeError):
        become_user(UserRecord("virtual"))


def test_stale_dotlock_in_the_spool_broken_through_the_group(make_system_user, mail_spool):
    """A lock left by a dead process is removed (renamed away) with the group too."""
    import socket

    alice = make_system_user("alice")
    mbox = spool_mbox(mail_spool, alice)
    stale = mail_spool / (alice.name + ".lock")
    # A pid above pid_max never runs.
    stale.write_text(f"{socket.gethostname()} 4194305 dead\n")

    def check():
        become_user(record_of(alice), MAIL_GROUP)
        lock = DotLock(str(mbox))
        lock.acquire(timeout=5)
        mine = open(stale).read().split()[1]
        lock.release()
        return {"holder": int(mine), "left": sorted(os.listdir(mail_spool))}

    seen = in_child(check)
    assert seen["holder"] != 4194305
    assert seen["left"] == [alice.name]


def append_to_spool_inbox(user, spool):
    """In the child: APPEND to the user's mbox INBOX in the spool, as a worker does."""
    from storage.registry import open_store

    def check():
        become_user(record_of(user), MAIL_GROUP)
        store = open_store(f"mbox:{user.home}/mail:INBOX={spool}/%u", user.name, str(user.home))
        try:
            box = store.open("INBOX")
            t = box.transaction()
            t.append(b"From: a@example.org\r\nSubject: spool\r\n\r\nhello\r\n")
            t.commit()
            box.close()
        finally:
            store.close()
        st = os.stat(spool / user.name)
        return {"owner": [st.st_uid, st.st_gid], "left": sorted(os.listdir(spool)),
                "gid": os.getresgid(), "data": open(spool / user.name, "rb").read().decode()}

    return in_child(check)


def test_append_to_the_spool_inbox(make_system_user, mail_spool):
    """The mbox store locks and appends in the 2775 spool as the user."""
    alice = make_system_user("alice")
    spool_mbox(mail_spool, alice)
    seen = append_to_spool_inbox(alice, mail_spool)
    assert "Subject: spool" in seen["data"]
    assert seen["left"] == [alice.name]  # no lock or temporary file left
    assert seen["owner"] == [alice.uid, grp.getgrnam(MAIL_GROUP).gr_gid]
    assert seen["gid"][1] == alice.gid


def test_missing_spool_inbox_created_through_the_group(make_system_user, mail_spool):
    """
    A user whose spool mbox does not exist yet (no mail delivered): the
    INBOX is created with the privileged group, as Dovecot does, and is
    the user's.
    """
    alice = make_system_user("alice")
    seen = append_to_spool_inbox(alice, mail_spool)
    assert "Subject: spool" in seen["data"]
    assert seen["left"] == [alice.name]
    assert seen["owner"][0] == alice.uid


def test_process_wide_fallback_off_linux(make_system_user, mail_spool):
    """
    Without the per-thread system call (another kernel), the whole
    process takes the group, one window at a time, and gives it back.
    """
    alice = make_system_user("alice")
    mbox = spool_mbox(mail_spool, alice)
    mail = grp.getgrnam(MAIL_GROUP).gr_gid

    def check():
        become_user(record_of(alice), MAIL_GROUP)
        privgroup._syscall = None  # this child only
        lock = DotLock(str(mbox))
        lock.acquire(timeout=5)
        owner = os.stat(str(mbox) + ".lock").st_gid
        lock.release()
        with privgroup.held():
            inside = os.getresgid()
            with privgroup.held():  # nested (a break-lock inside a lock)
                nested = os.getresgid()
            still = os.getresgid()
        return {"owner": owner, "inside": inside, "nested": nested, "still": still,
                "after": os.getresgid(), "left": sorted(os.listdir(mail_spool))}

    seen = in_child(check)
    assert seen["owner"] == mail
    assert seen["inside"] == seen["nested"] == seen["still"] == [alice.gid, mail, mail]
    assert seen["after"] == [alice.gid, alice.gid, mail]
    assert seen["left"] == [alice.name]
