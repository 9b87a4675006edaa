"""
The LMTP server (RFC 2033) over a StringTransport with a fake clock, on
real stores (Maildir and mbox): pipelining, one reply per recipient,
errors and limits.
"""

from __future__ import annotations

from tests.delivery.delivery_helpers import messages_of

MESSAGE = b"From: sender@example.net\r\nSubject: hello\r\n\r\nbody line\r\n"


def transaction(rcpts, data=MESSAGE, sender="sender@example.net") -> bytes:
    out = b"LHLO mta.test\r\n" + f"MAIL FROM:<{sender}>\r\n".encode()
    out += b"".join(f"RCPT TO:<{r}>\r\n".encode() for r in rcpts)
    return out + b"DATA\r\n" + data + b".\r\n"


def test_lhlo_advertises_extensions(make_lmtp):
    """LHLO answers with the extensions the MTA may use (RFC 2033 4.1)."""
    lmtp = make_lmtp(max_message_size=12345)
    assert lmtp.send(b"LHLO mta.test\r\n") == [
        "250-lmtp.test", "250-PIPELINING", "250-ENHANCEDSTATUSCODES", "250-8BITMIME",
        "250 SIZE 12345"]


def test_pipelined_transaction_one_reply_per_recipient(make_lmtp, location, tmp_path):
    """
    The whole transaction in one write (PIPELINING): the replies come in
    order, DATA gets one reply per accepted recipient (RFC 2033 4.2), the
    unknown one is refused at RCPT, and both users have the message with
    Return-Path and Delivered-To in front.
    """
    lmtp = make_lmtp()
    lines = lmtp.send(transaction(["alice@example.org", "nobody@example.org",
                                   "bob@example.org"]) + b"QUIT\r\n")
    assert lines[5:] == [
        "250 2.1.0 Ok",
        "250 2.1.5 Ok",
        "550 5.1.1 <nobody@example.org>: no such user here",
        "250 2.1.5 Ok",
        "354 Start mail input; end with <CRLF>.<CRLF>",
        "250 2.0.0 <alice@example.org> Saved",
        "250 2.0.0 <bob@example.org> Saved",
        "221 2.0.0 Bye",
    ]
    for user, address in (("alice", "alice@example.org"), ("bob@example.org",
                                                            "bob@example.org")):
        (stored,) = messages_of(location, user, tmp_path)
        assert stored.replace(b"\r\n", b"\n") == (
            b"Return-Path: <sender@example.net>\nDelivered-To: " + address.encode()
            + b"\n" + MESSAGE.replace(b"\r\n", b"\n"))


def test_dot_unstuffing_and_split_writes(make_lmtp, location, tmp_path):
    """
    RFC 5321 4.5.2: a leading dot is removed; the end marker is found even
    when it arrives one octet at a time, and CRLF.CRLF inside a line
    ("a.\\r\\n") is content.
    """
    raw = transaction(["alice"], b"Subject: dots\r\n\r\n...leading dot\r\n")
    lmtp = make_lmtp()
    replies = []
    for i in range(len(raw)):
        replies += lmtp.send(raw[i:i + 1])
    assert replies[-1] == "250 2.0.0 <alice> Saved"
    (stored,) = messages_of(location, "alice", tmp_path)
    assert stored.replace(b"\r\n", b"\n").endswith(b"\n\n..leading dot\n")


def test_bare_lf_dot_does_not_end_data(make_lmtp, location, tmp_path):
    """
    Only CRLF.CRLF ends DATA: LF.LF is content (no SMTP smuggling of a
    second message).
    """
    lmtp = make_lmtp()
    data = b"Subject: a\r\n\r\nfirst\n.\nMAIL FROM:<x@y>\r\n"
    lines = lmtp.send(transaction(["alice"], data))
    assert lines[-1] == "250 2.0.0 <alice> Saved"
    (stored,) = messages_of(location, "alice", tmp_path)
    assert b"MAIL FROM:<x@y>" in stored


def test_user_plus_detail_to_existing_folder(location, passwd_file, tmp_path, make_lmtp):
    """
    With recipient_delimiter "+", alice+lists goes to alice's "lists"
    when it exists and to INBOX when it does not.
    """
    from tests.delivery.delivery_helpers import make_deliverer, open_user_store

    store = open_user_store(location, "alice", tmp_path)
    store.create("lists")
    store.close()
    lmtp = make_lmtp(deliverer=make_deliverer(location, passwd_file, tmp_path,
                                              delimiter="+"))
    assert lmtp.send(transaction(["alice+lists@example.org", "alice+none@example.org"]))[-2:] \
        == ["250 2.0.0 <alice+lists@example.org> Saved",
            "250 2.0.0 <alice+none@example.org> Saved"]
    assert len(messages_of(location, "alice", tmp_path, "lists")) == 1
    (inbox,) = messages_of(location, "alice", tmp_path)
    assert b"Delivered-To: alice+none@example.org" in inbox


def test_over_quota_is_552_per_recipient(location, passwd_file, tmp_path, make_lmtp):
    """A user at the [quota] limit gets 552 5.2.2; the other still gets it."""
    from imapd.server import QuotaLimits, QuotaPolicy
    from tests.delivery.delivery_helpers import make_deliverer

    policy = QuotaPolicy(QuotaLimits(), (("alice", QuotaLimits(messages=1)),))
    lmtp = make_lmtp(deliverer=make_deliverer(location, passwd_file, tmp_path, quota=policy))
    assert lmtp.send(transaction(["alice"]))[-1] == "250 2.0.0 <alice> Saved"
    lines = lmtp.send(transaction(["alice", "bob@example.org"]))
    assert lines[-2].startswith("552 5.2.2 <alice> Quota exceeded")
    assert lines[-1] == "250 2.0.0 <bob@example.org> Saved"
    assert len(messages_of(location, "alice", tmp_path)) == 1


def test_sequence_errors(make_lmtp):
    """MAIL before LHLO, RCPT before MAIL, DATA without recipients: 503."""
    lmtp = make_lmtp()
    assert lmtp.send(b"MAIL FROM:<a@b>\r\n") == ["503 5.5.1 Send LHLO first"]
    assert lmtp.send(b"HELO x\r\n") == ["500 5.5.1 This is LMTP: use LHLO"]
    lmtp.send(b"LHLO x\r\n")
    assert lmtp.send(b"RCPT TO:<alice>\r\n") == ["503 5.5.1 Send MAIL FROM first"]
    assert lmtp.send(b"DATA\r\n") == ["503 5.5.1 Send MAIL FROM first"]
    assert lmtp.send(b"MAIL FROM:<>\r\n") == ["250 2.1.0 Ok"]
    assert lmtp.send(b"MAIL FROM:<>\r\n") == ["503 5.5.1 Nested MAIL command"]
    assert lmtp.send(b"RCPT TO:<nobody>\r\n")[0].startswith("550 5.1.1")
    assert lmtp.send(b"DATA\r\n") == ["503 5.5.1 No valid recipients"]
    assert lmtp.send(b"RSET\r\n") == ["250 2.0.0 Ok"]
    assert lmtp.send(b"RCPT TO:<alice>\r\n") == ["503 5.5.1 Send MAIL FROM first"]
    assert lmtp.send(b"NOOP\r\n") == ["250 2.0.0 Ok"]
    assert lmtp.send(b"VRFY alice\r\n")[0].startswith("252 2.5.0")
    assert lmtp.send(b"BOGUS\r\n") == ["500 5.5.1 Command not recognized"]


def test_bad_addresses_and_parameters(make_lmtp):
    """Bad paths are 501 5.1.3; unknown parameters 555 5.5.4."""
    lmtp = make_lmtp()
    lmtp.send(b"LHLO x\r\n")
    assert lmtp.send(b"MAIL FROM:alice\r\n")[0].startswith("501 5.1.3")
    assert lmtp.send(b"MAIL FROM:<a@b> BODY=BINARYMIME\r\n")[0].startswith("555 5.5.4")
    assert lmtp.send(b"MAIL FROM:<a@b> SIZE=12 BODY=8BITMIME\r\n") == ["250 2.1.0 Ok"]
    assert lmtp.send(b"RCPT TO:<>\r\n")[0].startswith("501 5.1.3")
    assert lmtp.send(b"RCPT TO:<alice> NOTIFY=NEVER\r\n")[0].startswith("555 5.5.4")


def test_size_refused_at_mail_from(make_lmtp):
    """RFC 1870: a declared SIZE over the limit is refused before DATA."""
    lmtp = make_lmtp(max_message_size=100)
    lmtp.send(b"LHLO x\r\n")
    assert lmtp.send(b"MAIL FROM:<a@b> SIZE=101\r\n") == [
        "552 5.3.4 Message size exceeds fixed maximum message size"]


def test_too_big_data_is_read_and_refused(make_lmtp, location, tmp_path):
    """
    A message over the limit without SIZE= is read to its end (the
    connection stays usable) and refused for every recipient; nothing is
    stored.
    """
    lmtp = make_lmtp(max_message_size=100)
    big = b"Subject: big\r\n\r\n" + b"x" * 70 + b"\r\n" + b"y" * 70 + b"\r\n"
    lines = lmtp.send(transaction(["alice", "bob@example.org"], big))
    assert lines[-2:] == ["552 5.3.4 Message too big", "552 5.3.4 Message too big"]
    assert lmtp.send(b"NOOP\r\n") == ["250 2.0.0 Ok"]
    assert messages_of(location, "alice", tmp_path) == []


def test_too_many_recipients(make_lmtp):
    """RFC 5321 4.5.3.1.10: past the limit, 452 4.5.3."""
    lmtp = make_lmtp(max_recipients=2)
    lines = lmtp.send(b"LHLO x\r\nMAIL FROM:<>\r\n" + b"RCPT TO:<alice>\r\n" * 3)
    assert lines[-3:] == ["250 2.1.5 Ok", "250 2.1.5 Ok", "452 4.5.3 Too many recipients"]


def test_long_command_line_refused(make_lmtp):
    """A command line over max_line is refused without being kept."""
    lmtp = make_lmtp(max_line=100)
    assert lmtp.send(b"NOOP " + b"x" * 200) == ["500 5.5.2 Line too long"]
    assert lmtp.send(b"x" * 200) == []
    assert lmtp.proto._buffer == b""
    assert lmtp.send(b"\r\nNOOP\r\n") == ["250 2.0.0 Ok"]


def test_idle_connection_times_out(make_lmtp, clock):
    """A silent connection is closed with 421 after the timeout."""
    lmtp = make_lmtp(timeout=10)
    clock.advance(9)
    assert lmtp.lines() == []
    clock.advance(2)
    assert lmtp.lines() == ["421 4.4.2 lmtp.test Timeout, closing"]
    assert lmtp.transport.disconnecting


def test_store_failures_are_temporary(make_lmtp, deliverer, monkeypatch, location, tmp_path):
    """
    A lock timeout is 451 4.2.0 and a full disk 451 4.3.1; the other
    recipient's delivery is unaffected and nothing of the failed one is
    left behind.
    """
    import errno

    from storage.errors import LockUnavailable, StoreError

    real = deliverer._open_store

    def failing(location_, user, home, index):
        store = real(location_, user, home, index)
        if user == "alice":
            def boom(name, readonly=False):
                if readonly:
                    return type(store).open(store, name, readonly)
                raise failure
            store.open = boom
        return store
    monkeypatch.setattr(deliverer, "_open_store", failing)
    lmtp = make_lmtp()
    failure = LockUnavailable("timed out waiting for the lock")
    lines = lmtp.send(transaction(["alice", "bob@example.org"]))
    assert lines[-2].startswith("451 4.2.0 <alice>")
    assert lines[-1] == "250 2.0.0 <bob@example.org> Saved"
    failure = StoreError("cannot write")
    failure.__cause__ = OSError(errno.ENOSPC, "No space left on device")
    assert lmtp.send(transaction(["alice"]))[-1].startswith("451 4.3.1 <alice>")
    assert messages_of(location, "alice", tmp_path) == []


def test_hung_delivery_answers_451_after_timeout(deliverer, clock, make_lmtp, monkeypatch):
    """
    A delivery that does not finish (a hung store) is answered 451 once
    delivery_timeout passes, and the connection goes on.
    """
    from twisted.internet import defer

    from imapd.delivery.lmtp import LMTPFactory

    hung = defer.Deferred()
    real_run = LMTPFactory.run

    def run(self, user, fn, *args):
        if fn in (deliverer.deliver, deliverer.deliver_batch):
            return hung
        return real_run(self, user, fn, *args)
    monkeypatch.setattr(LMTPFactory, "run", run)
    lmtp = make_lmtp(delivery_timeout=5)
    lines = lmtp.send(transaction(["alice"]) + b"NOOP\r\n")
    assert lines[-1] == "354 Start mail input; end with <CRLF>.<CRLF>"
    clock.advance(5)
    assert lmtp.lines() == ["451 4.3.0 <alice> Mail store not responding, try again later",
                            "250 2.0.0 Ok"]
    hung.callback(("INBOX", 1))  # late: only logged


def test_reading_stops_only_when_held_back_input_grows(deliverer, make_lmtp, monkeypatch):
    """
    While a RCPT lookup waits for the pool, the commands pipelined after
    it wait in the buffer with the transport still reading (no pause and
    resume per command); input held back beyond 64 kB stops reading, the
    lookup's answer starts it again, and the replies keep command order.
    """
    from twisted.internet import defer

    from imapd.delivery.lmtp import LMTPFactory

    waiting: list = []
    real_run = LMTPFactory.run

    def run(self, user, fn, *args):
        if fn == deliverer.resolve:
            d = defer.Deferred()
            waiting.append((d, fn, args))
            return d
        return real_run(self, user, fn, *args)
    monkeypatch.setattr(LMTPFactory, "run", run)
    lmtp = make_lmtp()
    assert lmtp.send(b"LHLO mta.test\r\nMAIL FROM:<s@example.net>\r\n"
                     b"RCPT TO:<alice>\r\nNOOP\r\n")[-1] == "250 2.1.0 Ok"
    assert len(waiting) == 1
    assert lmtp.transport.producerState == "producing"
    noops = b"NOOP\r\n" * (70 * 1024 // 6)
    assert lmtp.send(noops) == []
    assert lmtp.transport.producerState == "paused"
    d, fn, args = waiting.pop()
    d.callback(fn(*args))
    assert lmtp.transport.producerState == "producing"
    lines = lmtp.lines()
    assert lines[0] == "250 2.1.5 Ok"
    assert lines[1:] == ["250 2.0.0 Ok"] * (1 + len(noops) // 6)


def test_connections_beyond_the_limit_get_421(make_lmtp):
    """Past max_connections, a new connection hears 421 4.3.2; a closed one frees a place."""
    from twisted.internet.testing import StringTransport

    first = make_lmtp(max_connections=1)
    factory = first.proto.factory
    extra = factory.buildProtocol(None)
    transport = StringTransport()
    extra.makeConnection(transport)
    assert transport.value() == b"421 4.3.2 lmtp.test Too many connections, try again later\r\n"
    assert transport.disconnecting
    first.proto.connectionLost(None)
    again = factory.buildProtocol(None)
    again.makeConnection(StringTransport())
    assert factory.connections == 1


class _Recorder:
    """A deliverer that keeps what it is given (the protocol alone under test)."""

    def __init__(self) -> None:
        self.got = []

    def resolve(self, address):
        from imapd.delivery.core import Recipient

        return Recipient(address, address)

    def batchable(self, recipient):
        return False

    def deliver(self, recipient, message, sender):
        data = message.with_prefix(b"")
        self.got.append(data if isinstance(data, bytes) else data.read())
        return "INBOX", len(self.got)


def test_dot_unstuffing_matches_at_any_chunking(make_lmtp):
    """
    Random content (lines starting with dots, bare CR and LF, long lines)
    dot-stuffed by the client and cut at random places arrives exactly as
    it was, large messages included (spilled to a file).
    """
    import random

    rng = random.Random(2033)
    for round_ in range(12):
        lines = []
        for _ in range(rng.randrange(1, 400)):
            pieces = [rng.choice([b".", b"..", b"x", b"\r", b"\n", b"abc", b" .",
                                  b"y" * rng.randrange(0, 3000)])
                      for _ in range(rng.randrange(0, 6))]
            lines.append(b"".join(pieces).replace(b"\r\n", b"\r_\n"))
        original = b"".join(line + b"\r\n" for line in lines)
        stuffed = b"".join((b"." + line if line.startswith(b".") else line) + b"\r\n"
                           for line in lines)
        recorder = _Recorder()
        lmtp = make_lmtp(deliverer=recorder)
        raw = b"LHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<u>\r\nDATA\r\n" + stuffed + b".\r\n"
        replies = []
        pos = 0
        while pos < len(raw):
            step = rng.choice([1, 2, 3, 7, 100, 4096, 65536])
            replies += lmtp.send(raw[pos:pos + step])
            pos += step
        assert replies[-1] == "250 2.0.0 <u> Saved", (round_, replies)
        assert recorder.got == [original], round_


def test_large_message_is_received_in_linear_time(make_lmtp):
    """
    Eight megabytes of short lines in 64 KiB writes take well under a
    second of CPU: runs of lines are stored at once, and only a line
    that starts with a dot is looked at (copying the rest of each read
    per line took 3 to 5 seconds here).
    """
    import time

    recorder = _Recorder()
    lmtp = make_lmtp(deliverer=recorder)
    body = b"a short line of text, as mail has\r\n.stuffed\r\n" * 180_000
    raw = b"LHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<u>\r\nDATA\r\n" + body + b".\r\n"
    started = time.process_time()
    for pos in range(0, len(raw), 65536):
        lmtp.proto.dataReceived(raw[pos:pos + 65536])
    spent = time.process_time() - started
    assert lmtp.lines()[-1] == "250 2.0.0 <u> Saved"
    assert recorder.got[0] == body.replace(b"\r\n.stuffed", b"\r\nstuffed")
    assert spent < 2.5, spent


def test_user_database_unavailable_is_a_temporary_failure(make_lmtp, location, tmp_path):
    """
    The user database could not answer (LDAP down): RCPT gets a 4xx, not
    "no such user" (which would bounce mail the directory knows about),
    and the log names the server.
    """
    from twisted.logger import globalLogPublisher

    from imapd.auth.errors import AuthUnavailable
    from imapd.delivery.core import Deliverer

    def lookup(name):
        raise AuthUnavailable("no LDAP server answered: ldap://ldap1: refused")

    events = []
    globalLogPublisher.addObserver(events.append)
    try:
        lmtp = make_lmtp(Deliverer(location, lookup, str(tmp_path / "index")))
        lmtp.send(b"LHLO x\r\n")
        lmtp.send(b"MAIL FROM:<>\r\n")
        reply = lmtp.send(b"RCPT TO:<alice>\r\n")
    finally:
        globalLogPublisher.removeObserver(events.append)
    assert len(reply) == 1 and reply[0].startswith("451 4.") and "Temporary" in reply[0], reply
    assert any("ldap://ldap1" in str(e.get("reason", "")) for e in events)



def test_the_reply_goes_out_before_the_delivery_is_logged(make_lmtp):
    """
    The 250 of a delivery is written before its "Delivered to" log line is
    emitted: in the multi-process shape that line crosses to the master,
    and on a single connection the MTA waited for it before.
    """
    from twisted.logger import globalLogPublisher

    lmtp = make_lmtp()
    written_when_logged = []

    def observe(event):
        if "Delivered to" in event.get("log_format", ""):
            written_when_logged.append(lmtp.transport.value())

    globalLogPublisher.addObserver(observe)
    try:
        lines = lmtp.send(transaction(["alice"]))
    finally:
        globalLogPublisher.removeObserver(observe)
    assert lines[-1] == "250 2.0.0 <alice> Saved"
    assert len(written_when_logged) == 1
    assert written_when_logged[0].endswith(b"250 2.0.0 <alice> Saved\r\n")
