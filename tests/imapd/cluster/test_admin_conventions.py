"""
imapd-admin cluster ... follows every imapd-admin command's conventions
(issue 16): --help with examples, --json, -u or -A where a command is
about users, status 0/1/2 and one line on a bad argument; the names
issue 15 fixed (cluster owner USER ...) stay as they were.
"""

import json

import pytest

from imapd.admin import build_parser

from .test_admin import USERS, admin, site, three  # noqa: F401 - the fixture

#: A call of every cluster command that works on three hosts.
CALLS = {
    "add": ["127.0.0.5"],
    "remove": ["127.0.0.4"],
    "down": ["127.0.0.4"],
    "up": ["127.0.0.4"],
    "flush": ["127.0.0.4"],
    "weight": ["127.0.0.4", "50"],
    "owner": ["alice"],
    "status": ["-u", "alice"],
    "move": ["alice", "127.0.0.2"],
    "map": [],
    "export": ["json"],
}


def test_every_cluster_command_has_a_call():
    parser = build_parser()
    area = parser._subparsers._group_actions[0].choices["cluster"]
    assert sorted(area._subparsers._group_actions[0].choices) == sorted(CALLS)


@pytest.mark.parametrize("name", sorted(CALLS))
def test_help_has_examples(site, name):  # noqa: F811
    _, config = site
    status, out, err = admin(config, name, "--help")
    assert (status, err) == (0, "")
    examples = out.split("examples:\n", 1)[1].splitlines()
    assert any(f" cluster {name}" in line for line in examples), out


@pytest.mark.parametrize("name", sorted(CALLS))
def test_json_output(site, name):  # noqa: F811
    """--json prints JSON only (progress lines go to standard error)."""
    _, config = site
    three(config)
    status, out, err = admin(config, name, *CALLS[name], "--json")
    assert status == 0, err
    value = json.loads(out)
    if name == "export":
        assert value["users"]["alice"] == "127.0.0.3"
    else:
        assert isinstance(value, list) and value and all(isinstance(r, dict) for r in value)


@pytest.mark.parametrize("name", sorted(CALLS))
def test_bad_argument_is_one_line(site, name):  # noqa: F811
    _, config = site
    three(config)
    status, out, err = admin(config, name, *CALLS[name], "--bogus")
    assert (status, out) == (2, "") and err.count("\n") == 1 and "--bogus" in err


def test_owner_and_status_of_every_user(site):  # noqa: F811
    """-A: every user of the passwd-file, with its owner; -u is the same as USER."""
    _, config = site
    three(config)
    status, out, err = admin(config, "owner", "-A")
    assert status == 0, err
    lines = out.splitlines()
    assert [line.split("\t")[0] for line in lines] == USERS
    assert "alice\t127.0.0.3" in lines and "user620\t127.0.0.3" in lines
    assert admin(config, "owner", "-u", "alice") == admin(config, "owner", "alice")
    rows = json.loads(admin(config, "status", "-A", "--json")[1])
    assert {r["user"]: r["host"] for r in rows}["alice"] == "127.0.0.3"
    assert all(set(r) == {"user", "host", "placed", "key", "hash", "ring", "epoch"}
               for r in rows)


@pytest.mark.parametrize("argv", [["owner"], ["owner", "alice", "-A"],
                                  ["owner", "alice", "-u", "erin"], ["export"],
                                  ["export", "tsv", "--json"], ["map", "--users", "--json"]])
def test_usage_mistakes_are_one_line_status_2(site, argv):  # noqa: F811
    _, config = site
    three(config)
    status, out, err = admin(config, *argv)
    assert (status, out) == (2, "") and err.count("\n") == 1
    assert err.startswith(f"imapd-admin cluster {argv[0]}: ")


def test_move_progress_goes_to_stderr_with_json(site):  # noqa: F811
    _, config = site
    three(config)
    status, out, err = admin(config, "move", "alice", "127.0.0.2", "--json")
    assert status == 0
    assert json.loads(out) == [{"user": "alice", "host": "127.0.0.2", "was": "127.0.0.3",
                                "expire": json.loads(out)[0]["expire"]}]
    assert "new logins of 1 users waited" in err
