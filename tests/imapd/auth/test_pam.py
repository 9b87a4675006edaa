"""
Tests for L{imapd.auth.pam}: the PAM checker against the real libpam, with
a PAM service file and a system user made by L{tests.system_users} (root),
and its refusal padding with a stand-in PAM call.
"""

from __future__ import annotations

import pytest
from twisted.cred.credentials import UsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.logger import capturedLogs, formatEvent

from imapd.auth.pam import PamChecker, pam_service_file
from tests.system_users import (  # noqa: F401 - fixtures, registered by name
    make_system_user, pam_service, system_root)


def synchronous(f, *args):
    return f(*args)


def check(checker, user, password):
    """The checker's answer: the avatar id, or the failure's exception."""
    result = []
    checker.requestAvatarId(UsernamePassword(user, password)).addBoth(result.append)
    value = result[0]
    if hasattr(value, "value"):
        return value.value
    return value


def test_right_password(make_system_user, pam_service):
    alice = make_system_user("alice")
    checker = PamChecker(pam_service, runner=synchronous)
    assert check(checker, alice.name.encode(), alice.password.encode()) == alice.name


def test_wrong_password_and_unknown_user_refused_and_logged(make_system_user, pam_service):
    alice = make_system_user("alice")
    checker = PamChecker(pam_service, runner=synchronous)
    with capturedLogs() as events:
        wrong = check(checker, alice.name.encode(), b"not-her-password")
        unknown = check(checker, b"imapdt_nobody_x", b"not-her-password")
    assert isinstance(wrong, UnauthorizedLogin)
    assert isinstance(unknown, UnauthorizedLogin)
    text = "\n".join(formatEvent(e) for e in events)
    assert f"Authentication refused for {alice.name!r}: PAM service {pam_service!r}" in text
    assert "imapdt_nobody_x" in text
    assert "not-her-password" not in text


def test_other_users_password_refused(make_system_user, pam_service):
    alice, bob = make_system_user("alice"), make_system_user("bob")
    checker = PamChecker(pam_service, runner=synchronous)
    assert isinstance(check(checker, alice.name, bob.password), UnauthorizedLogin)


def test_nul_in_password_refused_without_error(make_system_user, pam_service):
    alice = make_system_user("alice")
    checker = PamChecker(pam_service, runner=synchronous)
    assert isinstance(check(checker, alice.name, alice.password + "\0"), UnauthorizedLogin)


class Clock:
    def __init__(self):
        self.now = 0.0
        self.slept = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(round(seconds, 6))
        self.now += seconds


def test_refusals_padded_to_the_slowest_check():
    """
    A PAM stack that answers "unknown user" at once but verifies a hash
    slowly: the quick refusal waits as long as the slow check took.
    """
    clock = Clock()

    def pam(user, password, service):
        if user == "known":
            clock.now += 0.5  # a hash verification
            return password == b"right", "Authentication failure"
        return False, "User not known to the underlying authentication module"

    checker = PamChecker("imapd", runner=synchronous, check=pam)
    checker.clock, checker.sleep = clock, clock.sleep
    assert check(checker, "known", b"right") == "known"
    start = clock.now
    assert isinstance(check(checker, "stranger", b"x"), UnauthorizedLogin)
    assert clock.now - start == pytest.approx(0.5 * 1.1 + 0.01)


@pytest.mark.parametrize("service", ["", "../shadow", "a/b", "x\0y"])
def test_service_names_that_are_no_service(service):
    with pytest.raises(ValueError):
        pam_service_file(service)
    with pytest.raises(ValueError):
        PamChecker(service, runner=synchronous, check=lambda *a: (True, ""))


def test_user_name_not_utf8_refused_after_the_same_time():
    clock = Clock()

    def pam(user, password, service):
        clock.now += 0.3
        return True, "Success"

    checker = PamChecker("imapd", runner=synchronous, check=pam)
    checker.clock, checker.sleep = clock, clock.sleep
    assert check(checker, b"known", b"pw") == "known"
    start = clock.now
    assert isinstance(check(checker, b"\xff\xfe", b"pw"), UnauthorizedLogin)
    assert clock.now - start == pytest.approx(0.3 * 1.1 + 0.01)
