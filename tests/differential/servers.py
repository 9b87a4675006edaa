"""
Both servers of a comparison, started on the same store type: our daemon
(C{tests/e2e/e2e_helpers.start_server}, the real C{twistd -n imapd}) and a
private Dovecot (C{tests/dovecot_helpers.start_dovecot}), each with the
same users and the same C{mail_location} shape.  Used by the differential
harness and by the stress test's command line.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path

from tests.dovecot_helpers import start_dovecot
from tests.e2e.e2e_helpers import start_server

__all__ = ["LOCATIONS", "DOVECOT_EXTRA", "both_servers", "our_server", "dovecot_server",
           "tls_files"]

#: Store -> mail_location, the same for both servers ({d}: the server's root).
LOCATIONS = {
    "maildir": "maildir:{d}/mail/%u",
    "mbox": "mbox:{d}/mail/%u:INBOX={d}/inbox/%u",
}

#: Dovecot settings that make it look like our defaults where a default
#: is a configuration choice, not a protocol rule: one namespace with "/"
#: as the hierarchy separator (ours; Dovecot's Maildir++ default is "."),
#: and IDLE updates within a second (ours poll every 2 s; Dovecot's default
#: check is every 30 s, besides inotify).
DOVECOT_EXTRA = """\
namespace inbox {
  inbox = yes
  separator = /
}
mailbox_idle_check_interval = 1 secs
"""


def tls_files(directory: Path) -> tuple[str, str]:
    """A self-signed certificate for our daemon (it wants one configured)."""
    from imapd.tls import generate_self_signed

    cert, key = str(directory / "cert.pem"), str(directory / "key.pem")
    generate_self_signed(cert, key, "localhost")
    return cert, key


@contextlib.contextmanager
def our_server(root: Path, store: str, users: dict[str, str], tls=None, settings=None):
    """Our daemon on C{store}; yields (host, port)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "inbox").mkdir(exist_ok=True)
    merged = {"mail": {"location": LOCATIONS[store].format(d=root), "index_dir": "index"},
              "log": {"level": "info"}}
    for k, v in (settings or {}).items():
        merged.setdefault(k, {}).update(v)
    server = start_server(root, tls or tls_files(root), merged, users=users)
    try:
        yield server.host, server.port
    finally:
        server.daemon.stop()


@contextlib.contextmanager
def dovecot_server(store: str, users: dict[str, str]):
    """
    A private Dovecot on C{store}; yields (host, port).  Its directory is
    its own under /tmp: Dovecot's unprivileged user must be able to reach
    it, and pytest's temporary directories are private to root.
    """
    root = Path(tempfile.mkdtemp(prefix="dovecot-", dir="/tmp"))
    try:
        (root / "inbox").mkdir()
        server = start_dovecot(root, users, LOCATIONS[store], DOVECOT_EXTRA)
        try:
            yield server.host, server.port
        finally:
            server.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def both_servers(tmp: Path, store: str, users, password: str = "pw", tls=None):
    """Ours and Dovecot on C{store} with C{users}; yields ((h, p), (h, p))."""
    accounts = {u: password for u in users}
    with our_server(tmp / "ours", store, accounts, tls) as ours, \
            dovecot_server(store, accounts) as theirs:
        yield ours, theirs
