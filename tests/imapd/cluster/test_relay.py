"""
Proxy-when-not-ours, the parts without a network: who is relayed (owner,
TTL, loops), the owner-side login conversation, and the session's switch
to a byte relay.
"""

import pytest
from twisted.internet import defer
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport

from imapd.cluster.owner import Directory
from imapd.cluster.relay import (NotOurs, RelayingRealm, _astring, _Backend, _tagged_parts,
                                 login_command)
from imapd.cluster.table import HostsFile


class Realm:
    def requestAvatar(self, avatarId, mind, *interfaces):
        return ("iface", f"local {avatarId.decode()}", lambda: None)


class Mind:
    def __init__(self, peer="192.0.2.1", ttl=None):
        self.transport = StringTransport(peerAddress=IPv4Address("TCP", peer, 5000))
        self.proxy_ttl = ttl


@pytest.fixture
def realm(tmp_path):
    hosts = HostsFile(str(tmp_path / "hosts.json"), fsync=False)
    for address in ("127.0.0.2", "127.0.0.3", "127.0.0.4"):
        hosts.update(lambda t, a=address: t.add(a))
    return RelayingRealm(Realm(), Directory(hosts), "127.0.0.3", runner=defer.maybeDeferred)


def result(d):
    out = []
    d.addBoth(out.append)
    return out[0]


def test_owned_elsewhere_raises_not_ours(realm):
    """heidi (ring: .4) logging in on .3 is to be relayed to .4."""
    failure = result(realm.requestAvatar(b"heidi", Mind()))
    assert failure.check(NotOurs) and failure.value.host.address == "127.0.0.4"


def test_the_checkers_record_is_relayed_by_its_name(realm):
    """The avatar id of imapd.auth's checker is the user's record, not a name."""
    from imapd.auth.userdb import UserRecord

    failure = result(realm.requestAvatar(UserRecord("heidi", home="/h"), Mind()))
    assert failure.check(NotOurs) and failure.value.host.address == "127.0.0.4"


@pytest.mark.parametrize("user,mind", [
    ("alice", Mind()),                      # owned here (.3)
    ("heidi", Mind(ttl=0)),                 # no hops left
    ("heidi", Mind(peer="127.0.0.2")),      # comes from a node of the table
    ("heidi", None),                        # no session (not a login)
])
def test_served_here(realm, user, mind):
    """Own users, spent TTLs and logins relayed by a table node are served here."""
    assert result(realm.requestAvatar(user.encode(), mind))[1] == f"local {user}"


def test_backend_conversation():
    """Greeting, then ID with the client's fields, then LOGIN; the OK line ends it."""
    backend = _Backend(b"alice", login_command(b"alice", b'p"w\\'),
                       [("x-originating-ip", "192.0.2.1"), ("x-proxy-ttl", "4")])
    transport = StringTransport()
    backend.makeConnection(transport)
    backend.dataReceived(b"* OK [CAPABILITY IMAP4rev1 LITERAL+] ready\r\n")
    assert transport.value() == b'r1 ID ("x-originating-ip" "192.0.2.1" "x-proxy-ttl" "4")\r\n'
    transport.clear()
    backend.dataReceived(b"* ID NIL\r\nr1 OK ID completed\r\n")
    assert transport.value() == b'r2 LOGIN "alice" "p\\"w\\\\"\r\n'
    backend.dataReceived(b"r2 OK [CAPABILITY IMAP4rev1 IDLE] Logged in\r\n")
    line = result(backend.done)
    assert _tagged_parts(line) == ("CAPABILITY IMAP4rev1 IDLE", "Logged in")


def test_backend_refusal_and_bad_greeting():
    """A NO or a BYE greeting fails the relay and closes the connection."""
    for lines in ([b"* OK hi", b"r1 OK", b"r2 NO [AUTHENTICATIONFAILED] no"], [b"* BYE busy"]):
        backend = _Backend(b"a", b"b", [])
        transport = StringTransport()
        backend.makeConnection(transport)
        for line in lines:
            backend.dataReceived(line + b"\r\n")
        assert result(backend.done).check(ConnectionError)
        assert transport.disconnecting


def test_non_ascii_credentials_use_literals():
    """A password with 8-bit or control bytes goes as a LITERAL+ literal."""
    assert _astring("pässword".encode()) == b"{9+}\r\n" + "pässword".encode()
    assert _astring(b"plain") == b'"plain"'


def test_session_becomes_a_relay(authed):
    """After start_relay, bytes pass both ways untouched; the end closes both."""
    backend = _Backend(b"demo", b"x", [])
    owner = StringTransport()
    backend.makeConnection(owner)
    backend.state = "ready"
    backend.done.callback(b"r2 OK")
    backend.buffer = b"* early\r\n"
    authed.proto.start_relay(backend)
    assert authed.output().endswith(b"* early\r\n")
    authed.send(b"a1 SELECT INBOX\r\n")
    assert owner.value() == b"a1 SELECT INBOX\r\n"
    backend.dataReceived(b"a1 OK [READ-WRITE] SELECT completed\r\n")
    assert authed.output() == b"a1 OK [READ-WRITE] SELECT completed\r\n"
    backend.connectionLost()
    assert authed.transport.disconnecting


def test_pipelined_commands_cannot_be_relayed(conv):
    """Commands queued after LOGIN cannot be handed on: BYE, both closed."""
    backend = _Backend(b"demo", b"x", [])
    owner = StringTransport()
    backend.makeConnection(owner)
    conv.proto._queue.append("a parsed command")
    conv.proto.start_relay(backend)
    assert b"* BYE Commands pipelined after a relayed LOGIN" in conv.output()
    assert owner.disconnecting and conv.transport.disconnecting


def test_sasl_logins_are_relayed_as_authenticate_plain():
    """
    A client that said AUTHENTICATE gets AUTHENTICATE PLAIN at the owner,
    its authzid and every byte of its password kept (CR LF included, which
    no quoted string may hold).
    """
    import base64

    command = login_command(b"alice", "p\r\nä".encode(), b"alice")
    verb, mechanism, response = command.split(b" ")
    assert (verb, mechanism) == (b"AUTHENTICATE", b"PLAIN")
    assert base64.b64decode(response) == b"alice\0alice\0" + "p\r\nä".encode()
    assert base64.b64decode(login_command(b"bob", b"pw", b"").split()[2]) == b"\0bob\0pw"


def test_backend_says_starttls_first():
    """With relay_tls, STARTTLS after the greeting; ID only once TLS started."""
    from tests.imapd.conftest import TLSStringTransport

    creator = object()
    backend = _Backend(b"alice", b'LOGIN "alice" "pw"', [("x-proxy-ttl", "4")], tls=creator)
    transport = TLSStringTransport()
    backend.makeConnection(transport)
    backend.dataReceived(b"* OK ready\r\n")
    assert transport.value() == b"r0 STARTTLS\r\n" and not transport.tls_started
    transport.clear()
    backend.dataReceived(b"r0 OK Begin TLS negotiation now\r\n")
    assert transport.tls_started
    assert transport.value() == b'r1 ID ("x-proxy-ttl" "4")\r\n'


def test_refused_starttls_fails_the_relay():
    backend = _Backend(b"a", b"LOGIN a b", [], tls=object())
    transport = StringTransport()
    backend.makeConnection(transport)
    backend.dataReceived(b"* OK ready\r\nr0 NO [PRIVACYREQUIRED] no TLS here\r\n")
    assert result(backend.done).check(ConnectionError)
    assert transport.disconnecting


def test_input_after_a_relayed_login_reaches_the_owner_raw(server):
    """
    With relaying on (context.relay), what the client pipelines after a
    LOGIN whose answer is pending is not parsed: when the login turns out
    to be relayed, the owner gets those bytes as the client sent them.
    """
    import dataclasses

    from imapd.cluster.relay import RelayOptions
    from tests.imapd.conftest import Conversation

    pending = defer.Deferred()

    class Waiting:
        def requestAvatar(self, avatarId, mind, *interfaces):
            return pending

    server.portal.realm = Waiting()
    conv = Conversation(dataclasses.replace(server, relay=RelayOptions()), server.reactor)
    conv.output()
    pipelined = b"b SELECT INBOX\r\nc APPEND INBOX {5+}\r\nhello\r\nd NOOP\r\n"
    conv.send(b"a LOGIN demo demo\r\n" + pipelined)
    assert conv.proto._busy and not conv.proto._queue
    backend = _Backend(b"demo", b"x", [])
    owner = StringTransport()
    backend.makeConnection(owner)
    conv.proto.start_relay(backend)
    assert owner.value() == pipelined
    assert not conv.transport.disconnecting
    conv.send(b"e LOGOUT\r\n")
    assert owner.value() == pipelined + b"e LOGOUT\r\n"


def test_held_input_is_served_here_after_a_local_login(server):
    """Relaying on, a user owned here: the pipelined commands run here."""
    import dataclasses

    from imapd.cluster.relay import RelayOptions
    from tests.imapd.conftest import PASSWORD, USER, Conversation

    conv = Conversation(dataclasses.replace(server, relay=RelayOptions()), server.reactor)
    conv.output()
    conv.send(f"a LOGIN {USER} {PASSWORD}\r\nb SELECT INBOX\r\nc NOOP\r\n".encode())
    tags = [line.split(" ", 1)[0] for line in conv.lines() if not line.startswith("*")]
    assert tags == ["a", "b", "c"]
