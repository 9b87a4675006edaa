"""
LMTP end to end: the real daemon (C{twistd -n imapd} with C{lmtp_listen})
and Python's C{smtplib.LMTP}, a client nobody here wrote, over TCP and a
UNIX socket, on Maildir and mbox; the messages are then read over IMAP.
"""

from __future__ import annotations

import imaplib
import os
import smtplib
import stat
import time

import pytest

from e2e_helpers import free_ports, start_server
from tests.delivery.delivery_helpers import idling, location_for

MESSAGE = (b"From: Sender <sender@example.net>\r\nTo: alice@example.org\r\n"
           b"Subject: over LMTP\r\n\r\nHello over LMTP.\r\n.leading dot\r\n")


@pytest.fixture(params=["maildir", "mbox"])
def lmtp_server(request, tmp_path, tls_files):
    """A daemon with an LMTP listener on TCP and one on a UNIX socket."""
    (port,) = free_ports(1)
    socket_path = tmp_path / "lmtp.sock"
    server = start_server(tmp_path, tls_files, {
        "lmtp_listen": [f"tcp:{port}:interface=127.0.0.1", f"unix:{socket_path}"],
        "mail": {"location": location_for(request.param, tmp_path)},
        "lmtp": {"recipient_delimiter": "+"},
        # IDLE's poll far away: a wake-up must come from the delivery.
        "limits": {"idle_poll_interval": 30.0},
    })
    server.lmtp_port = port
    server.lmtp_socket = str(socket_path)
    yield server
    server.daemon.stop()


def imap_login(server) -> imaplib.IMAP4:
    imap = imaplib.IMAP4(server.host, server.port, timeout=30)
    imap.starttls(server.ssl_context())
    imap.login(server.user, server.password)
    return imap


def inbox_messages(server) -> list[bytes]:
    imap = imap_login(server)
    try:
        typ, data = imap.select("INBOX")
        assert typ == "OK"
        count = int(data[0])
        if not count:
            return []
        typ, data = imap.fetch("1:*", "(BODY.PEEK[])")
        return [part[1] for part in data if isinstance(part, tuple)]
    finally:
        imap.logout()


def test_smtplib_lmtp_over_tcp_and_unix(lmtp_server):
    """
    smtplib.LMTP delivers over TCP and over the UNIX socket; an unknown
    recipient is refused at RCPT (550 5.1.1); IMAP then shows both
    messages with Return-Path and Delivered-To, dot-unstuffed.
    """
    with smtplib.LMTP(lmtp_server.host, lmtp_server.lmtp_port) as lmtp:
        code, text = lmtp.ehlo_or_helo_if_needed() or (250, b"")
        assert lmtp.has_extn("pipelining") and lmtp.has_extn("enhancedstatuscodes")
        assert lmtp.has_extn("8bitmime") and lmtp.has_extn("size")
        refused = lmtp.sendmail("sender@example.net", ["alice@example.org"], MESSAGE)
        assert refused == {}
        with pytest.raises(smtplib.SMTPRecipientsRefused) as info:
            lmtp.sendmail("sender@example.net", ["nobody@example.org"], MESSAGE)
        assert info.value.recipients["nobody@example.org"][0] == 550
    with smtplib.LMTP(lmtp_server.lmtp_socket) as lmtp:
        assert lmtp.sendmail("<>", ["alice+nofolder@example.org"], MESSAGE) == {}
    messages = inbox_messages(lmtp_server)
    assert len(messages) == 2
    first, second = (m.replace(b"\r\n", b"\n") for m in messages)
    assert first.startswith(b"Return-Path: <sender@example.net>\nDelivered-To: "
                            b"alice@example.org\nFrom: Sender")
    assert first.endswith(b"Hello over LMTP.\n.leading dot\n")
    assert b"Delivered-To: alice+nofolder@example.org\n" in second


def test_per_recipient_replies_after_data(lmtp_server):
    """
    Two recipients, one over quota-free INBOX and one unknown user at RCPT:
    after DATA, exactly one reply per accepted recipient (RFC 2033 4.2),
    read with smtplib's own reply reader.
    """
    with smtplib.LMTP(lmtp_server.host, lmtp_server.lmtp_port) as lmtp:
        lmtp.ehlo("mta.test")
        assert lmtp.mail("sender@example.net", ["BODY=8BITMIME", "SIZE=%d" % len(MESSAGE)]
                         )[0] == 250
        assert lmtp.rcpt("alice@example.org")[0] == 250
        assert lmtp.rcpt("ghost@example.org")[0] == 550
        assert lmtp.rcpt("alice+x@example.org")[0] == 250
        code, text = lmtp.data(MESSAGE)
        assert (code, text) == (250, b"2.0.0 <alice@example.org> Saved")
        code, text = lmtp.getreply()
        assert (code, text) == (250, b"2.0.0 <alice+x@example.org> Saved")
        assert lmtp.noop()[0] == 250
    assert len(inbox_messages(lmtp_server)) == 2


def test_size_limit_refused_at_mail_from(lmtp_server):
    """SIZE= beyond limits.max_literal (the default limit) is refused with 552."""
    with smtplib.LMTP(lmtp_server.host, lmtp_server.lmtp_port) as lmtp:
        lmtp.ehlo("mta.test")
        limit = int(lmtp.esmtp_features["size"])
        assert limit == 64 * 1024 * 1024
        code, text = lmtp.mail("a@b", [f"SIZE={limit + 1}"])
        assert code == 552 and text.startswith(b"5.3.4")


def test_idle_session_sees_delivery_quickly(lmtp_server):
    """
    A session in IDLE gets EXISTS well before its poll (30 s here) after
    an LMTP delivery: the delivery wakes it (inotify on the mailbox).
    """
    client = idling(lmtp_server)
    try:
        started = time.monotonic()
        with smtplib.LMTP(lmtp_server.host, lmtp_server.lmtp_port) as lmtp:
            lmtp.sendmail("sender@example.net", ["alice@example.org"], MESSAGE)
        delivered = time.monotonic()
        lines = client.unsolicited(1, seconds=10)
        seen = time.monotonic()
        assert lines and lines[0] == "* 1 EXISTS", lines
        # Far below the 30 s poll; generous for a loaded 2-core machine.
        assert seen - started < 5.0, (seen - started, delivered - started)
        client.imap.send(b"DONE\r\n")
        while not (line := client.imap.readline()).startswith(b"i1 "):
            assert line.startswith(b"* "), line
        assert line.startswith(b"i1 OK")
        print(f"EXISTS {seen - delivered:.3f}s after the LMTP reply")
    finally:
        client.close()


def test_idle_session_sees_lda_delivery_quickly(lmtp_server):
    """
    A delivery by another process (imapd-deliver, the LDA) also wakes an
    IDLE session well before its 30 s poll: inotify on the mailbox's
    files, not a notice from within the daemon.
    """
    import subprocess
    import sys

    from e2e_helpers import REPO, daemon_env

    client = idling(lmtp_server)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "imapd.delivery.lda", "-c", str(lmtp_server.config),
             "-d", "alice"], input=MESSAGE, env=daemon_env(), cwd=REPO,
            capture_output=True, timeout=60)
        assert result.returncode == 0, result.stderr
        delivered = time.monotonic()
        lines = client.unsolicited(1, seconds=10)
        assert lines and lines[0] == "* 1 EXISTS", lines
        assert time.monotonic() - delivered < 5.0
        print(f"EXISTS {time.monotonic() - delivered:.3f}s after the LDA exited")
    finally:
        client.close()


def test_hung_store_answers_451_and_spares_other_users(tmp_path, tls_files):
    """
    A recipient whose mailbox hangs (its mbox INBOX is a FIFO: opening it
    blocks as a read from a dead NFS server does) gets 451 4.3.0 after
    lmtp.delivery_timeout; the other recipient of the same message gets
    250, later deliveries to others go through at once, and nothing was
    written for the hung one.
    """
    (port,) = free_ports(1)
    server = start_server(tmp_path, tls_files, {
        "lmtp_listen": [f"tcp:{port}:interface=127.0.0.1"],
        "mail": {"location": location_for("mbox", tmp_path)},
        "lmtp": {"delivery_timeout": 2.0},
    }, users={"bob": "pw"})
    try:
        (tmp_path / "mail").mkdir(exist_ok=True)
        fifo = tmp_path / "mail" / "alice.inbox"
        os.mkfifo(fifo)
        with smtplib.LMTP(server.host, port) as lmtp:
            lmtp.ehlo("mta.test")
            assert lmtp.mail("sender@example.net")[0] == 250
            assert lmtp.rcpt("alice@example.org")[0] == 250
            assert lmtp.rcpt("bob@example.org")[0] == 250
            started = time.monotonic()
            code, text = lmtp.data(MESSAGE)
            assert (code, text[:5]) == (451, b"4.3.0"), text
            assert 1.5 < time.monotonic() - started < 30
            assert lmtp.getreply() == (250, b"2.0.0 <bob@example.org> Saved")
            for _ in range(3):
                started = time.monotonic()
                assert lmtp.sendmail("sender@example.net", ["bob@example.org"], MESSAGE) == {}
                assert time.monotonic() - started < 1.5
        assert stat.S_ISFIFO(os.stat(fifo).st_mode)
        assert "Delivery to alice has taken 2.0s; answered 451" in server.daemon.log()
    finally:
        server.daemon.stop()
