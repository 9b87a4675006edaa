# -*- test-case-name: tests.imapd.process.test_privileges -*-
"""
Becoming a user: what a system user's mail worker does once, right after
it is forked and before it touches any mail.
"""

from __future__ import annotations

import grp
import os
import pwd
from typing import Optional

from imapd.auth.userdb import UserRecord

__all__ = ["PrivilegeError", "become_user"]


class PrivilegeError(Exception):
    """The process cannot become the user; the message says why."""


def become_user(record: UserRecord, privileged_group: Optional[str] = None) -> None:
    """
    Take C{record}'s uid, gid and supplementary groups (initgroups(3), as
    login(1) would) for good: real, effective and saved ids all change,
    so nothing later can take root back.

    @param privileged_group: a group name (e.g. C{mail}) kept as the saved
        gid only, so that the process can switch its effective gid to it
        while it dotlocks in a spool directory and back
        (L{locking.dotlock}); None or empty: none.
    @raises PrivilegeError: the record has no uid, or a call failed.
    """
    if record.uid is None:
        raise PrivilegeError(f"user {record.name!r} has no uid")
    gid = record.gid if record.gid is not None else record.uid
    saved = gid
    if privileged_group:
        try:
            saved = grp.getgrnam(privileged_group).gr_gid
        except KeyError:
            raise PrivilegeError(f"no group {privileged_group!r}") from None
    try:
        try:
            name = pwd.getpwuid(record.uid).pw_name
        except KeyError:
            name = None
        if name is not None:
            os.initgroups(name, gid)
        else:
            os.setgroups([gid])
        os.setresgid(gid, gid, saved)
        os.setresuid(record.uid, record.uid, record.uid)
    except OSError as e:
        raise PrivilegeError(f"cannot become {record.name!r} (uid {record.uid}): "
                             f"{e.strerror}") from None
