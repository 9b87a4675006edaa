"""
The test mounts behave like NFS clients: if these fail, the NFS tests of
the stores prove nothing.
"""

from __future__ import annotations

import fcntl
import os
import time

from nfsmount import NFSOptions


def test_listing_is_stale_until_the_cache_expires(nfs_mounts):
    a, b = nfs_mounts(2, NFSOptions(acregmin=1, acdirmin=1, link_replay=0, clock_offset=0))
    os.listdir(b.path)                       # B caches the empty listing
    (a.path / "new").write_text("x")
    assert "new" not in os.listdir(b.path)   # a name made elsewhere is not listed yet
    assert (b.path / "new").read_text() == "x"   # but open() finds it
    time.sleep(1.3)
    assert "new" in os.listdir(b.path)


def test_chown_to_the_same_owner_flushes_a_directory(nfs_mounts):
    a, b = nfs_mounts(2, NFSOptions(acregmin=5, acdirmin=5, link_replay=0, clock_offset=0))
    os.listdir(b.path)
    (a.path / "new").write_text("x")
    st = os.stat(b.path)
    os.chown(b.path, st.st_uid, st.st_gid)
    assert "new" in os.listdir(b.path)


def test_file_size_is_cached_but_open_revalidates(nfs_mounts):
    a, b = nfs_mounts(2, NFSOptions(acregmin=5, acdirmin=5, link_replay=0, clock_offset=0))
    (a.path / "f").write_bytes(b"12345")
    assert os.stat(b.path / "f").st_size == 5
    with open(a.path / "f", "ab") as f:
        f.write(b"678")
    assert os.stat(b.path / "f").st_size == 5          # attribute cache
    with open(b.path / "f", "rb") as f:                # close-to-open
        assert os.fstat(f.fileno()).st_size == 8


def test_link_may_say_eexist_after_succeeding(nfs_mounts):
    (a,) = nfs_mounts(1, NFSOptions(acregmin=0, acdirmin=0, link_replay=1.0, clock_offset=0))
    (a.path / "unique").write_text("x")
    try:
        os.link(a.path / "unique", a.path / "name.lock")
        replayed = False
    except FileExistsError:
        replayed = True
    assert replayed
    assert os.stat(a.path / "unique").st_nlink == 2


def test_clock_offset_and_unshared_fcntl_locks(nfs_mounts):
    a, b = nfs_mounts(2, NFSOptions(acregmin=0, acdirmin=0, link_replay=0, clock_offset=30))
    before = time.time()
    (a.path / "f").write_text("x")
    assert os.stat(a.path / "f").st_mtime > before + 20
    # flock() conflicts between two open files even within one process, so
    # the control (same mount) shows the check can fail.
    with open(a.path / "f", "r+") as fa, open(a.path / "f", "r+") as fa2, \
            open(b.path / "f", "r+") as fb:
        fcntl.flock(fa, fcntl.LOCK_EX | fcntl.LOCK_NB)
        try:
            fcntl.flock(fa2, fcntl.LOCK_EX | fcntl.LOCK_NB)
            same_mount_conflicts = False
        except BlockingIOError:
            same_mount_conflicts = True
        assert same_mount_conflicts
        fcntl.flock(fb, fcntl.LOCK_EX | fcntl.LOCK_NB)   # not seen across mounts
