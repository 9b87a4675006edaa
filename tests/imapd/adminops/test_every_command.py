"""
Every imapd-admin command of the users-and-mail areas (issue 16): --help
with examples, -u and -A, text or --json, exit status 0/1/2 for
done/not found/error, one line on a bad argument.  The walk finds the
commands in the parser, so a command added without an entry here fails.
"""

import argparse
import json

import pytest

from imapd.admin import build_parser

from .helpers import admin, deliver, make_site, message

#: Commands that name no user: a password, the configuration, a login.
NO_USER = {"pw", "config", "auth test"}


def leaves(parser, path=()):
    """(path, parser) of every command that has no sub-commands."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += leaves(sub, path + (name,))
            return found
    return [(" ".join(path), parser)]


#: cluster ... is the host table's (issue "Delivery and clusters"), not a user's.
COMMANDS = {path: p for path, p in leaves(build_parser()) if not path.startswith("cluster")}

#: A call that works on the site below (status 0), and its status when the
#: daemon is not running (who, kick: 2, one line; e2e tests run them).
CALLS = {
    "pw": (["-s", "SSHA256", "-p", "x"], 0),
    "auth test": (["alice", "pw-alice"], 0),
    "user": (["-u", "alice"], 0),
    "config": ([], 0),
    "mailbox list": (["-u", "alice"], 0),
    "mailbox status": (["-u", "alice"], 0),
    "mailbox create": (["-u", "alice", "Work"], 0),
    "mailbox delete": (["-u", "alice", "Archive"], 0),
    "mailbox rename": (["-u", "alice", "Archive", "Old"], 0),
    "search": (["-u", "alice", "INBOX", "ALL"], 0),
    "fetch": (["-u", "alice", "INBOX", "ALL"], 0),
    "expunge": (["-u", "alice", "INBOX", "SEEN"], 0),
    "quota get": (["-u", "alice"], 0),
    "quota recalc": (["-u", "alice"], 0),
    "index remove": (["-u", "alice"], 0),
    "index rebuild": (["-u", "alice"], 0),
    "force-resync": (["-u", "alice", "INBOX"], 0),
    "migrate": (["-u", "alice", "--from", "maildir:~/Maildir", "--to", "mbox:~/mail"], 0),
    "fts status": (["-u", "alice"], 0),
    "fts rebuild": (["-u", "alice", "INBOX"], 0),
    "who": ([], 2),
    "kick": (["alice"], 2),
}


def test_every_command_has_a_call():
    """The table covers exactly the commands the parser has."""
    assert sorted(COMMANDS) == sorted(CALLS)


@pytest.fixture
def site(tmp_path):
    config = make_site(tmp_path)
    deliver(tmp_path, "maildir", "alice",
            messages=[(message("a"), ("\\Seen",), None), (message("b"), (), None)])
    for user in ("alice", "bob"):
        deliver(tmp_path, "maildir", user, "Archive", [(message("c"), (), None)], create=True)
    return config


def options(parser) -> set:
    return {s for a in parser._actions for s in a.option_strings}


@pytest.mark.parametrize("path", sorted(CALLS))
def test_help_has_examples(site, path):
    """--help exits 0 and shows examples of the command itself."""
    status, out, err = admin(site, *path.split(), "--help")
    assert (status, err) == (0, "")
    examples = out.split("examples:\n", 1)[1].splitlines()
    assert any(line.strip().startswith("imapd-admin") and f" {path} " in line + " "
               for line in examples), out


@pytest.mark.parametrize("path", sorted(CALLS))
def test_user_and_json_options(path):
    """Every command has --json; every one that concerns users has -u and -A."""
    have = options(COMMANDS[path])
    assert "--json" in have
    if path not in NO_USER:
        assert {"-u", "--user", "-A", "--all-users"} <= have


@pytest.mark.parametrize("path", sorted(CALLS))
def test_bad_argument_is_one_line(site, path):
    """An unknown option, or a missing argument: status 2, one line, nothing on stdout."""
    argv, _ = CALLS[path]
    status, out, err = admin(site, *path.split(), *argv, "--bogus")
    assert (status, out) == (2, "") and err.count("\n") == 1
    assert err.startswith(f"imapd-admin {path}: ") and "--bogus" in err and "--help" in err
    if argv and path not in ("config", "pw", "who"):
        status, out, err = admin(site, *path.split())
        assert (status, out) == (2, "") and err.count("\n") == 1


@pytest.mark.parametrize("path", sorted(CALLS))
@pytest.mark.parametrize("form", ["text", "json"])
def test_status_and_output(site, path, form):
    """
    The call succeeds (or, for who/kick without a daemon, fails in one
    line with 2); --json prints one JSON array; text prints lines.
    """
    argv, expected = CALLS[path]
    extra = ["--json"] if form == "json" else []
    status, out, err = admin(site, *path.split(), *argv, *extra)
    assert status == expected, err
    if expected == 2:
        assert out == "" and err.count("\n") == 1 and "cannot reach the daemon" in err
        return
    assert out
    if form == "json":
        rows = json.loads(out)
        assert isinstance(rows, list) and rows and all(isinstance(r, dict) for r in rows)
    else:
        with pytest.raises(ValueError):
            json.loads(out)


@pytest.mark.parametrize("path", sorted(set(CALLS) - NO_USER - {"who", "kick"}))
def test_unknown_user_is_not_found(site, path):
    """-u with a user the user database does not have: status 1, one line."""
    argv, _ = CALLS[path]
    argv = ["nobody" if a == "alice" else a for a in argv]
    status, out, err = admin(site, *path.split(), *argv)
    assert (status, out) == (1, "") and err == "imapd-admin: no user 'nobody' in the user database\n"


@pytest.mark.parametrize("path", sorted(set(CALLS) - NO_USER - {"who", "kick"}))
def test_all_users(site, path, tmp_path):
    """-A runs the command for every user of the passwd-file."""
    argv, _ = CALLS[path]
    argv = ["-A" if a == "-u" else a for a in argv if a != "alice"]
    status, out, err = admin(site, *path.split(), *argv, "--json")
    assert status == 0, err
    assert {r["user"] for r in json.loads(out)} <= {"alice", "bob"}
    assert "alice" in {r["user"] for r in json.loads(out)}
