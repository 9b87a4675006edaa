"""
Root test fixtures: real system users, a PAM service and a mail spool, for
the tests of system users (issue 14: PAM, C{[userdb] system}, workers that
run as the user, C{mail_privileged_group}).

Everything is made with the system's own tools (C{useradd}, C{chpasswd})
under names no real account has (C{imapdt_ROLE_RANDOM}), and removed
afterwards whatever the test did: users and their groups, the PAM service
file in C{/etc/pam.d}, the directories.  These fixtures need root (CI runs
as root); without it they fail with a message saying so.

Import the fixtures into a test module (or a conftest.py) to use them::

    from tests.system_users import (  # noqa: F401 - fixtures, registered by name
        make_system_user, mail_spool, pam_service, system_root)

The context managers behind them (L{system_user}, L{pam_service_file},
L{spool_directory}, L{public_directory}) serve wider scopes, e.g. a user
shared by a module's tests.
"""

from __future__ import annotations

import grp
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

__all__ = [
    "SystemUser", "system_user", "pam_service_file", "spool_directory", "public_directory",
    "make_system_user", "mail_spool", "pam_service", "system_root", "need_root",
    "MAIL_GROUP", "PAM_TEXT", "wait_for_spool",
]

#: The group of the mail spool (Debian's C{/var/mail} is 2775 root:mail).
MAIL_GROUP = "mail"

#: The test PAM service: pam_unix against /etc/shadow, without the pause
#: pam_unix makes after a failure (the tests' time; the server pads
#: refusals itself).
PAM_TEXT = """\
# imapd test service (tests/system_users.py); removed after the test
auth     required pam_unix.so nodelay
account  required pam_unix.so
"""


def need_root() -> None:
    """Fail (never skip) a test that needs root when it has not got it."""
    if os.geteuid() != 0:
        pytest.fail("this test creates system users and PAM services: run it as root "
                    "(CI does)")


def _run(*argv: str, stdin: str | None = None) -> None:
    for attempt in range(20):
        result = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=60)
        if result.returncode == 0:
            return
        # Another process (a test run beside this one) holds the lock of
        # /etc/passwd or /etc/group for a moment: try again.
        if "lock" not in result.stderr:
            break
        time.sleep(0.1 * (attempt + 1))
    raise RuntimeError(f"{' '.join(argv)} failed ({result.returncode}): "
                       f"{result.stderr.strip()}")


def _unique(role: str) -> str:
    # At most 32 characters (useradd's limit); lower case for NAME_REGEX.
    return f"imapdt_{role[:10]}_{secrets.token_hex(4)}"


@dataclass(frozen=True)
class SystemUser:
    """A user made for a test: its name, password and password-database entry."""

    name: str
    password: str
    uid: int
    gid: int
    home: Path


@contextmanager
def public_directory() -> Iterator[Path]:
    """
    A 0755 directory under C{/tmp} (pytest's own temporary directories are
    0700 root's, which another user cannot cross), removed afterwards.
    """
    path = Path(tempfile.mkdtemp(prefix="imapdt-", dir="/tmp"))
    try:
        path.chmod(0o755)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextmanager
def system_user(role: str, parent: Path, password: str | None = None,
                system: bool = False) -> Iterator[SystemUser]:
    """
    A new user (and its own group) with a password and a 0700 home under
    C{parent}; removed, with its group and home, afterwards.

    @param role: a word in the name (C{alice}, C{bob}).
    @param system: a system account (uid below 1000, C{useradd -r}).
    """
    need_root()
    name = _unique(role)
    password = password or f"pw-{secrets.token_urlsafe(12)}"
    home = parent / name
    argv = ["useradd", "--create-home", "--home-dir", str(home), "--shell",
            "/usr/sbin/nologin", "--user-group", "--comment", "imapd test user"]
    if system:
        argv.append("--system")
    _run(*argv, name)
    try:
        _run("chpasswd", stdin=f"{name}:{password}\n")
        entry = pwd.getpwnam(name)
        home.chmod(0o700)
        yield SystemUser(name, password, entry.pw_uid, entry.pw_gid, home)
    finally:
        _remove_user(name)
        shutil.rmtree(home, ignore_errors=True)


def _remove_user(name: str) -> None:
    try:
        pwd.getpwnam(name)
    except KeyError:
        pass
    else:
        # -f: even if a process of the user still runs (a worker the test
        # left behind); the home is removed by the caller.
        _run("userdel", "--force", name)
    try:
        grp.getgrnam(name)
    except KeyError:
        return
    _run("groupdel", name)


@contextmanager
def pam_service_file(text: str = PAM_TEXT) -> Iterator[str]:
    """
    A PAM service file C{/etc/pam.d/imapdt_pam_RANDOM} with C{text};
    yields the service name and removes the file afterwards.
    """
    need_root()
    name = _unique("pam")
    path = Path("/etc/pam.d") / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        yield name
    finally:
        path.unlink(missing_ok=True)


@contextmanager
def spool_directory(parent: Path) -> Iterator[Path]:
    """
    A mail spool like Debian's C{/var/mail}: mode 2775, owner root, group
    C{mail}; a user may write there only through the C{mail} group.
    Removed afterwards.
    """
    need_root()
    path = parent / f"spool-{secrets.token_hex(4)}"
    path.mkdir()
    try:
        os.chown(path, 0, grp.getgrnam(MAIL_GROUP).gr_gid)
        path.chmod(0o2775)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# -- fixtures ----------------------------------------------------------------


@pytest.fixture
def system_root() -> Iterator[Path]:
    """A 0755 directory other users can cross: homes and spools go there."""
    with public_directory() as path:
        yield path


@pytest.fixture
def make_system_user(system_root):
    """
    C{make_system_user(role, password=None, system=False) -> SystemUser}:
    users removed at the end of the test.
    """
    with ExitStack() as stack:
        def make(role: str, password: str | None = None, system: bool = False) -> SystemUser:
            return stack.enter_context(system_user(role, system_root, password, system))

        yield make


@pytest.fixture
def pam_service() -> Iterator[str]:
    """The name of a PAM service checking C{/etc/shadow} (pam_unix)."""
    with pam_service_file() as name:
        yield name


@pytest.fixture
def mail_spool(system_root) -> Iterator[Path]:
    """A 2775 root:mail spool directory."""
    with spool_directory(system_root) as path:
        yield path


def wait_for_spool(spool: Path, names: list[str], timeout: float = 5.0) -> None:
    """
    Wait until C{spool} holds just C{names}: an mbox writer keeps its
    dotlock a clock tick past its reply (the settling that runs after the
    reply, L{storage.afterreply}), then nothing but the mbox is left.
    """
    deadline = time.monotonic() + timeout
    while sorted(p.name for p in spool.iterdir()) != sorted(names):
        assert time.monotonic() < deadline, sorted(p.name for p in spool.iterdir())
        time.sleep(0.01)
