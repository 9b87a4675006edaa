"""
URLAUTH mailbox access keys in the mail store (L{storage.urlauthkeys}):
made once, kept per mailbox, reset one or all, a damaged line costs only
that mailbox's key, and two processes making keys at once lose neither.
"""

import multiprocessing
import os

from storage.urlauthkeys import KEY_BYTES, MailboxKeys


def test_get_create_reset(tmp_path):
    """A key is made on demand, stays the same, and RESETKEY replaces it."""
    keys = MailboxKeys(str(tmp_path / "k" / "urlauth-keys"), fsync=False)
    assert keys.get("INBOX") is None
    a = keys.get("INBOX", create=True)
    assert len(a) == KEY_BYTES and keys.get("INBOX") == a
    b = keys.get("Sent", create=True)
    assert oct(os.stat(keys.path).st_mode & 0o777) == "0o600"
    keys.reset("INBOX")
    assert keys.get("INBOX") is None and keys.get("Sent") == b
    assert keys.get("INBOX", create=True) not in (a, None)
    keys.reset()
    assert keys.get("Sent") is None and keys.get("INBOX") is None


def test_damaged_line_only_loses_its_mailbox(tmp_path):
    """A line that does not parse is skipped; the others stay valid."""
    path = tmp_path / "urlauth-keys"
    keys = MailboxKeys(str(path), fsync=False)
    good = keys.get("Sent", create=True)
    path.write_bytes(path.read_bytes() + b"zz-not-hex\tINBOX\nno tab here\n")
    assert keys.get("Sent") == good and keys.get("INBOX") is None


def _make(path, names):
    keys = MailboxKeys(path, fsync=False)
    for name in names:
        keys.get(name, create=True)


def test_two_processes_keep_every_key(tmp_path):
    """Creating keys from two processes at once: the dotlock keeps both sets."""
    path = str(tmp_path / "urlauth-keys")
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_make, args=(path, [f"{p}-{i}" for i in range(20)]))
             for p in ("a", "b")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    keys = MailboxKeys(path, fsync=False)
    assert all(keys.get(f"{p}-{i}") is not None for p in ("a", "b") for i in range(20))
