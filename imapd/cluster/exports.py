# -*- test-case-name: tests.imapd.cluster.test_exports -*-
"""
The user -> owner map for MTAs and webmail that cannot ask us live.

    tsv        user, hash, owner address, IMAP port, LMTP port (a header line)
    json       {"epoch": ..., "hosts": [...], "users": {user: address}}
    transport  Postfix transport(5): "user@domain lmtp:inet:ADDR:PORT"
    qgrp       sendmail access.db queue groups: "QGRP:user@domain GROUP",
               GROUP the owner's queue group (L{queue_group}), to be
               declared with QUEUE_GROUP() in sendmail.mc

Owners are the current ones (placement, else ring); users with no owner
(no host up) are left out of transport and qgrp, so the MTA falls back to
its default and queues.
"""

from __future__ import annotations

import json
import os
from typing import Iterable, Optional

from imapd.cluster.owner import Directory

__all__ = ["FORMATS", "ExportError", "export", "queue_group", "transport_nexthop", "users_of",
           "write_export_files", "write_file"]

FORMATS = ("tsv", "json", "transport", "qgrp")


def queue_group(address: str) -> str:
    """A sendmail queue group name for a host: letters, digits and _ only."""
    return "imapd_" + "".join(c if c.isalnum() else "_" for c in address)


def transport_nexthop(host) -> str:
    """Postfix's answer for a host: deliver by LMTP over TCP to it."""
    address = f"[{host.address}]" if ":" in host.address else host.address
    return f"lmtp:inet:{address}:{host.lmtp_port}"


def _address(user: str, domain: str) -> str:
    return user if "@" in user or not domain else f"{user}@{domain}"


def export(fmt: str, users: Iterable[str], directory: Directory, domain: str = "",
           now: Optional[float] = None) -> str:
    """
    The map in C{fmt} for C{users}.  Looks up every user without recording
    placements (an export is not a login).
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r} (formats: {', '.join(FORMATS)})")
    rows = []
    epoch = directory.hosts.table().epoch
    for user in sorted(set(users)):
        status = directory.status(user, now)
        rows.append((user, status))
    lines = []
    if fmt == "tsv":
        lines.append("#user\thash\towner\timap_port\tlmtp_port")
        for user, s in rows:
            h = s.current
            lines.append("\t".join([user, str(s.hash), h.address if h else "-",
                                    str(h.port) if h else "-", str(h.lmtp_port) if h else "-"]))
    elif fmt == "json":
        table = directory.hosts.table()
        data = {"epoch": epoch, "hosts": [h.to_json() for h in table.hosts],
                "users": {u: (s.current.address if s.current else None) for u, s in rows}}
        return json.dumps(data, indent=1) + "\n"
    elif fmt == "transport":
        lines.append(f"# imapd cluster map, host table epoch {epoch}; postmap this file")
        for user, s in rows:
            if s.current is not None:
                lines.append(f"{_address(user, domain)}\t{transport_nexthop(s.current)}")
    else:
        lines.append(f"# imapd cluster queue groups, host table epoch {epoch}")
        for user, s in rows:
            if s.current is not None:
                lines.append(f"QGRP:{_address(user, domain)}\t{queue_group(s.current.address)}")
    return "\n".join(lines) + "\n"


class ExportError(Exception):
    """An export cannot be made or written; the text says why."""


def users_of(config) -> tuple[str, ...]:
    """The users to export: every name of the passwd-file."""
    from imapd.auth.passwdfile import PasswdFile

    path = config.auth.passwd_file or os.path.join(config.server.data_dir, "passwd")
    if not os.path.isfile(path):
        raise ExportError(f"no passwd-file at {path} to list users from "
                          f"(option auth.passwd_file)")
    return PasswdFile(path).users()


def write_file(path: str, text: str) -> None:
    """Replace C{path} atomically (temporary file, fsync, rename)."""
    from storage.errors import StoreError
    from storage.maildir.files import atomic_write

    try:
        atomic_write(path, text.encode("utf-8"), mode=0o644)
    except StoreError as e:
        raise ExportError(str(e)) from None


def write_export_files(config, directory) -> None:
    """
    Rewrite the files of C{[cluster] export_files} (after a change of the
    host table: by imapd-admin, or by the health checks).  Blocking.
    """
    section = config.cluster
    if not section.export_files:
        return
    users = users_of(config)
    for item in section.export_files:
        fmt, _, path = item.partition(":")
        write_file(path, export(fmt, users, directory, section.export_domain))
