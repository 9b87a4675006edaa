# -*- test-case-name: tests.delivery.test_lda -*-
"""
C{imapd-deliver}: a local delivery agent for sendmail, Postfix's
C{mailbox_command}, procmail and C{.forward} pipes, through the same
delivery core as LMTP (L{imapd.delivery.core})::

    imapd-deliver [-c CONFIG] -d USER [-m FOLDER] [-f SENDER] < message

It reads the daemon's configuration file (the passwd-file, the mail
location, C{[quota]}), delivers one message from standard input and says
how it went in its exit status, the sysexits(3) codes MTAs act on:

    0   delivered
    64  EX_USAGE     bad command line
    67  EX_NOUSER    no such user (the MTA bounces)
    73  EX_CANTCREAT the folder named with -m cannot exist
    75  EX_TEMPFAIL  try again later: a lock held too long, a full disk,
                     a store that fails (the MTA keeps the message queued)
    77  EX_NOPERM    refused for good: over quota, too big
    78  EX_CONFIG    the configuration cannot be used
"""

from __future__ import annotations

import argparse
import sys
from typing import BinaryIO, Optional

__all__ = ["main", "EX_OK", "EX_USAGE", "EX_NOUSER", "EX_CANTCREAT", "EX_TEMPFAIL",
           "EX_NOPERM", "EX_CONFIG"]

# sysexits.h (the os module has them on POSIX only; spelled out here).
EX_OK = 0
EX_USAGE = 64
EX_NOUSER = 67
EX_CANTCREAT = 73
EX_TEMPFAIL = 75
EX_NOPERM = 77
EX_CONFIG = 78


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        self.print_usage(sys.stderr)
        self.exit(EX_USAGE, f"{self.prog}: {message}\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="imapd-deliver",
        description="Deliver one message from standard input into a user's mailbox, "
                    "as imapd's LMTP would.")
    parser.add_argument("-c", "--config", help="imapd's TOML configuration file")
    parser.add_argument("-d", "--destination", required=True, metavar="USER",
                        help="the user (a login name or an address)")
    parser.add_argument("-m", "--mailbox", metavar="FOLDER",
                        help="deliver to this folder if it exists (else INBOX)")
    parser.add_argument("-f", "--from", dest="sender", metavar="SENDER",
                        help="envelope sender for Return-Path (default: the From_ line "
                             "at the start of the message, else MAILER-DAEMON)")
    return parser


def _from_line(message_file: BinaryIO) -> tuple[Optional[str], bytes]:
    """
    A leading mbox C{From } line (Postfix's pipe flag F, procmail) is no
    part of the message: drop it, and return its sender.
    """
    head = message_file.readline(8192)
    if head.startswith(b"From "):
        parts = head.split()
        sender = parts[1].decode("utf-8", "replace") if len(parts) > 1 else None
        return sender, b""
    return None, head


def _say(text: str) -> None:
    sys.stderr.write(f"imapd-deliver: {text}\n")


def deliver(args, stdin: BinaryIO) -> int:
    """Do one delivery for parsed C{args}; the exit status."""
    from conf import ConfigError, load_config
    from imapd.auth.errors import AuthUnavailable
    from imapd.defaults import prepare_delivery
    from imapd.delivery.core import (BadAddress, CannotCreate, Deliverer, DeliveryError,
                                     Message, UnknownUser, delivery_lookup)
    from imapd.tap import _quota_policy

    try:
        config = load_config(args.config)
        effective = prepare_delivery(config)
        lookup = delivery_lookup(config, effective)
    except ConfigError as e:
        _say(str(e))
        return EX_CONFIG
    except OSError as e:
        _say(f"{e.filename}: {e.strerror}")
        return EX_CONFIG
    deliverer = Deliverer(effective.mail_location, lookup, effective.index_dir,
                          _quota_policy(config.quota), config.lmtp.recipient_delimiter,
                          hostname=effective.hostname)
    limit = config.lmtp.max_message_size or config.limits.max_literal
    try:
        recipient = deliverer.resolve(args.destination, folder=args.mailbox)
        status = _become(recipient, config)
        if status is not None:
            return status
        sender, first = _from_line(stdin)
        message = Message.from_file(stdin, limit, first)
        try:
            mailbox, uid = deliverer.deliver(recipient, message, args.sender or sender or "",
                                             strict_folder=args.mailbox is not None)
        finally:
            message.close()
    except UnknownUser as e:
        _say(e.text)
        return EX_NOUSER
    except AuthUnavailable as e:
        # The user database (LDAP) did not answer: the MTA keeps the mail.
        _say(f"user database unavailable: {e}")
        return EX_TEMPFAIL
    except BadAddress as e:
        _say(e.text)
        return EX_USAGE
    except CannotCreate as e:
        _say(e.text)
        return EX_CANTCREAT
    except DeliveryError as e:
        _say(f"{e.status} {e.text}")
        return EX_TEMPFAIL if e.temporary else EX_NOPERM
    return EX_OK


#: Modules a delivery imports on its way, beyond the daemon's warm set.
_DELIVERY_MODULES = ("imapd.account", "imapd.commands.quota", "imapd.errors", "imapd.server",
                     "storage.registry", "locking.dotlock")


def _become(recipient, config) -> Optional[int]:
    """
    Run as a system user's own uid before touching the store: an LDA
    started as root (sendmail's local mailer, Postfix's C{mailbox_command}
    as root) for a user with a uid of its own drops to it for good
    (L{imapd.process.privileges.become_user}, as that user's mail worker
    does), so every file it makes is the user's.  None when that went
    well or nothing was to do, else the exit status.
    """
    import importlib
    import os

    from imapd.process.privileges import PrivilegeError, become_user
    from imapd.tap import WARM_MODULES

    record = recipient.record
    if os.geteuid() != 0 or record is None or record.uid is None:
        return None
    # Everything the store work imports, imported while root: the user may
    # not be able to read the interpreter's or the checkout's files (the
    # daemon's workers are forked from such an imported image too).
    for name in WARM_MODULES + _DELIVERY_MODULES:
        importlib.import_module(name)
    try:
        become_user(record, config.service.mail_privileged_group or None)
    except PrivilegeError as e:
        _say(f"4.3.0 {e}")
        return EX_TEMPFAIL
    return None


def main(argv: Optional[list[str]] = None) -> int:
    """The console script's entry point."""
    args = _parser().parse_args(argv)
    try:
        return deliver(args, sys.stdin.buffer)
    except Exception as e:  # anything unforeseen: keep the mail queued
        _say(f"temporary failure: {type(e).__name__}: {e}")
        return EX_TEMPFAIL


if __name__ == "__main__":
    sys.exit(main())
