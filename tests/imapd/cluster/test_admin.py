"""
imapd-admin cluster ...: the sysadmin's interface to the host table
(issue 15's interface names: add, down, up, remove, owner, map, flush).
"""

import io
import json
import subprocess
import sys

import pytest

from imapd.admin import EX_CONFIG, main

USERS = ["alice", "erin", "heidi", "Dave@INFN.it", "user620"]


@pytest.fixture
def site(tmp_path):
    passwd = tmp_path / "passwd"
    passwd.write_text("".join(f"{u}:{{PLAIN}}x\n" for u in USERS))
    config = tmp_path / "imapd.toml"
    config.write_text(
        f'[auth]\npasswd_file = "{passwd}"\n'
        f'[cluster]\nhosts_file = "{tmp_path}/store/hosts.json"\n'
        f'export_files = ["transport:{tmp_path}/transport", "json:{tmp_path}/map.json"]\n'
        f'export_domain = "example.org"\n'
        f'move_timeout = 1.0\nuser_kick_delay = 0.2\n')
    return tmp_path, str(config)


def admin(config, *argv):
    out, err = io.StringIO(), io.StringIO()
    status = main(["--config", config, "cluster", *argv], out, err)
    return status, out.getvalue(), err.getvalue()


def three(config):
    for host in ("127.0.0.2", "127.0.0.3", "127.0.0.4"):
        assert admin(config, "add", host)[0] == 0


def test_owner_follows_cluster_md(site):
    """owner prints the address CLUSTER.md predicts, with 3 up and .3 down."""
    _, config = site
    three(config)
    assert admin(config, "owner", "alice") == (0, "127.0.0.3\n", "")
    assert admin(config, "owner", "user620")[1] == "127.0.0.3\n"
    assert admin(config, "down", "127.0.0.3")[0] == 0
    assert admin(config, "owner", "alice")[1] == "127.0.0.4\n"
    assert admin(config, "owner", "erin")[1] == "127.0.0.2\n"
    status, out, _ = admin(config, "owner", "-v", "erin")
    assert out.startswith("127.0.0.2 hashed user=erin key=erin hash=1599857545 ring=127.0.0.2")


def test_changes_rewrite_export_files(site):
    """Every change rewrites the configured exports (transport, json)."""
    tmp, config = site
    three(config)
    transport = (tmp / "transport").read_text()
    assert "alice@example.org\tlmtp:inet:127.0.0.3:24\n" in transport
    assert "Dave@INFN.it\tlmtp:inet:127.0.0.2:24\n" in transport
    admin(config, "down", "127.0.0.3")
    assert "alice@example.org\tlmtp:inet:127.0.0.4:24\n" in (tmp / "transport").read_text()
    data = json.loads((tmp / "map.json").read_text())
    assert data["epoch"] == 4 and data["users"]["alice"] == "127.0.0.4"


def test_map_lists_hosts_and_users(site):
    """map prints every host with its state and share; --users every user."""
    _, config = site
    three(config)
    admin(config, "weight", "127.0.0.4", "0")
    admin(config, "down", "127.0.0.2")
    status, out, _ = admin(config, "map", "--users")
    lines = out.splitlines()
    assert lines[0].endswith("epoch 5")
    assert lines[2].startswith("127.0.0.2\t143\t24\t100\tdown\t5\t0.0%")
    assert lines[3].startswith("127.0.0.3\t143\t24\t100\tup\t2\t100.0%")
    assert lines[4].startswith("127.0.0.4\t143\t24\t0\tup\t3\t0.0%")
    assert "heidi\t1044502141\t127.0.0.3\t143\t24" in lines


def test_exports_formats(site):
    """export prints tsv, json, Postfix transport and sendmail QGRP lines."""
    tmp, config = site
    three(config)
    assert "QGRP:heidi@example.org\timapd_127_0_0_4" in admin(config, "export", "qgrp")[1]
    assert "\nheidi@x.org\tlmtp:inet:127.0.0.4:24\n" in \
        admin(config, "export", "transport", "--domain", "x.org")[1]
    assert admin(config, "export", "tsv", "-o", str(tmp / "out.tsv"))[1] == ""
    assert "alice\t1669653170\t127.0.0.3\t143\t24" in (tmp / "out.tsv").read_text()


def test_move_and_flush(site):
    """move places a user now; flush of its host sends it back to the ring."""
    _, config = site
    three(config)
    status, out, err = admin(config, "move", "alice", "127.0.0.2")
    assert status == 0 and "alice placed on 127.0.0.2 (was 127.0.0.3)" in out
    # No node reports sessions of alice: the move waited only the kick delay.
    assert "new logins of 1 users waited" in out and err == ""
    assert admin(config, "owner", "alice")[1] == "127.0.0.2\n"
    status, out, err = admin(config, "flush", "127.0.0.2")
    assert "flushed 127.0.0.2: 1 placed users" in out and "new logins of 1 users waited" in out
    assert admin(config, "owner", "alice")[1] == "127.0.0.3\n"


@pytest.mark.parametrize("argv,message", [
    (("add", "mail.example.org"), "not an IP address"),
    (("add", "127.0.0.2"), "already in the table"),
    (("down", "127.0.0.9"), "no host 127.0.0.9"),
    (("move", "alice", "127.0.0.9"), "not an up host"),
    (("add", "127.0.0.5", "--weight", "5000"), "weight must be"),
])
def test_refusals(site, argv, message):
    """Refused commands exit 1 with the reason on stderr."""
    _, config = site
    three(config)
    status, out, err = admin(config, *argv)
    assert (status, out) == (1, "")
    assert message in err


def test_no_host_up_and_no_table(tmp_path, site):
    """owner without hosts fails; a config without hosts_file says so."""
    _, config = site
    assert admin(config, "owner", "alice")[2] == \
        "imapd-admin: no host is up: the user has no owner\n"
    bare = tmp_path / "bare.toml"
    bare.write_text("")
    status, _, err = admin(str(bare), "owner", "alice")
    assert status == 1 and "option 'cluster.hosts_file' is not set" in err
    bad = tmp_path / "bad.toml"
    bad.write_text('[cluster]\nusername_hash = "%x"\n')
    status, _, err = admin(str(bad), "map")
    assert status == EX_CONFIG and "cluster.username_hash" in err


def test_console_script_module(site):
    """The console script's function runs as a program (setup.cfg entry point)."""
    _, config = site
    three(config)
    result = subprocess.run(
        [sys.executable, "-c", "from imapd.admin import console; console()",
         "--config", config, "cluster", "owner", "heidi"],
        capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout) == (0, "127.0.0.4\n")


def test_status(site):
    """status prints the current and the hashed host, the hash and the epoch."""
    _, config = site
    three(config)
    admin(config, "move", "heidi", "127.0.0.2")
    assert admin(config, "status", "heidi")[1] == (
        "127.0.0.2 placed user=heidi key=heidi hash=1044502141 ring=127.0.0.4 epoch=3\n")


def test_move_waits_for_the_old_hosts_sessions(site):
    """
    While the old host reports sessions of the user, the move blocks the
    user's logins; when they are gone it waits user_kick_delay more and
    unblocks.  A report that never clears ends the wait at move_timeout,
    with a warning.
    """
    import threading
    import time

    from imapd.cluster.hashing import expand_key
    from imapd.cluster.moves import MoveBlocks, SessionReports

    root, config = site
    three(config)
    hosts_file = f"{root}/store/hosts.json"
    blocks = MoveBlocks(hosts_file + ".moves")
    # A worker of 127.0.0.3 has a session of alice; 127.0.0.30 is another host.
    SessionReports(hosts_file + ".sessions", "127.0.0.3~pool-1").report([expand_key("alice", "%Lu")])
    SessionReports(hosts_file + ".sessions", "127.0.0.30").report(["bob"])
    done = []
    thread = threading.Thread(target=lambda: done.append(admin(config, "move", "alice",
                                                                "127.0.0.2")))
    started = time.monotonic()
    thread.start()
    while blocks.blocked_until("alice", time.time()) is None:
        assert time.monotonic() - started < 5 and not done
        time.sleep(0.01)
    assert blocks.blocked_until("bob", time.time()) is None
    time.sleep(0.3)
    assert not done  # still waiting for the session to end
    SessionReports(hosts_file + ".sessions", "127.0.0.3~pool-1").report([])
    ended = time.monotonic()
    thread.join(10)
    status, out, err = done[0]
    assert status == 0 and err == "", err
    assert time.monotonic() - ended >= 0.2  # user_kick_delay
    assert blocks.blocked_until("alice", time.time()) is None
    # Back to 127.0.0.3 with a session there that never ends (as seen by
    # the reports): the move gives up after move_timeout and says so.
    SessionReports(hosts_file + ".sessions", "127.0.0.2").report([expand_key("alice", "%Lu")])
    started = time.monotonic()
    status, out, err = admin(config, "move", "alice", "127.0.0.3")
    assert status == 0 and 1.0 <= time.monotonic() - started < 5
    assert "1 of the users still had sessions on 127.0.0.2 after 1 seconds" in err
    assert blocks.blocked_until("alice", time.time()) is None


def test_move_wins_over_a_nodes_line_of_the_same_second(site):
    """
    A node refreshed alice's placement a moment ago (its clock a little
    ahead): the move's line is still the latest, for every reader,
    the node included (it reads its own line first).
    """
    import time

    from imapd.cluster.owner import Directory
    from imapd.cluster.placement import Placements, placements_dir
    from imapd.cluster.table import HostsFile

    root, config = site
    three(config)
    hosts_file = f"{root}/store/hosts.json"
    node = Directory(HostsFile(hosts_file), Placements(placements_dir(hosts_file), "127.0.0.3",
                                                       900))
    epoch = node.hosts.table().epoch
    node.placements.record("alice", "127.0.0.3", epoch, time.time() + 0.4)
    node.placements.flush()
    assert admin(config, "move", "alice", "127.0.0.2")[0] == 0
    assert node.status("alice").current.address == "127.0.0.2"
    assert admin(config, "owner", "alice")[1] == "127.0.0.2\n"
