# -*- test-case-name: tests.storage.test_storage_registry -*-
"""
Stores by driver name (as Dovecot's C{mail-storage-register.c} does):
L{open_store} turns a C{mail_location} into an L{IStore}.
"""

from __future__ import annotations

import os
from typing import Callable

from twisted.logger import Logger

from storage.errors import StoreError
from storage.interfaces import IStore
from storage.location import MailLocation, parse_location

__all__ = ["STORES", "open_store"]

_log = Logger(namespace="storage")


def _open_maildir(location: MailLocation, user: str, index_dir: str | None) -> IStore:
    from storage.maildir.store import MaildirStore, make_maildir

    # Create the root Maildir on first use, private to the user.
    try:
        make_maildir(location.root)
        if location.inbox:
            make_maildir(location.inbox)
    except OSError as e:
        raise StoreError(f"cannot create the Maildir {location.root}: {e.strerror or e}") from e
    return MaildirStore(location.root, user, inbox=location.inbox, index_dir=index_dir)


def _open_mbox(location: MailLocation, user: str, index_dir: str | None) -> IStore:
    from storage.mbox.store import open_mbox_store

    return open_mbox_store(location, user, index_dir)


def _present(location: MailLocation) -> bool:
    if location.driver == "mbox":
        # mbox falls back between ~/mail and ~/Mail (folder_root).
        from storage.mbox.store import folder_root

        return os.path.isdir(folder_root(location.root))
    return os.path.isdir(location.root)


#: driver name -> factory(location, user, index_dir)
STORES: dict[str, Callable[[MailLocation, str, str | None], IStore]] = {
    "maildir": _open_maildir,
    "mbox": _open_mbox,
}


def open_store(
    location: MailLocation | str,
    user: str,
    home: str | None,
    index_dir: str | None = None,
    existing: bool = False,
) -> IStore:
    """
    Open the store of C{user} at C{location}.

    @param location: a L{MailLocation} or a C{mail_location} string,
        expanded for C{user} and C{home}.
    @param index_dir: the per-node index directory; defaults to the
        location's C{INDEX=}.
    @param existing: open only a store that is there already; the
        factories create a missing root for a login, which a reader of
        another user's mail (URLAUTH) must not do.
    @raises StoreError: no store is registered for the driver, or the
        location is unusable (or, with C{existing}, missing).
    """
    if isinstance(location, str):
        location = parse_location(location, user, home)
    factory = STORES.get(location.driver)
    if factory is None:
        raise StoreError(
            f"the {location.driver!r} mail store is not implemented yet "
            f"(available: {', '.join(sorted(STORES))})"
        )
    if not os.path.isabs(location.root):
        raise StoreError(f"mail root {location.root!r} is not an absolute path")
    present = _present(location)
    if existing and not present:
        raise StoreError(f"mail root {location.root!r} does not exist")
    store = factory(location, user, index_dir or location.index)
    if not present:
        # A sysadmin should see it: a first login, or a mistyped location
        # or an unmounted NFS share filling the local disk (issue 16).
        _log.info("Created the mail root {root} for user {user}", root=location.root, user=user)
    return store
