"""
NFS-like mounts for tests: C{../shared/nfsfuse/nfsfuse.py} run as a
subprocess over a directory.

Each mount of one source directory is one "NFS client" with its own
attribute and listing caches, link() replies that may be replayed as
EEXIST, a clock offset on file times, and fcntl/flock locks that other
mounts do not see (the nfsfuse README lists the behaviours).  Tests mount
one mail directory two or three times and give each server process or MDA
its own mount, as nodes of a cluster would have.

Needs root, C{/dev/fuse}, C{fusermount3} and the C{mfusepy} package (the
C{test} extra installs it; C{.ci/run} installs fuse3).  A missing piece is
a test failure naming it, never a skip: these tests are what shows that
the stores hold on NFS.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

SHARED = next(p / "shared" for p in Path(__file__).resolve().parents
              if (p / "shared" / "nfsfuse").is_dir())
NFSFUSE = SHARED / "nfsfuse" / "nfsfuse.py"
RACYFUSE = Path(__file__).resolve().with_name("racyfuse.py")
#: Seconds a mount may take to appear.
MOUNT_TIMEOUT = 20.0


@dataclass(frozen=True)
class NFSOptions:
    """
    The behaviours of one mount; 0 turns one off.  The defaults are the
    issue's scenario: 3 s caches, 5% link replay, 2 s clock offset.
    """

    acregmin: float = 3.0
    acdirmin: float = 3.0
    link_replay: float = 0.05
    clock_offset: float = 2.0
    #: Above 0: mount with racyfuse.py, whose attribute fetches are late
    #: with this probability (nfsfuse's getattr race made wide).
    getattr_lag: float = 0.0
    #: With C{getattr_lag}: only files of this name are late ("": all),
    #: by up to this many seconds.
    lag_only: str = ""
    lag_seconds: float = 0.1
    #: With C{getattr_lag}: a file of the thread ids whose stats are late.
    lag_tids: str = ""
    #: With C{getattr_lag}: opens return up to this late after dropping
    #: the cached attributes.
    open_lag: float = 0.0

    def argv(self) -> list[str]:
        extra = []
        if self.getattr_lag > 0:
            extra = ["--getattr-lag", str(self.getattr_lag),
                     "--lag-seconds", str(self.lag_seconds)]
            if self.lag_only:
                extra += ["--lag-only", self.lag_only]
            if self.lag_tids:
                extra += ["--lag-tids", self.lag_tids]
            if self.open_lag > 0:
                extra += ["--open-lag", str(self.open_lag)]
        return ["--acregmin", str(self.acregmin), "--acdirmin", str(self.acdirmin),
                "--link-replay", str(self.link_replay), "--clock-offset", str(self.clock_offset),
                *extra]

    @property
    def program(self) -> Path:
        """nfsfuse itself, or the project's racyfuse.py around it."""
        return RACYFUSE if self.getattr_lag > 0 else NFSFUSE


def missing_requirements() -> list[str]:
    """What this machine lacks for an nfsfuse mount (empty: nothing)."""
    missing = []
    if os.geteuid() != 0:
        missing.append("root")
    if not os.path.exists("/dev/fuse"):
        missing.append("/dev/fuse")
    if shutil.which("fusermount3") is None:
        missing.append("fusermount3 (apt-get install fuse3)")
    try:
        import mfusepy  # noqa: F401
    except Exception as e:  # ImportError, or OSError when libfuse3 is missing
        missing.append(f"mfusepy ({e})")
    return missing


@dataclass
class NFSMount:
    """One running nfsfuse mount of C{source} on C{path}."""

    source: Path
    path: Path
    options: NFSOptions = field(default_factory=NFSOptions)
    process: subprocess.Popen | None = None

    @property
    def log_path(self) -> Path:
        return self.path.with_name(self.path.name + ".nfsfuse.log")

    def start(self) -> "NFSMount":
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(self.options.program), str(self.source), str(self.path),
                 *self.options.argv()],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + MOUNT_TIMEOUT
        while not os.path.ismount(self.path):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"nfsfuse mount of {self.path} failed:\n"
                                   + self.log_path.read_text(errors="replace"))
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        """Unmount (lazily if busy) and end the process."""
        if self.process is None:
            return
        subprocess.run(["fusermount3", "-u", str(self.path)], capture_output=True)
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            subprocess.run(["fusermount3", "-u", "-z", str(self.path)], capture_output=True)
            self.process.kill()
            self.process.wait()
        self.process = None

    def __enter__(self) -> "NFSMount":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def mounts(source: Path, where: Path, count: int,
           options: NFSOptions | list[NFSOptions] = NFSOptions()) -> list[NFSMount]:
    """
    Start C{count} mounts of C{source} as C{where/node0}, C{where/node1},
    ...; C{options} is one for all or one per mount.  The caller stops
    them (the C{nfs_mounts} fixture does).
    """
    per_mount = options if isinstance(options, list) else [options] * count
    started = []
    try:
        for i in range(count):
            started.append(NFSMount(Path(source), Path(where) / f"node{i}", per_mount[i]).start())
    except BaseException:
        for m in started:
            m.stop()
        raise
    return started
