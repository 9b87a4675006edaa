"""
Tests for L{imapd.auth.userdb.SystemUserDB} (with a real system user made
by L{tests.system_users}) and the uid rules of L{Authenticator}
(C{first_valid_uid}, root).
"""

from __future__ import annotations

import pwd

from twisted.cred.error import UnauthorizedLogin
from twisted.logger import capturedLogs, formatEvent

from imapd.auth.authenticator import Authenticator
from imapd.auth.userdb import SystemUserDB, UserRecord
from tests.system_users import make_system_user, system_root  # noqa: F401 - fixtures


def synchronous(f, *args):
    return f(*args)


class Yes:
    """A checker that lets every password in."""

    def requestAvatarId(self, credentials):
        from twisted.internet.defer import succeed

        return succeed(credentials.username.decode())


class Table:
    def __init__(self, *records):
        self.records = {r.name: r for r in records}

    def lookup(self, name):
        return self.records.get(name)


def outcome(deferred):
    result = []
    deferred.addBoth(result.append)
    value = result[0]
    return value.value if hasattr(value, "value") else value


def test_system_user_record(make_system_user):
    alice = make_system_user("alice")
    record = SystemUserDB().lookup(alice.name)
    assert record == UserRecord(alice.name, alice.uid, alice.gid, str(alice.home))
    assert record.system


def test_unknown_and_odd_names():
    users = SystemUserDB()
    assert users.lookup("imapdt_nobody_here") is None
    assert users.lookup("") is None
    assert users.lookup("root\0") is None


def test_root_is_found_by_the_database_but_never_served():
    assert SystemUserDB().lookup("root").uid == 0
    auth = Authenticator(Yes(), SystemUserDB(), runner=synchronous, first_valid_uid=0)
    with capturedLogs() as events:
        result = outcome(auth.authenticate(b"root", b"whatever"))
    assert isinstance(result, UnauthorizedLogin)
    text = "\n".join(formatEvent(e) for e in events)
    assert "Authentication refused for 'root': uid 0 (root) is never served" in text
    assert auth.user("root") is None


def test_uid_below_first_valid_uid_refused_with_a_log_line():
    daemon = pwd.getpwnam("daemon")  # uid 1 on Debian
    auth = Authenticator(Yes(), SystemUserDB(), runner=synchronous)
    with capturedLogs() as events:
        result = outcome(auth.authenticate(b"daemon", b"x"))
    assert isinstance(result, UnauthorizedLogin)
    text = "\n".join(formatEvent(e) for e in events)
    assert (f"Authentication refused for 'daemon': uid {daemon.pw_uid} is below "
            "userdb.first_valid_uid 1000") in text
    assert auth.user("daemon") is None


def test_first_valid_uid_boundary_and_virtual_users():
    users = Table(UserRecord("edge", 500), UserRecord("under", 499), UserRecord("virtual"))
    auth = Authenticator(Yes(), users, runner=synchronous, first_valid_uid=500)
    assert outcome(auth.authenticate(b"edge", b"x")).uid == 500
    assert isinstance(outcome(auth.authenticate(b"under", b"x")), UnauthorizedLogin)
    assert outcome(auth.authenticate(b"virtual", b"x")).uid is None
    assert auth.user("edge").uid == 500
    assert auth.user("under") is None


def test_system_user_above_the_limit_served(make_system_user):
    alice = make_system_user("alice")
    auth = Authenticator(Yes(), SystemUserDB(), runner=synchronous)
    assert outcome(auth.authenticate(alice.name.encode(), b"x")).home == str(alice.home)
