"""
The host table file: format, changes, cheap re-reads and locked atomic
updates from several processes.
"""

import json
import os
import subprocess
import sys

import pytest

from imapd.cluster.table import HostEntry, HostsFile, HostTable, TableError


def three(path) -> HostsFile:
    hosts = HostsFile(str(path), fsync=False)
    for address in ("127.0.0.4", "127.0.0.2", "127.0.0.3"):
        hosts.update(lambda t, a=address: t.add(a))
    return hosts


def test_missing_file_is_an_empty_table(tmp_path):
    """No file: no host, epoch 0, nobody owns anyone."""
    table = HostsFile(str(tmp_path / "hosts.json")).table()
    assert table == HostTable()
    assert table.hashed_owner(12345) is None


def test_add_writes_sorted_hosts_and_counts_epochs(tmp_path):
    """Each change bumps the epoch; hosts are kept in address order."""
    path = tmp_path / "cluster" / "hosts.json"
    hosts = three(path)
    data = json.loads(path.read_text())
    assert data["epoch"] == 3
    assert [h["address"] for h in data["hosts"]] == ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
    assert data["hosts"][0] == {"address": "127.0.0.2", "port": 143, "lmtp_port": 24,
                                "weight": 100, "up": True, "changed": 2, "down_by": ""}
    assert hosts.table().epoch == 3
    assert not os.path.exists(str(path) + ".lock")


def test_down_up_flush_set_changed(tmp_path):
    """down, up and flush record the epoch of the change; weight does not."""
    hosts = three(tmp_path / "hosts.json")
    t = hosts.update(lambda t: t.set_up("127.0.0.3", False))
    assert (t.epoch, t.get("127.0.0.3").up, t.get("127.0.0.3").changed) == (4, False, 4)
    assert hosts.update(lambda t: t.set_up("127.0.0.3", False)).epoch == 4  # no change
    t = hosts.update(lambda t: t.set_weight("127.0.0.3", 50))
    assert (t.epoch, t.get("127.0.0.3").weight, t.get("127.0.0.3").changed) == (5, 50, 4)
    t = hosts.update(lambda t: t.flush("127.0.0.2"))
    assert t.get("127.0.0.2").changed == 6
    t = hosts.update(lambda t: t.remove("127.0.0.2"))
    assert [h.address for h in t.hosts] == ["127.0.0.3", "127.0.0.4"]


def test_down_host_leaves_the_ring(tmp_path):
    """CLUSTER.md: alice is on .3 with three up and on .4 with .3 down."""
    from imapd.cluster.hashing import user_hash

    hosts = three(tmp_path / "hosts.json")
    assert hosts.table().hashed_owner(user_hash("alice")).address == "127.0.0.3"
    hosts.update(lambda t: t.set_up("127.0.0.3", False))
    assert hosts.table().hashed_owner(user_hash("alice")).address == "127.0.0.4"


@pytest.mark.parametrize("change,message", [
    (lambda t: t.add("127.0.0.2"), "already in the table"),
    (lambda t: t.add("mail.example.org"), "not an IP address"),
    (lambda t: t.remove("127.0.0.9"), "no host 127.0.0.9"),
    (lambda t: t.set_weight("127.0.0.2", 1001), "weight must be"),
    (lambda t: t.add("127.0.0.9", port=0), "port"),
])
def test_bad_changes_refused_and_nothing_written(tmp_path, change, message):
    """A refused change raises TableError with the reason and leaves the file."""
    hosts = three(tmp_path / "hosts.json")
    before = (tmp_path / "hosts.json").read_bytes()
    with pytest.raises(TableError, match=message):
        hosts.update(change)
    assert (tmp_path / "hosts.json").read_bytes() == before


@pytest.mark.parametrize("content,message", [
    (b"{nope", "not a JSON host table"),
    (b'{"epoch": -1, "hosts": []}', "epoch"),
    (b'{"hosts": [{"address": "127.0.0.2"}, {"address": "127.0.0.2"}]}', "twice"),
    (b'{"hosts": [{"address": "127.0.0.2", "colour": 1}]}', "unknown fields"),
    (b'{"hosts": [{"address": "127.0.0.2", "up": "yes"}]}', "up must be"),
])
def test_broken_file_is_reported_with_its_path(tmp_path, content, message):
    """A damaged table is an error naming the file, never an empty cluster."""
    path = tmp_path / "hosts.json"
    path.write_bytes(content)
    with pytest.raises(TableError, match=message) as info:
        HostsFile(str(path)).table()
    assert str(path) in str(info.value)


def test_reread_only_when_the_file_changed(tmp_path, monkeypatch):
    """A stable file is opened and fstat()ed, not read again; a renamed-in one is read."""
    path = tmp_path / "hosts.json"
    writer = three(path)
    old = os.stat(path).st_mtime_ns - 10_000_000_000
    os.utime(path, ns=(old, old))
    reader = HostsFile(str(path))
    first = reader.table()
    reads = []
    real_open = open

    class Counting:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def fileno(self):
            return self.f.fileno()

        def read(self, *args):
            reads.append(self.f.name)
            return self.f.read(*args)

    monkeypatch.setattr("builtins.open", lambda *a, **k: Counting(real_open(*a, **k)))
    assert reader.table() is first
    assert reads == []
    writer.update(lambda t: t.set_up("127.0.0.4", False))
    del reads[:]
    assert reader.table().get("127.0.0.4").up is False
    assert reads == [str(path)]


def test_entry_round_trip():
    """A host survives the file format unchanged."""
    table = HostTable(9, (HostEntry("127.0.0.2", 1143, 2424, 7, False, 8),))
    assert HostTable.from_bytes(table.to_bytes()) == table


def test_concurrent_updates_from_processes_lose_nothing(tmp_path):
    """Two processes changing the table at once: every change lands (dotlock)."""
    path = tmp_path / "hosts.json"
    three(path)
    script = (
        "import sys\n"
        "from imapd.cluster.table import HostsFile\n"
        "h = HostsFile(sys.argv[1], fsync=False)\n"
        "for i in range(15):\n"
        "    h.update(lambda t: t.set_weight(sys.argv[2], t.get(sys.argv[2]).weight + 1))\n"
    )
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    procs = [subprocess.Popen([sys.executable, "-c", script, str(path), a], env=env)
             for a in ("127.0.0.2", "127.0.0.3")]
    assert [p.wait(timeout=60) for p in procs] == [0, 0]
    table = HostsFile(str(path)).table()
    assert table.epoch == 3 + 30
    assert table.get("127.0.0.2").weight == table.get("127.0.0.3").weight == 115
