# -*- test-case-name: tests.imapd.auth.test_passwdfile -*-
"""
Tests for L{imapd.auth.passwdfile}: parsing Dovecot passwd-files and
picking up edits without a restart.
"""

from __future__ import annotations

import os
import time

import pytest
from twisted.logger import LogLevel, capturedLogs, formatEvent

from imapd.auth.passwdfile import PasswdEntry, PasswdFile, parse_line

HASH = "{SHA512-CRYPT}$6$hHMModSf6gOMNSXw$e9miN.Ttnww6.xk4LJWM8xiB9qyf4LkOw1lxOEk5WPqc2"

SAMPLE = f"""\
# users of example.org
alice@example.org:{HASH}:1000:1000:Alice Liddell:/home/alice:/bin/false:userdb_quota_rule=*:storage=1G nodelay

bob:{{PLAIN}}secret
   # an indented comment
carol:{{SSHA}}jVfL4qmid2C3tl/BeJuzo2LeV0dtU7fF:1002:100::/var/mail/carol
"""


def _write(path, text: str, age: float = 0.0) -> None:
    """
    Write a passwd-file, optionally dating its mtime C{age} seconds back
    (so that it no longer counts as just modified).
    """
    path.write_text(text, encoding="utf-8")
    if age:
        past = time.time() - age
        os.utime(path, (past, past))


@pytest.fixture
def passwd(tmp_path):
    """
    A L{PasswdFile} over a copy of L{SAMPLE}.
    """
    path = tmp_path / "users"
    _write(path, SAMPLE, age=60)
    return PasswdFile(path)


def test_full_line(passwd):
    """
    All fields of a full line are read; the extra fields (which contain a
    colon here) are split into a dict.
    """
    entry = passwd.lookup("alice@example.org")
    assert entry == PasswdEntry(
        user="alice@example.org",
        password=HASH,
        uid=1000,
        gid=1000,
        home="/home/alice",
        extra={"userdb_quota_rule": "*:storage=1G", "nodelay": ""},
    )


def test_short_and_empty_fields(passwd):
    """
    Fields after the password may be missing or empty.
    """
    assert passwd.lookup("bob") == PasswdEntry("bob", "{PLAIN}secret")
    carol = passwd.lookup("carol")
    assert (carol.uid, carol.gid, carol.home, carol.extra) == (1002, 100, "/var/mail/carol", {})


def test_unknown_user(passwd):
    """
    Unknown users, comment text and case variants are not found: names are
    compared exactly.
    """
    for name in ("mallory", "Bob", "# users of example.org", ""):
        assert passwd.lookup(name) is None


def test_entries_are_frozen(passwd):
    """
    Entries cannot be changed by a caller.
    """
    entry = passwd.lookup("bob")
    with pytest.raises(AttributeError):
        entry.password = "{PLAIN}x"


@pytest.mark.parametrize("line, reason", [
    (":{PLAIN}x", "user"),
    (" bob:{PLAIN}x", "user"),
    ("dave:{PLAIN}x:abc", "uid"),
    ("dave:{PLAIN}x:1:nosuchgroup-imapd-test", "gid"),
    ("dave:{PLAIN}x:1:1::/h::=value", "extra"),
])
def test_parse_line_rejects(line, reason):
    """
    L{parse_line} raises L{ValueError} saying what is wrong, never quoting
    the line.
    """
    with pytest.raises(ValueError) as caught:
        parse_line(line)
    assert reason in str(caught.value)
    assert "{PLAIN}x" not in str(caught.value)


def test_parse_line_names_as_ids():
    """
    As in Dovecot, uid and gid may be given by name.
    """
    entry = parse_line("dave:x:root:root")
    assert (entry.uid, entry.gid) == (0, 0)


def test_parse_line_blank_and_comment():
    """
    Blank and comment lines give no entry.
    """
    assert parse_line("") is None
    assert parse_line("   ") is None
    assert parse_line("# alice:x") is None


def test_malformed_lines_logged_and_skipped(tmp_path):
    """
    A bad line is logged with the file and line number (but not its
    content) and skipped; the good lines around it still work.
    """
    path = tmp_path / "users"
    path.write_bytes(
        b"good1:{PLAIN}one\n"
        b"bad:{PLAIN}two:notanumber\n"
        b"latin1-\xe9:{PLAIN}three\n"
        b"good2:{PLAIN}four\r\n"
        b"good1:{PLAIN}again\n"
    )
    with capturedLogs() as events:
        passwd = PasswdFile(path)
        assert passwd.lookup("good1").password == "{PLAIN}one"
        assert passwd.lookup("good2").password == "{PLAIN}four"
        assert passwd.lookup("bad") is None
    warnings = [e for e in events if e["log_level"] == LogLevel.warn]
    assert [e["lineno"] for e in warnings] == [2, 3, 5]
    for event in warnings:
        text = formatEvent(event)
        assert text.startswith(f"passwd-file {path}:{event['lineno']}: ")
        assert "{PLAIN}" not in text


def test_reload_on_change(passwd):
    """
    An edit is seen on the next lookup, without a restart.
    """
    assert passwd.lookup("bob").password == "{PLAIN}secret"
    _write(passwd_path(passwd), "bob:{PLAIN}changed\ndave:{PLAIN}new\n", age=30)
    assert passwd.lookup("bob").password == "{PLAIN}changed"
    assert passwd.lookup("dave") is not None
    assert passwd.lookup("alice@example.org") is None


def test_reload_same_size_edit(passwd):
    """
    An in-place edit that keeps the size is noticed by its mtime.
    """
    path = passwd_path(passwd)
    assert passwd.lookup("bob").password == "{PLAIN}secret"
    _write(path, SAMPLE.replace("{PLAIN}secret", "{PLAIN}SECRET"), age=10)
    assert passwd.lookup("bob").password == "{PLAIN}SECRET"


def test_reload_on_rename(passwd, tmp_path):
    """
    Replacing the file by rename (how editors and config tools write) is
    noticed by the new inode, even with the same size and mtime.
    """
    path = passwd_path(passwd)
    assert passwd.lookup("bob").password == "{PLAIN}secret"
    old = os.stat(path)
    new = tmp_path / "users.new"
    _write(new, SAMPLE.replace("{PLAIN}secret", "{PLAIN}SECRET"))
    os.utime(new, ns=(old.st_atime_ns, old.st_mtime_ns))
    os.replace(new, path)
    assert passwd.lookup("bob").password == "{PLAIN}SECRET"


def test_unchanged_file_not_reread(passwd, monkeypatch):
    """
    While the file is unchanged, a lookup costs a stat() and no read.
    """
    passwd.lookup("bob")
    opened = []
    real_open = open
    monkeypatch.setattr("builtins.open", lambda *a, **k: opened.append(a) or real_open(*a, **k))
    for _ in range(5):
        assert passwd.lookup("bob") is not None
    assert opened == []


def test_recently_modified_file_rechecked(tmp_path):
    """
    A file modified within the last two seconds is re-read on every lookup,
    because a coarse mtime could hide a second same-size edit; its bad lines
    are logged only once all the same.
    """
    path = tmp_path / "users"
    _write(path, "bob:{PLAIN}one\nbad:x:y\n")
    passwd = PasswdFile(path)
    with capturedLogs() as events:
        assert passwd.lookup("bob").password == "{PLAIN}one"
        mtime = os.stat(path).st_mtime_ns
        path.write_text("bob:{PLAIN}two\nbad:x:y\n")
        os.utime(path, ns=(mtime, mtime))
        assert passwd.lookup("bob").password == "{PLAIN}two"
        passwd.lookup("bob")
    assert [e.get("lineno") for e in events if e["log_level"] == LogLevel.warn] == [2, 2]


def test_missing_file(tmp_path):
    """
    A missing file means no users, logged once rather than at every login;
    users come back when the file does.
    """
    path = tmp_path / "users"
    passwd = PasswdFile(path)
    with capturedLogs() as events:
        assert passwd.lookup("bob") is None
        assert passwd.lookup("bob") is None
    errors = [e for e in events if e["log_level"] == LogLevel.error]
    assert len(errors) == 1
    assert str(path) in formatEvent(errors[0])
    _write(path, "bob:{PLAIN}x\n")
    assert passwd.lookup("bob") is not None


def test_file_removed_after_load(passwd):
    """
    If the file disappears, its old users can no longer log in: the cache
    does not outlive the file.
    """
    assert passwd.lookup("bob") is not None
    os.unlink(passwd_path(passwd))
    with capturedLogs():
        assert passwd.lookup("bob") is None


def passwd_path(passwd: PasswdFile):
    """
    The path of a L{PasswdFile}, as a L{pathlib.Path}.
    """
    from pathlib import Path

    return Path(passwd.path)


def test_users_lists_every_name(passwd, tmp_path):
    """
    users() names every user of the file, and follows edits (the cluster
    exports list users from it).
    """
    assert set(passwd.users()) == {"alice@example.org", "bob", "carol"}
    _write(tmp_path / "users", "dave:{PLAIN}x\n")
    assert passwd.users() == ("dave",)


@pytest.mark.parametrize("line, reason", [
    ("carol", "no ':'"),
    ("carol:secret", "no {SCHEME} prefix"),
    ("carol:{NOSUCH}x", "unknown password scheme 'NOSUCH'"),
    ("carol:{sha256.hex}abc", None),
    ("carol:{PLAIN}secret", None),
    ("carol:$6$salt$hash", None),
    ("carol:abcdefghijklm", None),
    ("carol:*", None),
    ("carol:", None),
])
def test_malformed_password_fields_logged(tmp_path, line, reason):
    """
    Issue 16 item 9: a line that can never log in (a user name alone, a
    password in plain text without C{{PLAIN}}, an unknown scheme) is not
    accepted silently: the sysadmin gets a warning with the line number,
    never the password.  Good lines, locked accounts (C{*}) and empty
    passwords give no warning.
    """
    path = tmp_path / "users"
    path.write_text(f"good:{{PLAIN}}one\n{line}\n")
    with capturedLogs() as events:
        passwd = PasswdFile(path)
        assert passwd.lookup("good").password == "{PLAIN}one"
    warnings = [formatEvent(e) for e in events if e["log_level"] == LogLevel.warn]
    if reason is None:
        assert warnings == []
    else:
        assert len(warnings) == 1 and warnings[0].startswith(f"passwd-file {path}:2: ")
        assert reason in warnings[0]
        assert "secret" not in warnings[0]
