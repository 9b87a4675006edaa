"""
C{[mail] nfs_storage}, C{nfs_index} and the mbox lock defaults
(storage/nfs.py): "auto" tells a shared filesystem (here an nfsfuse
mount, a FUSE filesystem) from a local one, the daemon logs what it
decided, and a shared index directory gets a per-host subdirectory.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from nfsmount import NFSOptions

from storage import nfs

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))

from e2e_helpers import start_server  # noqa: E402

QUICK = NFSOptions(acregmin=1, acdirmin=1, link_replay=0, clock_offset=0)

MOUNTINFO = """\
22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw
40 22 0:40 / /srv/mail rw - nfs4 server:/export rw
41 40 0:41 / /srv/mail/local\\040dir rw - ext4 /dev/sdb1 rw
42 22 0:42 / /mnt/fuse rw - fuse.nfsfuse nfsfuse:/x rw
"""


@pytest.fixture
def settings():
    """Restore the process-wide switches after a test that changes them."""
    yield nfs
    nfs.configure()


def test_fstype_takes_the_longest_mount_point(tmp_path):
    info = tmp_path / "mountinfo"
    info.write_text(MOUNTINFO)
    assert nfs.fstype("/srv/mail/alice", str(info)) == "nfs4"
    assert nfs.fstype("/srv/mail/local dir/bob", str(info)) == "ext4"
    assert nfs.fstype("/srv/mailx", str(info)) == "ext4"
    assert nfs.fstype("/mnt/fuse/a", str(info)) == "fuse.nfsfuse"


def test_auto_on_a_mount_and_on_a_local_directory(nfs_mounts, tmp_path, settings):
    (a,) = nfs_mounts(1, QUICK)
    local = tmp_path / "local"
    local.mkdir()
    assert nfs.is_shared(str(a.path)) is True
    assert nfs.is_shared(str(a.path / "not" / "made" / "yet")) is True
    assert nfs.is_shared(str(local)) is False
    assert nfs.storage_flush(str(a.path)) and not nfs.storage_flush(str(local))
    assert nfs.mbox_locks(str(a.path)) == (("dotlock", "fcntl"), ("dotlock", "fcntl"))
    assert nfs.mbox_locks(str(local)) == (("fcntl",), ("dotlock", "fcntl"))
    settings.configure(storage=False, index=True, read_locks="flock", write_locks="dotlock")
    assert not nfs.storage_flush(str(a.path))
    assert nfs.index_flush(str(local))
    assert nfs.mbox_locks(str(a.path)) == (("flock",), ("dotlock",))
    with pytest.raises(ValueError):
        settings.configure(storage="yes")


def test_flush_dir_shows_a_name_made_elsewhere(nfs_mounts):
    a, b = nfs_mounts(2, NFSOptions(acregmin=30, acdirmin=30, link_replay=0, clock_offset=0))
    import os

    os.listdir(b.path)
    (a.path / "f").write_text("x")
    assert "f" not in os.listdir(b.path)
    nfs.flush_dir(str(b.path))
    assert "f" in os.listdir(b.path)
    assert os.stat(b.path / "f").st_size == 1            # B caches the size
    with open(a.path / "f", "a") as f:
        f.write("yz")
    assert os.stat(b.path / "f").st_size == 1
    assert nfs.fresh_stat(str(b.path / "f")).st_size == 3


def test_the_daemon_says_what_it_decided(nfs_mounts, tmp_path, tls_files):
    """
    Mail and index on a mount: both switches on, the index goes to a
    per-host subdirectory, and the log says so and why.
    """
    (a,) = nfs_mounts(1, QUICK)
    root = tmp_path / "node"
    root.mkdir()
    settings = {"mail": {"location": f"maildir:{a.path}/mail/%u",
                         "index_dir": str(a.path / "index")}}
    server = start_server(root, tls_files, settings)
    try:
        import imaplib

        c = imaplib.IMAP4(server.host, server.port)
        c.starttls(server.ssl_context())
        c.login(server.user, server.password)
        c.append("INBOX", None, None, b"Subject: s\r\nFrom: a@b.example\r\n\r\nbody\r\n")
        c.select("INBOX")
        c.fetch("1", "(ENVELOPE BODYSTRUCTURE)")
        c.logout()
    finally:
        server.daemon.stop()
    log = server.daemon.log()
    assert f"NFS-safe mail storage on: {a.path}/mail is on fuse.nfsfuse" in log, log
    assert "mbox locks: read dotlock+fcntl, write dotlock+fcntl" in log, log
    assert f"Index on shared storage on: {a.path / 'index'} is on fuse.nfsfuse" in log, log
    host_dir = a.source / "index" / socket.gethostname()
    assert f"index {host_dir}," in log.replace(str(a.path), str(a.source)), log
    assert host_dir.is_dir() and any(host_dir.iterdir()), log


def test_a_local_mail_root_keeps_the_fast_paths(tmp_path, tls_files):
    root = tmp_path / "node"
    root.mkdir()
    server = start_server(root, tls_files, {"mail": {"location": f"maildir:{root}/mail/%u"}})
    server.daemon.stop()
    log = server.daemon.log()
    assert f"NFS-safe mail storage off: {root}/mail is on" in log, log
    assert "mbox locks: read fcntl, write dotlock+fcntl" in log, log
    assert "Index on shared storage off" in log, log
