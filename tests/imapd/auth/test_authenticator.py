"""
Tests for L{imapd.auth.authenticator}: a password check, then the user
database, synchronously through the runner seams.
"""

from __future__ import annotations

import os
import shutil
import tempfile

from twisted.cred.error import UnauthorizedLogin
from twisted.trial.unittest import SynchronousTestCase

from imapd.auth.authenticator import Authenticator, PasswdFileUserDB
from imapd.auth.checker import PasswdFileChecker
from imapd.auth.passwdfile import PasswdFile
from imapd.auth.schemes import hash_password
from imapd.auth.userdb import UserRecord


def synchronous(f, *args):
    return f(*args)


class AuthenticatorTests(SynchronousTestCase):
    def setUp(self):
        # Not trial's mktemp(): under pytest it writes below the working
        # directory, i.e. into the checkout.
        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory)
        path = os.path.join(directory, "passwd")
        stored = hash_password(b"secret")
        with open(path, "w") as f:
            f.write(f"alice:{stored}:1001:1002::/home/alice::userdb_mail=maildir:~/M\n"
                    f"virt:{stored}::::/srv/virt::\n")
        passwd = PasswdFile(path)
        checker = PasswdFileChecker(passwd, runner=synchronous)
        checker.sleep = lambda s: None
        self.auth = Authenticator(checker, PasswdFileUserDB(passwd), runner=synchronous)

    def test_passwd_fields_become_the_record(self):
        """uid, gid, home and extra fields of the passwd-file are kept."""
        record = self.successResultOf(self.auth.authenticate(b"alice", b"secret"))
        self.assertEqual(record, UserRecord("alice", 1001, 1002, "/home/alice"))
        self.assertEqual(record.extra, {"userdb_mail": "maildir:~/M"})
        self.assertTrue(record.system)

    def test_virtual_user_has_no_uid(self):
        record = self.successResultOf(self.auth.authenticate(b"virt", b"secret"))
        self.assertEqual((record.uid, record.gid, record.home), (None, None, "/srv/virt"))
        self.assertFalse(record.system)

    def test_wrong_password_refused(self):
        self.failureResultOf(self.auth.authenticate(b"alice", b"wrong"), UnauthorizedLogin)
