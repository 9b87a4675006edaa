"""
A bounded concurrent-client stress test for any IMAP server: C{clients}
threads, each a real connection at a time, log in to randomly chosen
accounts of C{accounts} and run a mix of LIST, STATUS, SELECT, FETCH,
STORE of flags and keywords, COPY, APPEND and EXPUNGE for C{seconds}.

The clients check the protocol's rules from the outside and count every
breach as an error, by kind:

  - C{keyword-unannounced}: a FETCH shows a keyword that the session's
    last FLAGS (or PERMANENTFLAGS) response did not list (RFC 3501
    section 7.2.6: FLAGS lists every flag the mailbox uses);
  - C{recent}: the number of messages with C{\\Recent} in a full FETCH is
    not the session's last RECENT count, or RECENT exceeds EXISTS (RFC
    3501 sections 2.3.2, 7.3.2);
  - C{lost-flag}: every client owns one keyword (C{OwnN}) and is the only
    one to set or clear it, always with +FLAGS/-FLAGS; a FETCH that shows
    one of its messages with the keyword not as its last acknowledged
    STORE left it is a lost update;
  - C{failed-command}: NO or BAD to a command that should succeed (a NO
    [EXPUNGEISSUED] or OK [EXPUNGEISSUED] for a message another client
    just expunged is allowed, RFC 2180 section 4.1);
  - C{protocol}: an unparsable or unexpected line, a dropped connection,
    a timeout.

C{python -m tests.stress.stress --server ours --server dovecot} starts
each server privately (ours: the real daemon of this checkout; Dovecot
2.3 on its own configuration) with the same accounts and initial mail and
prints commands per second and errors for each.
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field

from tests.rawimap import RawClient, literal

__all__ = ["Result", "populate", "run", "main", "ACCOUNTS", "CLIENTS", "SECONDS"]

#: Defaults: 20 s of load, 10 clients on 50 accounts (CI splits the 20 s
#: between the two stores, see test_stress.py).
SECONDS = 20.0
CLIENTS = 10
ACCOUNTS = 50
PASSWORD = "pw"
#: Messages every INBOX starts with.
INITIAL = 8
#: Above this many messages a client expunges some, so mailboxes stay small.
CEILING = 20

MESSAGE = (b"From: Stress %d <stress%d@example.org>\r\nTo: user@example.org\r\n"
           b"Subject: load test %d\r\nDate: Mon, 02 Feb 2026 10:00:00 +0000\r\n"
           b"Message-ID: <stress-%d@example.org>\r\n\r\nBody of message %d.\r\n")

_FETCH = re.compile(rb"^\* (\d+) FETCH \((.*)$", re.S)
_UID = re.compile(rb"\bUID (\d+)")
_FLAGS = re.compile(rb"\bFLAGS \(([^)]*)\)")


def account(i: int) -> str:
    return f"stress{i:02d}"


@dataclass
class Result:
    """What one run measured."""

    seconds: float = 0.0
    commands: int = 0
    logins: int = 0
    errors: Counter = field(default_factory=Counter)
    examples: dict = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.commands / self.seconds if self.seconds else 0.0

    def summary(self, name: str) -> str:
        errors = ", ".join(f"{k} {v}" for k, v in sorted(self.errors.items())) or "none"
        return (f"{name}: {self.commands} commands in {self.seconds:.1f} s = {self.rate:.0f}/s, "
                f"{self.logins} logins, errors: {errors}")


class _Failed(Exception):
    pass


class _Session:
    """One logged-in connection and what the client knows of its mailbox."""

    def __init__(self, client: "_Client", user: str) -> None:
        self.client = client
        self.user = user
        self.imap = RawClient(client.host, client.port, timeout=30, prefix="s")
        self.selected = False
        self.uids: list[int | None] = []
        self.flags_known: set[bytes] = set()
        self.recent = 0
        self.transcript: deque = deque(maxlen=12)
        self.command(f"LOGIN {user} {PASSWORD}")

    # -- replies -----------------------------------------------------------

    def command(self, text, allow: tuple[bytes, ...] = ()) -> list[bytes]:
        reply = self.imap.command(text)
        self.client.commands += 1
        self.transcript.append((text if isinstance(text, str) else text[:60], reply))
        for line in reply.untagged:
            self.observe(line)
        status = reply.status
        if status != "OK" and not any(code in reply.tagged for code in allow):
            self.client.error("failed-command", f"{self.user}: {text!r} -> {reply.tagged!r}")
            raise _Failed()
        return reply.untagged

    def observe(self, line: bytes) -> None:
        """Check one untagged line against the rules; keep the view current."""
        c = self.client
        if not line.startswith(b"* "):
            c.error("protocol", f"{self.user}: {line[:200]!r}")
            return
        if line.startswith(b"* FLAGS ("):
            self.flags_known = set(line[9:line.index(b")")].split())
            return
        m = re.match(rb"\* OK \[PERMANENTFLAGS \(([^)]*)\)", line)
        if m:
            self.flags_known |= set(m.group(1).split()) - {b"\\*"}
            return
        m = re.match(rb"\* (\d+) (EXISTS|RECENT|EXPUNGE)$", line)
        if m:
            n, what = int(m.group(1)), m.group(2)
            if what == b"EXISTS":
                self.uids += [None] * (n - len(self.uids))
            elif what == b"RECENT":
                self.recent = n
                if n > len(self.uids):
                    c.error("recent", f"{self.user}: RECENT {n} > EXISTS {len(self.uids)}")
            elif 1 <= n <= len(self.uids):
                del self.uids[n - 1]
            else:
                c.error("protocol", f"{self.user}: EXPUNGE {n} of {len(self.uids)}")
            return
        m = _FETCH.match(line)
        if m:
            head = m.group(2).split(b"\r\n", 1)[0]
            seq = int(m.group(1))
            u = _UID.search(head)
            if u and 1 <= seq <= len(self.uids):
                self.uids[seq - 1] = int(u.group(1))
            uid = self.uids[seq - 1] if 1 <= seq <= len(self.uids) else None
            f = _FLAGS.search(head)
            if f is not None:
                self.check_flags(uid, f.group(1).split())
            return
        if re.match(rb"\* (OK|NO|BAD|BYE|CAPABILITY|LIST|LSUB|STATUS|SEARCH|ENABLED)\b", line):
            return
        c.error("protocol", f"{self.user}: unexpected {line[:200]!r}")

    def check_flags(self, uid: int | None, flags: list[bytes]) -> None:
        c = self.client
        for flag in flags:
            if not flag.startswith(b"\\") and flag not in self.flags_known:
                c.error("keyword-unannounced",
                        f"{self.user}: {flag.decode()} on UID {uid} before FLAGS announced it")
        if uid is None:
            return
        want = c.owned.get((self.user, uid))
        if want is not None and (c.keyword in flags) != want:
            c.error("lost-flag", f"{self.user}: UID {uid} {c.keyword.decode()} should be "
                                 f"{'set' if want else 'clear'}: {flags!r}"
                                 + "".join(f"\n    {t!r} -> {r.untagged[:6]!r} {r.tagged!r}"
                                           for t, r in self.transcript))

    # -- operations --------------------------------------------------------

    def select(self) -> None:
        self.uids, self.recent, self.flags_known = [], 0, set()
        self.command("SELECT INBOX")
        self.selected = True
        self.fetch_all()

    def fetch_all(self) -> None:
        before = list(self.uids)
        lines = self.command("UID FETCH 1:* (UID FLAGS)")
        changed = any(re.match(rb"\* \d+ (EXISTS|RECENT|EXPUNGE)$", l) for l in lines)
        fetched = [l for l in lines if _FETCH.match(l)]
        if not changed and before == self.uids and len(fetched) == len(self.uids):
            recent = sum(1 for l in fetched if b"\\Recent" in l)
            if recent != self.recent:
                self.client.error("recent", f"{self.user}: {recent} messages \\Recent, "
                                            f"RECENT said {self.recent}")
        # What we expected of messages that are gone no longer applies.
        seen = {int(u.group(1)) for l in fetched for u in [_UID.search(l)] if u}
        owned = self.client.owned
        for key in [k for k in owned if k[0] == self.user and k[1] not in seen]:
            del owned[key]

    def known_uids(self) -> list[int]:
        return [u for u in self.uids if u is not None]

    def close(self) -> None:
        try:
            self.imap.send(b"z LOGOUT\r\n")
        except OSError:
            pass
        self.imap.close()


class _Client(threading.Thread):
    """One simulated user: sessions on random accounts until the deadline."""

    def __init__(self, n: int, host: str, port: int, accounts: int, deadline: float,
                 result: Result, lock: threading.Lock, seed: int) -> None:
        super().__init__(name=f"stress-{n}", daemon=True)
        self.n, self.host, self.port = n, host, port
        self.accounts, self.deadline = accounts, deadline
        self.result, self.lock = result, lock
        self.random = random.Random(seed * 1000 + n)
        self.keyword = b"Own%d" % n
        #: (account, UID) -> whether our keyword is set, as last acknowledged.
        self.owned: dict[tuple[str, int], bool] = {}
        self.appended = 0
        self.commands = 0
        self.logins = 0

    def error(self, kind: str, text: str) -> None:
        with self.lock:
            self.result.errors[kind] += 1
            self.result.examples.setdefault(kind, text)

    def run(self) -> None:
        while time.monotonic() < self.deadline:
            user = account(self.random.randrange(self.accounts))
            session = None
            try:
                session = _Session(self, user)
                self.logins += 1
                for _ in range(self.random.randint(3, 12)):
                    if time.monotonic() >= self.deadline:
                        break
                    self.step(session)
            except _Failed:
                pass
            except (OSError, ConnectionError, TimeoutError, ValueError, IndexError) as e:
                self.error("protocol", f"{user}: {type(e).__name__}: {e}")
            finally:
                if session is not None:
                    session.close()

    def step(self, s: _Session) -> None:
        r = self.random
        if not s.selected:
            op = r.choice(["list", "status", "select", "select", "append"])
        else:
            op = r.choices(["fetch", "store-own", "store-system", "peek", "copy", "append",
                            "expunge", "noop", "status", "list"],
                           weights=[3, 5, 2, 2, 1, 2, 1, 1, 1, 1])[0]
        uids = s.known_uids()
        if op == "list":
            s.command('LIST "" *')
        elif op == "status":
            s.command("STATUS INBOX (MESSAGES UIDNEXT UNSEEN RECENT)")
        elif op == "select":
            s.select()
        elif op == "fetch":
            s.fetch_all()
        elif op == "append":
            self.appended += 1
            k = self.n * 100000 + self.appended
            flags = r.choice(["", "(\\Seen) ", "($Label1) ", "(\\Flagged Project) "])
            s.command(b"APPEND INBOX " + flags.encode() + literal(MESSAGE % (k, k, k, k, k)))
        elif op == "store-own" and uids:
            uid = r.choice(uids)
            sign = r.choice("+-")
            # The STORE's own FETCH already shows the new state.
            self.owned[(s.user, uid)] = sign == "+"
            try:
                s.command(f"UID STORE {uid} {sign}FLAGS ({self.keyword.decode()})",
                          allow=(b"[EXPUNGEISSUED]",))
            except _Failed:
                del self.owned[(s.user, uid)]
                raise
        elif op == "store-system" and uids:
            uid = r.choice(uids)
            flag = r.choice(["\\Flagged", "\\Seen", "\\Answered", "$Label2", "Shared"])
            s.command(f"UID STORE {uid} {r.choice('+-')}FLAGS.SILENT ({flag})",
                      allow=(b"[EXPUNGEISSUED]",))
        elif op == "peek" and uids:
            s.command(f"UID FETCH {r.choice(uids)} (FLAGS RFC822.SIZE "
                      f"BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)])", allow=(b"[EXPUNGEISSUED]",))
        elif op == "copy" and uids:
            s.command(f"UID COPY {r.choice(uids)} Archive", allow=(b"[EXPUNGEISSUED]",))
        elif op == "expunge":
            if len(uids) > CEILING:
                # Only messages of nobody's checks: the oldest ones.
                victims = ",".join(str(u) for u in uids[:3])
                s.command(f"UID STORE {victims} +FLAGS.SILENT (\\Deleted)",
                          allow=(b"[EXPUNGEISSUED]",))
                s.command("EXPUNGE")
            else:
                s.command("CHECK")
        else:
            s.command("NOOP")


def populate(host: str, port: int, accounts: int = ACCOUNTS) -> None:
    """Give every account an Archive mailbox and L{INITIAL} messages."""
    for i in range(accounts):
        c = RawClient(host, port, timeout=60, prefix="p")
        try:
            c.ok(f"LOGIN {account(i)} {PASSWORD}")
            c.ok("CREATE Archive")
            for k in range(INITIAL):
                c.ok(b"APPEND INBOX " + literal(MESSAGE % (k, k, k, k, k)))
            c.ok("LOGOUT")
        finally:
            c.close()


def run(host: str, port: int, seconds: float = SECONDS, clients: int = CLIENTS,
        accounts: int = ACCOUNTS, seed: int = 1) -> Result:
    """Run the load against a populated server; returns the figures."""
    result = Result()
    lock = threading.Lock()
    start = time.monotonic()
    threads = [_Client(n, host, port, accounts, start + seconds, result, lock, seed)
               for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 120)
        if t.is_alive():
            result.errors["protocol"] += 1
            result.examples.setdefault("protocol", f"{t.name} still running after the deadline")
    result.seconds = time.monotonic() - start
    result.commands = sum(t.commands for t in threads)
    result.logins = sum(t.logins for t in threads)
    return result


def main(argv=None) -> int:
    import argparse
    import sys
    import tempfile
    from pathlib import Path

    from tests.differential.servers import dovecot_server, our_server

    p = argparse.ArgumentParser(prog="python -m tests.stress.stress",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--server", choices=["ours", "ours-single", "dovecot"], action="append",
                   help="server(s) to load (default: ours and dovecot, one after the "
                        "other); ours-single is ours with [service] single_process")
    p.add_argument("--store", choices=["maildir", "mbox"], default="maildir")
    p.add_argument("--seconds", type=float, default=SECONDS)
    p.add_argument("--clients", type=int, default=CLIENTS)
    p.add_argument("--accounts", type=int, default=ACCOUNTS)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    users = {account(i): PASSWORD for i in range(args.accounts)}
    failed = False
    for name in args.server or ["ours", "dovecot"]:
        with tempfile.TemporaryDirectory(prefix="stress-") as tmp:
            if name == "dovecot":
                server = dovecot_server(args.store, users)
            else:
                single = {"service": {"single_process": True}} if name == "ours-single" else {}
                server = our_server(Path(tmp), args.store, users, settings=single)
            with server as (host, port):
                populate(host, port, args.accounts)
                result = run(host, port, args.seconds, args.clients, args.accounts, args.seed)
        print(result.summary(f"{name} ({args.store})"))
        for kind, text in sorted(result.examples.items()):
            print(f"  e.g. {kind}: {text}")
        failed |= bool(result.errors)
        sys.stdout.flush()
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
