# -*- test-case-name: tests.storage.migrate.test_migrate_maildirs -*-
"""
The UIDs of a Maildir written by UW-IMAP's maildir driver (Eduardo
Chappa's patch for UW-IMAP and Alpine), read only, for a migration:

 - each message's UID is in its file name, C{,u=<uid>} just before the
   C{:2,} info part: C{1030712092.12345.host,u=42:2,S};
 - the UIDVALIDITY and the last UID given are the name of an empty file in
   the Maildir, C{.uidlast.<last uid>.<uidvalidity>} (both zero-padded to
   10 digits).

Some sites' scripts wrote the UID as an info field instead
(C{...:2,S,U42}, C{,U=42}); that form is read too.  Files without a UID
(delivered since the driver last ran) get the next UIDs, as the driver
would give them.
"""

from __future__ import annotations

import os
import re

__all__ = ["UIDLAST_PREFIX", "read_uidlast", "uid_of_name", "is_uw_maildir"]

UIDLAST_PREFIX = ".uidlast."

# ",u=<uid>" anywhere before the info part, or ",U<uid>"/",U=<uid>" as an
# info field after the flags.
_BASE_UID = re.compile(r",u=(\d{1,10})(?=[,:]|$)")
_INFO_UID = re.compile(r",U=?(\d{1,10})(?=,|$)")


def read_uidlast(directory: str) -> tuple[int, int] | None:
    """C{(last uid, uidvalidity)} from the C{.uidlast} file, or C{None}."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return None
    for name in names:
        if name.startswith(UIDLAST_PREFIX):
            last, dot, validity = name[len(UIDLAST_PREFIX):].partition(".")
            if dot and last.isdigit() and validity.isdigit() and 0 < int(validity) < 2**32:
                return int(last), int(validity)
    return None


def uid_of_name(name: str) -> int | None:
    """The UID a file name carries, or C{None}."""
    base, sep, info = name.partition(":")
    m = _BASE_UID.search(base)
    if m is None and sep:
        m = _INFO_UID.search(info)
    if m is None:
        return None
    uid = int(m.group(1))
    return uid if 0 < uid < 2**32 else None


def is_uw_maildir(directory: str, names) -> bool:
    """Whether the Maildir has the UW driver's C{.uidlast} file or UIDs in names."""
    return read_uidlast(directory) is not None or any(uid_of_name(n) for n in names)
