# -*- test-case-name: tests.imapd.auth.test_checker -*-
"""
Tests for L{imapd.auth.checker}: the cred checker over a passwd-file, run
synchronously through the runner seam.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import IUsernamePassword, UsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.cred.portal import IRealm, Portal
from twisted.internet.threads import deferToThread
from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import Interface, implementer
from zope.interface.verify import verifyObject

from imapd.auth.checker import PasswdFileChecker
from imapd.auth.passwdfile import PasswdFile
from imapd.auth.schemes import hash_password

PASSWORD = "cörrect horse"


def synchronous(f, *args):
    """
    A runner that calls C{f} at once, in this thread.
    """
    return f(*args)


class IThing(Interface):
    """
    The avatar interface of the test realm.
    """


@implementer(IRealm)
class EchoRealm:
    """
    A realm whose avatar is the avatar id it was given.
    """

    def requestAvatar(self, avatarId, mind, *interfaces):
        """
        Return the avatar id itself as the avatar.
        """
        return interfaces[0], avatarId, lambda: None


class PasswdFileCheckerTests(SynchronousTestCase):
    """
    Tests for L{PasswdFileChecker}.
    """

    def setUp(self):
        """
        A passwd-file with a hashed user, a user without a password, and a
        user with Dovecot's C{nologin} field.
        """
        directory = tempfile.TemporaryDirectory()
        self.addCleanup(directory.cleanup)
        self.path = Path(directory.name) / "users"
        stored = hash_password(PASSWORD, "SSHA512")
        self.path.write_text(
            f"alice@example.org:{stored}\n"
            "nopass::1000:1000\n"
            f"locked:{stored}::::::nologin reason=gone\n",
            encoding="utf-8",
        )
        self.checker = PasswdFileChecker(PasswdFile(self.path), runner=synchronous)

    def check(self, user, password):
        """
        Run the checker on a user name and password.

        @return: the resulting L{Deferred}.
        """
        return self.checker.requestAvatarId(UsernamePassword(user, password))

    def test_interface(self):
        """
        The checker provides L{ICredentialsChecker} for username/password
        credentials.
        """
        self.assertTrue(verifyObject(ICredentialsChecker, self.checker))
        self.assertEqual(self.checker.credentialInterfaces, (IUsernamePassword,))

    def test_default_runner_is_thread_pool(self):
        """
        Without a runner, the blocking check goes to the reactor's thread
        pool.
        """
        checker = PasswdFileChecker(PasswdFile(self.path))
        self.assertIs(checker._runner, deferToThread)

    def test_success_str(self):
        """
        The right password gives the user name as the avatar id.
        """
        self.assertEqual(self.successResultOf(self.check("alice@example.org", PASSWORD)),
                         "alice@example.org")

    def test_success_bytes(self):
        """
        Credentials as the IMAP layer passes them, UTF-8 bytes, work too,
        and the avatar id is still a str.
        """
        result = self.successResultOf(
            self.check(b"alice@example.org", PASSWORD.encode("utf-8")))
        self.assertEqual(result, "alice@example.org")
        self.assertIsInstance(result, str)

    def test_wrong_password(self):
        """
        A wrong password fails with L{UnauthorizedLogin}.
        """
        self.failureResultOf(self.check("alice@example.org", "correct horse"),
                             UnauthorizedLogin)

    def test_unknown_user(self):
        """
        An unknown user fails the same way as a wrong password, with the
        same message.
        """
        unknown = self.failureResultOf(self.check("mallory", PASSWORD), UnauthorizedLogin)
        wrong = self.failureResultOf(self.check("alice@example.org", "x"), UnauthorizedLogin)
        self.assertEqual(str(unknown.value), str(wrong.value))

    def test_user_name_exact(self):
        """
        User names are compared exactly, as written in the file.
        """
        self.failureResultOf(self.check("Alice@example.org", PASSWORD), UnauthorizedLogin)

    def test_no_password(self):
        """
        A user with an empty password field cannot log in, even with an
        empty password.
        """
        self.failureResultOf(self.check("nopass", ""), UnauthorizedLogin)

    def test_nologin(self):
        """
        Dovecot's C{nologin} extra field refuses the login even with the
        right password.
        """
        self.failureResultOf(self.check("locked", PASSWORD), UnauthorizedLogin)

    def test_non_utf8_user(self):
        """
        A user name that is not UTF-8 is refused, not an error.
        """
        self.failureResultOf(self.check(b"\xffalice", PASSWORD), UnauthorizedLogin)

    def test_password_never_logged(self):
        """
        Neither the password tried nor the stored hash appears in any log
        event, on success or on failure; the user name and reason do.
        """
        stored = self.path.read_text().split(":")[1]
        with capturedLogs() as events:
            self.successResultOf(self.check("alice@example.org", PASSWORD))
            self.failureResultOf(self.check("alice@example.org", "s3cr3t-guess"))
            self.failureResultOf(self.check("mallory", "s3cr3t-guess"))
        texts = [formatEvent(e) + repr(e) for e in events]
        self.assertTrue(any("wrong password" in t and "alice@example.org" in t for t in texts))
        self.assertTrue(any("unknown user" in t for t in texts))
        for text in texts:
            self.assertNotIn("s3cr3t-guess", text)
            self.assertNotIn(PASSWORD, text)
            self.assertNotIn(stored, text)

    def test_runner_used(self):
        """
        The check runs through the runner (so that it can be off the
        reactor thread), whose Deferred is what the caller gets.
        """
        calls = []

        def runner(f, *args):
            calls.append(f)
            return synchronous(f, *args)

        checker = PasswdFileChecker(PasswdFile(self.path), runner=runner)
        d = checker.requestAvatarId(UsernamePassword("alice@example.org", PASSWORD))
        self.assertEqual(self.successResultOf(d), "alice@example.org")
        self.assertEqual(len(calls), 1)

    def test_file_edit_seen(self):
        """
        A password changed in the file takes effect at the next login.
        """
        self.successResultOf(self.check("alice@example.org", PASSWORD))
        self.path.write_text(f"alice@example.org:{hash_password('new', 'PLAIN')}:1\n")
        self.failureResultOf(self.check("alice@example.org", PASSWORD), UnauthorizedLogin)
        self.successResultOf(self.check("alice@example.org", "new"))

    def test_portal(self):
        """
        Through a L{Portal}, a good login reaches the realm with the user
        name as avatar id; a bad one fails with L{UnauthorizedLogin}.
        """
        portal = Portal(EchoRealm(), [self.checker])
        iface, avatar, _logout = self.successResultOf(
            portal.login(UsernamePassword(b"alice@example.org", PASSWORD.encode()), None, IThing))
        self.assertEqual((iface, avatar), (IThing, "alice@example.org"))
        self.failureResultOf(
            portal.login(UsernamePassword(b"alice@example.org", b"no"), None, IThing),
            UnauthorizedLogin)


class RefusalLineTests(SynchronousTestCase):
    """
    Issue 16 item 8: a refused login is one info line, the session's
    (with the client's address); the checker's own line, without the
    address, is a debug line, and the reason travels with the refusal.
    """

    def test_refusal_carries_reason_and_logs_at_debug(self):
        """
        L{PasswdFileChecker} refuses with L{LoginRefused} whose reason is
        for the log; its own events are at debug level only.
        """
        from twisted.logger import LogLevel

        from imapd.auth.checker import LoginRefused

        directory = tempfile.TemporaryDirectory()
        self.addCleanup(directory.cleanup)
        path = Path(directory.name) / "users"
        path.write_text(f"bob:{hash_password(PASSWORD, 'SSHA512')}\n", encoding="utf-8")
        checker = PasswdFileChecker(PasswdFile(path), runner=synchronous)
        with capturedLogs() as events:
            wrong = self.failureResultOf(
                checker.requestAvatarId(UsernamePassword("bob", "nope")), LoginRefused)
            unknown = self.failureResultOf(
                checker.requestAvatarId(UsernamePassword("eve", "nope")), LoginRefused)
        self.assertIn("wrong password", wrong.value.reason)
        self.assertIn("unknown user", unknown.value.reason)
        self.assertEqual(str(wrong.value), str(unknown.value))
        self.assertEqual([e for e in events if e["log_level"] != LogLevel.debug], [])
