"""
COMPRESS=DEFLATE (RFC 4978): after the tagged OK both directions are raw
DEFLATE, each server write flushed so it decodes on its own; on each store.
"""

import zlib


class Client:
    """The client's half of the compressed stream over a Conversation."""

    def __init__(self, conv):
        self.conv = conv
        self.deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
        self.inflate = zlib.decompressobj(-15)

    def send(self, data: bytes) -> None:
        self.conv.send(self.deflate.compress(data) + self.deflate.flush(zlib.Z_SYNC_FLUSH))

    def lines(self) -> list[str]:
        raw = self.conv.output()
        # Z_SYNC_FLUSH per write: everything sent so far decodes now.
        plain = self.inflate.decompress(raw)
        assert not self.inflate.unconsumed_tail
        return [l for l in plain.decode().split("\r\n") if l]


def test_rfc4978_example(authed):
    """RFC 4978 section 3's exchange: OK in clear, then NOOP/SELECT compressed both ways."""
    assert "COMPRESS=DEFLATE" in authed.ok("c0 CAPABILITY")[0].split()
    assert authed.transact("a COMPRESS DEFLATE") == ["a OK DEFLATE active"]
    client = Client(authed)
    client.send(b"b NOOP\r\n")
    assert client.lines() == ["b OK NOOP completed"]
    client.send(b"c SELECT INBOX\r\n")
    lines = client.lines()
    assert lines[-1] == "c OK [READ-WRITE] SELECT completed"
    assert "* 0 EXISTS" in lines


def test_append_literal_and_split_input(authed):
    """A synchronizing literal works compressed, and input split at any octet is reassembled."""
    authed.ok("c1 COMPRESS DEFLATE")
    client = Client(authed)
    msg = b"Subject: squeezed\r\n\r\n" + b"body line\r\n" * 200
    client.send(b"a1 APPEND INBOX {%d}\r\n" % len(msg))
    assert client.lines() == ["+ Ready for literal data"]
    client.send(msg + b"\r\n")
    assert client.lines()[-1].startswith("a1 OK [APPENDUID ")
    payload = client.deflate.compress(b"s1 SELECT INBOX\r\nf1 FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])\r\n")
    payload += client.deflate.flush(zlib.Z_SYNC_FLUSH)
    for i in range(len(payload)):
        authed.send(payload[i:i + 1])
    lines = client.lines()
    assert "Subject: squeezed" in lines
    assert lines[-1] == "f1 OK FETCH completed"


def test_repeated_unknown_and_before_login(conv):
    """Before login COMPRESS is refused; an unknown mechanism is BAD; a second COMPRESS is NO [COMPRESSIONACTIVE]."""
    assert conv.transact("a0 COMPRESS DEFLATE")[-1].startswith("a0 BAD ")
    conv.login()
    assert conv.transact("a1 COMPRESS LZMA")[-1] == "a1 BAD Unknown compression mechanism LZMA"
    conv.ok("a2 COMPRESS DEFLATE")
    client = Client(conv)
    client.send(b"a3 COMPRESS DEFLATE\r\n")
    assert client.lines() == ["a3 NO [COMPRESSIONACTIVE] DEFLATE is already active"]


def test_pipelined_after_compress(authed):
    """Data sent before the COMPRESS reply is a BAD and compression stays off (as Dovecot)."""
    authed.send(b"c1 COMPRESS DEFLATE\r\nn1 NOOP\r\n")
    assert authed.lines() == [
        "c1 BAD Client did not wait for the COMPRESS reply before sending more data",
        "n1 OK NOOP completed",
    ]
    assert authed.ok("n2 NOOP") == ["n2 OK NOOP completed"]


def test_after_starttls(conv):
    """COMPRESS also works when TLS is up (compression sits above the TLS transport)."""
    conv.ok("t1 STARTTLS")
    assert conv.transport.tls_started
    conv.login()
    conv.ok("c1 COMPRESS DEFLATE")
    client = Client(conv)
    client.send(b"n1 NOOP\r\n")
    assert client.lines() == ["n1 OK NOOP completed"]


def test_garbage_and_bomb(authed, new_conv):
    """Invalid DEFLATE input ends the session with BYE; a huge expanding line meets the line limit."""
    authed.ok("c1 COMPRESS DEFLATE")
    client = Client(authed)
    authed.send(b"\xff\xff\xff\xff garbage")
    assert client.lines() == ["* BYE Invalid compressed data"]
    assert authed.transport.disconnecting

    other = new_conv()
    other.login()
    other.ok("c1 COMPRESS DEFLATE")
    client = Client(other)
    client.send(b"x1 NOOP " + b"a" * (32 * 1024 * 1024) + b"\r\n")
    lines = client.lines()
    assert lines and ("BAD" in lines[0] or "BYE" in lines[0]), lines
