# -*- test-case-name: tests.imapd.auth -*-
"""
Authentication for imapd: Dovecot-compatible password schemes and
passwd-files, a L{twisted.cred} checker, and no-I/O SASL mechanisms for
IMAP AUTHENTICATE.

The realm that turns an authenticated user into a mailbox account lives in
C{imapd.auth.realm}, which this package does not import.
"""

from imapd.auth.authenticator import Authenticator, build_authenticator
from imapd.auth.checker import PasswdFileChecker
from imapd.auth.passwdfile import PasswdEntry, PasswdFile
from imapd.auth.sasl import (
    MECHANISMS,
    Challenge,
    Credentials,
    LoginMechanism,
    PlainMechanism,
    SaslError,
)
from imapd.auth.schemes import hash_password, verify_password

__all__ = [
    "Authenticator",
    "build_authenticator",
    "MECHANISMS",
    "Challenge",
    "Credentials",
    "LoginMechanism",
    "PasswdEntry",
    "PasswdFile",
    "PasswdFileChecker",
    "PlainMechanism",
    "SaslError",
    "hash_password",
    "verify_password",
]
