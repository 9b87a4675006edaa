"""
The Postfix socketmap server (socketmap_table(5)): netstring framing,
replies per map name, extensions, failures; driven over StringTransport.
"""

import pytest
from twisted.internet import defer
from twisted.internet.testing import StringTransport

from imapd.cluster.owner import Directory
from imapd.cluster.socketmap import SocketmapFactory, answer, strip_extension
from imapd.cluster.table import HostsFile


@pytest.fixture
def directory(tmp_path):
    hosts = HostsFile(str(tmp_path / "hosts.json"), fsync=False)
    for address in ("127.0.0.2", "127.0.0.3", "127.0.0.4"):
        hosts.update(lambda t, a=address: t.add(a, lmtp_port=2424 if a == "127.0.0.4" else 24))
    return Directory(hosts)


def netstring(text: str) -> bytes:
    data = text.encode()
    return b"%d:%s," % (len(data), data)


def connect(directory, runner=defer.maybeDeferred):
    factory = SocketmapFactory(directory, runner=runner)
    proto = factory.buildProtocol(None)
    transport = StringTransport()
    proto.makeConnection(transport)
    return proto, transport


def test_transport_answers_the_owner_per_address(directory):
    """Each request gets OK lmtp:inet:<owner>:<port>, in order, on one connection."""
    proto, transport = connect(directory)
    proto.dataReceived(netstring("transport alice@example.org") +
                       netstring("transport heidi@example.org"))
    # %Lu hashes the whole address; the owners are the ring's for it.
    owners = [directory.owner(u, record=False)
              for u in ("alice@example.org", "heidi@example.org")]
    expected = b"".join(netstring(f"OK lmtp:inet:{h.address}:{h.lmtp_port}") for h in owners)
    assert transport.value() == expected


def test_host_map_and_extension(directory):
    """'host' answers the address; user+detail@ maps like user@."""
    proto, transport = connect(directory)
    proto.dataReceived(netstring("host bob+lists@example.org"))
    owner = directory.owner("bob@example.org", record=False).address
    assert transport.value() == netstring(f"OK {owner}")


@pytest.mark.parametrize("request_,reply", [
    ("transport example.org", "NOTFOUND "),
    ("transport .example.org", "NOTFOUND "),
    ("transport @example.org", "NOTFOUND "),
    ("virtual alice@example.org", "PERM unknown map 'virtual'"),
    ("transport", "PERM a request is '<name> <key>'"),
])
def test_other_requests(directory, request_, reply):
    """Domains are not ours (NOTFOUND); unknown maps and bad requests are PERM."""
    proto, transport = connect(directory)
    proto.dataReceived(netstring(request_))
    assert transport.value().decode().split(":", 1)[1].startswith(reply)


def test_no_host_up_is_temporary(directory):
    """With every host down Postfix is told TEMP, so it defers the mail."""
    for a in ("127.0.0.2", "127.0.0.3", "127.0.0.4"):
        directory.hosts.update(lambda t, a=a: t.set_up(a, False))
    assert answer(directory, "transport", "alice@example.org") == "TEMP no imapd host is up"


def test_broken_table_is_temporary(directory):
    """A damaged host table defers mail with the reason, never misroutes it."""
    with open(directory.hosts.path, "w") as f:
        f.write("{broken")
    assert answer(directory, "transport", "a@b").startswith("TEMP ")


def test_lookup_failure_is_temporary(directory):
    """An unexpected failure in the lookup answers TEMP and keeps serving."""
    def failing(*args):
        return defer.fail(RuntimeError("boom"))
    proto, transport = connect(directory, runner=failing)
    proto.dataReceived(netstring("transport a@b"))
    assert transport.value() == netstring("TEMP internal error")


def test_bad_netstring_closes(directory):
    """A request that is not a netstring drops the connection."""
    proto, transport = connect(directory)
    proto.dataReceived(b"hello\n")
    assert transport.disconnecting


def test_strip_extension():
    """The first delimiter character of the local part starts the extension."""
    assert strip_extension("a+b+c@x", "+") == "a@x"
    assert strip_extension("a-b@x", "+-") == "a@x"
    assert strip_extension("a+b@x", "") == "a+b@x"
    assert strip_extension("ab@x+y", "+") == "ab@x+y"
