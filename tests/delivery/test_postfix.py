"""
A real Postfix (Debian's) delivers to our LMTP listeners through its own
C{lmtp} client, over C{lmtp:unix:} and C{lmtp:inet:}: mail is submitted
with smtplib to a private Postfix instance (its own configuration and
queue directories, loopback only, started and stopped by the test, never
the system's instance), and lands in the user's INBOX, read over IMAP.
Both stores.
"""

from __future__ import annotations

import os
import shutil
import smtplib
import subprocess
import tempfile
import time
from email.message import EmailMessage
from pathlib import Path

import pytest

from e2e_helpers import free_ports, start_server
from tests.delivery.delivery_helpers import idling

POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"

#: Every service Postfix needs to accept mail over SMTP and deliver it over
#: LMTP, none chrooted (the test's directories are not inside a chroot).
MASTER_CF = """\
{smtp_listen} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


class Postfix:
    """A private Postfix instance in C{directory} (see the module docstring)."""

    def __init__(self, directory: Path, smtp_port: int, transports: dict[str, str],
                 transport_maps: str = "") -> None:
        """
        @param transports: domain -> Postfix transport (an inline table).
        @param transport_maps: a lookup table to ask instead (a socketmap);
            the domains of C{transports} are relayed all the same.
        """
        self.dir = directory
        self.port = smtp_port
        self.log = directory / "maillog"
        (directory / "queue").mkdir()
        (directory / "data").mkdir()
        shutil.chown(directory / "data", "postfix", "postfix")
        table = transport_maps or "inline:{ " + ", ".join(
            f"{domain}={target}" for domain, target in transports.items()) + " }"
        (directory / "main.cf").write_text(f"""\
compatibility_level = 3.6
queue_directory = {directory}/queue
data_directory = {directory}/data
mail_owner = postfix
setgid_group = postdrop
syslog_name = postfix-imapd-test
maillog_file = {self.log}
maillog_file_prefixes = {directory}
myhostname = postfix.test
mydomain = postfix.test
myorigin = postfix.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
relay_domains = {", ".join(transports)}
transport_maps = {table}
smtp_host_lookup = native
lmtp_host_lookup = native
alias_maps =
alias_database =
local_recipient_maps =
biff = no
smtputf8_enable = no
append_dot_mydomain = no
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
""")
        (directory / "master.cf").write_text(MASTER_CF.format(smtp_listen=f"127.0.0.1:{smtp_port}"))

    def postfix(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([POSTFIX, "-c", str(self.dir), *args], capture_output=True,
                              text=True, timeout=60)

    def start(self) -> None:
        result = self.postfix("start")
        assert result.returncode == 0, result.stdout + result.stderr + self.maillog()
        deadline = time.monotonic() + 30
        while True:
            try:
                with smtplib.SMTP("127.0.0.1", self.port, timeout=5) as smtp:
                    smtp.noop()
                return
            except OSError:
                assert time.monotonic() < deadline, self.maillog()
                time.sleep(0.2)

    def stop(self) -> None:
        self.postfix("stop")

    def maillog(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""


@pytest.fixture(params=["maildir", "mbox"])
def setup(request, tmp_path, tls_files):
    """Our daemon with LMTP on TCP and a UNIX socket, and Postfix routing to both."""
    # Postfix's daemons run as the postfix user: the socket and the
    # instance live in a directory it may enter (pytest's is 0700).
    shared = Path(tempfile.mkdtemp(prefix="imapd-postfix-"))
    shared.chmod(0o755)
    lmtp_port, smtp_port = free_ports(2)
    socket_path = shared / "lmtp.sock"
    kind = request.param
    location = (f"mbox:{tmp_path}/mail/%u:INBOX={tmp_path}/mail/%u.inbox" if kind == "mbox"
                else f"maildir:{tmp_path}/mail/%u")
    server = start_server(tmp_path, tls_files, {
        "lmtp_listen": [f"tcp:{lmtp_port}:interface=127.0.0.1", f"unix:{socket_path}"],
        "mail": {"location": location},
        # IDLE's poll far away: only the delivery's wake-up can be quick.
        "limits": {"idle_poll_interval": 30.0},
    })
    postfix_dir = shared / "postfix"
    postfix_dir.mkdir()
    postfix = Postfix(postfix_dir, smtp_port, {
        "example.org": f"lmtp:unix:{socket_path}",
        "example.net": f"lmtp:inet:[127.0.0.1]:{lmtp_port}",
    })
    try:
        postfix.start()
        yield server, postfix
    finally:
        postfix.stop()
        server.daemon.stop()
        if os.environ.get("KEEP_POSTFIX") is None:
            shutil.rmtree(shared, ignore_errors=True)


def wait_for_inbox(server, count: int, postfix: Postfix, seconds: float = 60) -> list[bytes]:
    import imaplib

    deadline = time.monotonic() + seconds
    while True:
        imap = imaplib.IMAP4(server.host, server.port, timeout=30)
        imap.starttls(server.ssl_context())
        imap.login(server.user, server.password)
        typ, data = imap.select("INBOX", readonly=True)
        have = int(data[0])
        if have >= count:
            typ, data = imap.fetch("1:*", "(BODY.PEEK[])")
            imap.logout()
            return [part[1] for part in data if isinstance(part, tuple)]
        imap.logout()
        assert time.monotonic() < deadline, f"{have} of {count} arrived\n{postfix.maillog()}"
        time.sleep(0.3)


def test_postfix_delivers_over_lmtp_unix_and_inet(setup):
    """
    Two messages submitted to Postfix's smtpd: one routed lmtp:unix:, one
    lmtp:inet:.  Both land in alice's INBOX with Postfix's Received line
    under our Return-Path and Delivered-To, and Postfix logs them sent.
    """
    server, postfix = setup
    for n, domain in enumerate(("example.org", "example.net")):
        msg = EmailMessage()
        msg["From"] = "sender@outside.test"
        msg["To"] = f"alice@{domain}"
        msg["Subject"] = f"via postfix {n}"
        msg.set_content(f"Hello number {n}.\n.a line with a leading dot\n")
        with smtplib.SMTP("127.0.0.1", postfix.port, timeout=30) as smtp:
            smtp.send_message(msg)
    messages = wait_for_inbox(server, 2, postfix)
    subjects = set()
    for raw in messages:
        text = raw.replace(b"\r\n", b"\n")
        assert text.startswith(b"Return-Path: <sender@outside.test>\nDelivered-To: alice@"), text
        assert b"\nReceived: from " in text
        assert b"\n.a line with a leading dot\n" in text
        subjects.add(text.split(b"Subject: ", 1)[1].split(b"\n", 1)[0])
    assert subjects == {b"via postfix 0", b"via postfix 1"}
    log = postfix.maillog()
    assert "relay=" in log and "status=sent" in log, log
    assert "250 2.0.0 <alice@example.org> Saved" in log
    assert "250 2.0.0 <alice@example.net> Saved" in log


def test_postfix_bounces_unknown_user(setup):
    """An unknown recipient is refused at RCPT with 550 5.1.1, which Postfix bounces."""
    server, postfix = setup
    with smtplib.SMTP("127.0.0.1", postfix.port, timeout=30) as smtp:
        smtp.sendmail("sender@outside.test", ["ghost@example.org"],
                      b"Subject: nobody\r\n\r\nhello\r\n")
    deadline = time.monotonic() + 60
    while "status=bounced" not in postfix.maillog():
        assert time.monotonic() < deadline, postfix.maillog()
        time.sleep(0.3)
    assert "550 5.1.1" in postfix.maillog()


def test_idle_sees_mail_postfix_delivered_within_seconds(setup):
    """
    An IDLE session sees a message submitted to Postfix (queue, LMTP
    client, our LMTP) long before its 30 s poll.
    """
    server, postfix = setup
    client = idling(server)
    try:
        started = time.monotonic()
        with smtplib.SMTP("127.0.0.1", postfix.port, timeout=30) as smtp:
            smtp.sendmail("sender@outside.test", ["alice@example.org"],
                          b"Subject: idle\r\n\r\nhello\r\n")
        lines = client.unsolicited(1, seconds=15)
        elapsed = time.monotonic() - started
        assert lines and lines[0] == "* 1 EXISTS", (lines, postfix.maillog())
        assert elapsed < 10, elapsed
        print(f"EXISTS {elapsed:.3f}s after the SMTP submission to Postfix")
    finally:
        client.close()
