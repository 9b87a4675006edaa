"""
ID x-originating-ip from a trusted proxy (haproxy_trusted_networks): the
failed-login ledger and the log use the client's address it names.
"""

from imapd.proxyprotocol import parse_networks

ID = 'a1 ID ("name" "proxy" "x-originating-ip" "192.0.2.5" "x-originating-port" "4444")'


def fail_login(conv):
    conv.send(b"a2 LOGIN demo wrong\r\n")
    conv.clock.advance(conv.context.limits.failed_login_delay)
    assert conv.lines()[-1].startswith("a2 NO [AUTHENTICATIONFAILED]")


def level(conv, address):
    ledger = conv.context.login_failures
    return ledger.level(address, conv.clock.seconds(), conv.context.limits.failed_login_decay)


def test_trusted_proxy_names_the_client(conv):
    """From a trusted proxy, failures count against the originating address."""
    conv.context.trusted_proxies = parse_networks(["127.0.0.0/8"])
    conv.ok(ID)
    assert conv.proto.peer == "192.0.2.5:4444"
    fail_login(conv)
    assert level(conv, "192.0.2.5") > 0.5
    assert level(conv, "127.0.0.1") == 0


def test_untrusted_peer_is_not_believed(conv):
    """From anywhere else the fields are only logged."""
    conv.context.trusted_proxies = parse_networks(["10.0.0.0/8"])
    conv.ok(ID)
    assert conv.proto.peer == "127.0.0.1:40000"
    fail_login(conv)
    assert level(conv, "127.0.0.1") > 0.5
    assert level(conv, "192.0.2.5") == 0


def test_not_after_login(authed):
    """After login the address cannot change."""
    authed.context.trusted_proxies = parse_networks(["127.0.0.0/8"])
    authed.ok(ID.replace("a1", "b1"))
    assert authed.proto.peer == "127.0.0.1:40000"


def test_bad_address_ignored(conv):
    """An x-originating-ip that is not an address changes nothing."""
    conv.context.trusted_proxies = parse_networks(["127.0.0.0/8"])
    conv.ok('a1 ID ("x-originating-ip" "not-an-ip")')
    assert conv.proto.peer == "127.0.0.1:40000"
