"""
The scripted-conversation harness for protocol tests (STYLE.md item 14).

A L{Conversation} drives the real L{IMAPServerProtocol} over a
L{StringTransport} with a L{task.Clock}; the store is a real store on
C{tmp_path}, parametrized over every store we ship (pymap's in-memory-only
suite is the trap to avoid).  Scripts read like RFC examples::

    C: a1 LOGIN demo secret
    S: a1 OK [CAPABILITY {{.*}}] Logged in

C{S:} lines match the server's lines in order; C{{{regex}}} is a regex slot
and C{{{name:regex}}} a named capture kept in C{conv.matches}.  A script
fails if the server wrote lines it did not expect or missed one.
"""

from __future__ import annotations

import re

import pytest
from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse
from twisted.cred.portal import Portal
from twisted.internet import task
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport

from imapd.account import MailRealm
from imapd.server import IMAPFactory, ServerContext, SessionLimits

#: Stores every conversation runs against.
STORES = ["maildir", "mbox"]

USER = "demo"
PASSWORD = "secret"


class TLSStringTransport(StringTransport):
    """A StringTransport that records STARTTLS instead of doing it."""

    tls_started = False

    def startTLS(self, ctx):
        self.tls_started = True


def _compile(line: str) -> re.Pattern:
    out = []
    pos = 0
    for m in re.finditer(r"\{\{(?:(\w+):)?(.*?)\}\}", line):
        out.append(re.escape(line[pos : m.start()]))
        body = m.group(2)
        out.append(f"(?P<{m.group(1)}>{body})" if m.group(1) else f"(?:{body})")
        pos = m.end()
    out.append(re.escape(line[pos:]))
    return re.compile("".join(out), re.DOTALL)


class Conversation:
    """One client connection to a server under test."""

    def __init__(self, context: ServerContext, clock: task.Clock) -> None:
        self.context = context
        self.clock = clock
        self.proto = IMAPFactory(context).buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
        self.transport = TLSStringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 40000))
        self.proto.makeConnection(self.transport)
        self.matches: dict[str, str] = {}

    def send(self, data: bytes) -> None:
        self.proto.dataReceived(data)

    def output(self) -> bytes:
        data = self.transport.value()
        self.transport.clear()
        return data

    def lines(self) -> list[str]:
        return [l for l in self.output().decode("utf-8", "replace").split("\r\n") if l]

    def transact(self, command: str | bytes) -> list[str]:
        """
        Send one command line and return the response lines; asserts that
        the last one is the tagged response to it.
        """
        raw = command.encode() if isinstance(command, str) else command
        tag = raw.split(b" ", 1)[0].decode()
        self.send(raw + b"\r\n")
        lines = self.lines()
        assert lines and lines[-1].startswith(tag + " "), f"no tagged response to {command!r}: {lines!r}"
        return lines

    def ok(self, command: str | bytes) -> list[str]:
        """L{transact} and assert the tagged status is OK."""
        lines = self.transact(command)
        tag = lines[-1].split(" ", 1)[0]
        assert lines[-1].startswith(tag + " OK"), lines
        return lines

    def append(self, tag: str, data: bytes, mailbox: str = "INBOX") -> list[str]:
        """APPEND C{data} with a LITERAL+ literal and assert it is OK."""
        self.send(f"{tag} APPEND {mailbox} {{{len(data)}+}}\r\n".encode() + data + b"\r\n")
        lines = self.lines()
        assert lines[-1].startswith(f"{tag} OK"), lines
        return lines

    def login(self) -> None:
        self.ok(f"l1 LOGIN {USER} {PASSWORD}")

    def script(self, text: str) -> None:
        """Run a C:/S: script (see the module docstring)."""
        pending: list[str] = []
        for raw_line in text.strip().splitlines():
            line = raw_line.strip()
            if not line:
                continue
            kind, _, body = line.partition(": ")
            if kind == "C":
                self._check(pending)
                pending = []
                self.send(body.encode() + b"\r\n")
            elif kind == "S":
                pending.append(body)
            else:
                raise ValueError(f"bad script line {raw_line!r}")
        self._check(pending)

    def _check(self, expected: list[str]) -> None:
        got = self.lines()
        if not expected:
            return
        assert len(got) == len(expected), f"expected {expected!r}\n got {got!r}"
        for want, have in zip(expected, got):
            m = _compile(want).fullmatch(have)
            assert m, f"expected {want!r}\n got {have!r}\n all {got!r}"
            self.matches.update({k: v for k, v in m.groupdict().items() if v is not None})


@pytest.fixture(params=STORES)
def store_kind(request):
    return request.param


@pytest.fixture
def mail_root(tmp_path, store_kind):
    root = tmp_path / "mail"
    root.mkdir()
    return root


@pytest.fixture
def server(mail_root, store_kind, tmp_path):
    """A server context on a real store, a fake clock and no thread pool."""
    clock = task.Clock()
    checker = InMemoryUsernamePasswordDatabaseDontUse(**{USER: PASSWORD.encode(), "other": b"pw"})
    location = f"{store_kind}:{mail_root}/%u"
    realm = MailRealm(location, home_for=lambda user: None, index_dir=str(tmp_path / "index"))
    context = ServerContext(
        portal=Portal(realm, [checker]),
        reactor=clock,
        storage_pool=None,
        tls=object(),
        allow_plaintext_auth=True,
        limits=SessionLimits(failed_login_delay=1.0),
    )
    return context


@pytest.fixture
def conv(server):
    """A connected, not yet authenticated conversation."""
    c = Conversation(server, server.reactor)
    greeting = c.lines()
    assert greeting[0].startswith("* OK [CAPABILITY IMAP4rev1")
    return c


@pytest.fixture
def new_conv(server):
    """A factory for further conversations against the same server."""

    def make() -> Conversation:
        c = Conversation(server, server.reactor)
        c.output()
        return c

    return make


@pytest.fixture
def authed(conv):
    conv.login()
    return conv


@pytest.fixture
def selected(authed):
    authed.ok("s1 SELECT INBOX")
    return authed
