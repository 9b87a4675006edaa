"""
Fixtures of the NFS tests: C{nfs_mounts(count, options)} mounts one fresh
source directory C{count} times through nfsfuse (see nfsmount.py) and
unmounts them after the test.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from nfsmount import NFSOptions, missing_requirements, mounts  # noqa: E402


@pytest.fixture
def nfs_mounts(tmp_path):
    """
    C{nfs_mounts(count, options=NFSOptions(), source=None)} -> the started
    mounts (C{.path} is the mount point, C{.source} the shared directory).
    Fails, never skips, when the machine cannot mount (the list says why).
    """
    missing = missing_requirements()
    if missing:
        pytest.fail("nfsfuse mounts need: " + ", ".join(missing))
    started = []

    def make(count: int, options=NFSOptions(), source: Path | None = None):
        src = source or tmp_path / f"export{len(started)}"
        src.mkdir(parents=True, exist_ok=True)
        group = mounts(src, tmp_path / f"mnt{len(started)}", count, options)
        started.extend(group)
        return group

    yield make
    for m in reversed(started):
        m.stop()
