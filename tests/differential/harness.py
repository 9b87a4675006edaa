"""
The differential harness: run the same scripted multi-session IMAP
conversation against Dovecot 2.3 and against our daemon, normalise both
servers' replies (L{normalize}), and compare them step by step.

A script (L{Script}) is data: a name, a command family, the initial mail
(appended through APPEND, so both servers store the same bytes) and a list
of steps C{"a: COMMAND"} where C{a} names the session (connection) that
sends it.  Every session of a script logs in as the script's own user, so
scripts do not see each other's mailboxes.  In a command:

  - C{{msg:NAME}} is replaced by a LITERAL+ literal of message C{NAME}
    (L{messages.MESSAGES});
  - C{${uidvalidity}} and C{${modseq}} by the last UIDVALIDITY and
    HIGHESTMODSEQ that server sent in this script (each server has its own);
  - C{IDLE} starts IDLE and returns once the continuation came;
    C{DONE ~REGEX} waits (at most L{IDLE_WAIT} seconds) for an untagged
    line matching REGEX, sends DONE and reads the IDLE command's reply,
    then sends a NOOP and adds its untagged lines to that reply.

A step's verdict is C{same}, C{allowed} (different, and listed in
L{allowed.ALLOWED} with the RFC text that lets us differ) or C{differs}.
C{python -m tests.differential.harness} runs the scripts outside pytest
and prints the table of counts per family (C{--help}).
"""

from __future__ import annotations

import re
import sys
import time
from dataclasses import dataclass, field

from tests.differential import allowed
from tests.differential.messages import MESSAGES
from tests.differential.normalize import normalize
from tests.rawimap import RawClient, Reply, literal

__all__ = ["Script", "Outcome", "run_script", "compare", "judge", "column", "IDLE_WAIT"]

#: Seconds a C{DONE ~REGEX} step waits for the awaited update.
IDLE_WAIT = 8.0

PASSWORD = "pw"


@dataclass(frozen=True)
class Script:
    """One conversation: C{steps} are C{"session: command"} strings."""

    name: str
    family: str
    steps: tuple[str, ...]
    #: (mailbox, message name, flags text or "", date text or "") appended first.
    setup: tuple[tuple[str, str, str, str], ...] = ()
    #: Mailboxes created before the setup APPENDs.
    mailboxes: tuple[str, ...] = ()

    @property
    def user(self) -> str:
        return "d_" + re.sub(r"[^a-z0-9]", "_", self.name.lower())


@dataclass
class Outcome:
    """One step's normalised replies on both servers and the verdict."""

    script: str
    step: int
    command: str
    ours: list[str]
    theirs: list[str]
    verdict: str = "same"
    why: str = ""


@dataclass
class _Run:
    """One server's state while a script runs on it."""

    host: str
    port: int
    user: str
    clients: dict[str, RawClient] = field(default_factory=dict)
    idle: dict[str, tuple[str, list[bytes]]] = field(default_factory=dict)
    uidvalidity: str = "0"
    modseq: str = "0"

    def client(self, name: str) -> RawClient:
        if name not in self.clients:
            c = RawClient(self.host, self.port, prefix=name)
            c.ok(f"LOGIN {self.user} {PASSWORD}")
            self.clients[name] = c
        return self.clients[name]

    def note(self, reply: Reply) -> None:
        for line in reply.untagged + [reply.tagged]:
            m = re.search(rb"\[UIDVALIDITY (\d+)\]", line)
            if m:
                self.uidvalidity = m.group(1).decode()
            m = re.search(rb"\[HIGHESTMODSEQ (\d+)\]", line)
            if m:
                self.modseq = m.group(1).decode()

    def close(self) -> None:
        for c in self.clients.values():
            try:
                c.send(b"z LOGOUT\r\n")
            except OSError:
                pass
            c.close()


def _expand(run: _Run, text: str) -> bytes:
    text = text.replace("${uidvalidity}", run.uidvalidity).replace("${modseq}", run.modseq)
    out = b""
    pos = 0
    for m in re.finditer(r"\{msg:([\w-]+)\}", text):
        out += text[pos:m.start()].encode() + literal(MESSAGES[m.group(1)])
        pos = m.end()
    return out + text[pos:].encode()


def _step(run: _Run, session: str, command: str) -> Reply:
    c = run.client(session)
    if command == "IDLE":
        tag = c.next_tag()
        c.send(tag.encode() + b" IDLE\r\n")
        before = []
        while True:
            line = c.read_line(time.monotonic() + 30)
            if line is None or line.startswith(b"+"):
                break
            before.append(line)
        run.idle[session] = (tag, [])
        return Reply(tag, before, b"")
    if command.startswith("DONE"):
        tag, _ = run.idle.pop(session)
        wait = command[4:].strip()
        lines = c.read_until(wait[1:].encode(), IDLE_WAIT) if wait.startswith("~") else []
        c.send(b"DONE\r\n")
        reply = c.read_reply(tag)
        reply.untagged[:0] = lines
        # RFC 2177 leaves it to the server when, during IDLE, it reports a
        # change (Dovecot, too, is sometimes later than IDLE_WAIT); RFC
        # 3501 section 6.1.2 makes NOOP the latest point.  So the step's
        # reply is everything up to the end of a NOOP sent after DONE.
        reply.untagged += c.command("NOOP").untagged
        return reply
    tag = c.next_tag()
    data = _expand(run, command)
    c.send(tag.encode() + b" " + data + b"\r\n")
    return c.read_reply(tag)


def run_script(script: Script, host: str, port: int) -> list[tuple[str, Reply]]:
    """Run C{script} on one server: [(command, reply)] for every step."""
    run = _Run(host, port, script.user)
    try:
        setup = run.client("setup")
        for name in script.mailboxes:
            setup.ok(f'CREATE "{name}"')
        for mailbox, msg, flags, date in script.setup:
            args = " ".join(a for a in (f'"{mailbox}"', flags, f'"{date}"' if date else "") if a)
            setup.ok(f"APPEND {args} ".encode() + literal(MESSAGES[msg]))
        # The setup session selects every mailbox it filled, so that the
        # initial mail is no longer \Recent when the script starts (RFC
        # 3501 section 2.3.2): \Recent is judged by its own rule script.
        for mailbox in dict.fromkeys(m for m, _, _, _ in script.setup):
            setup.ok(f'SELECT "{mailbox}"')
        setup.send(b"z LOGOUT\r\n")
        setup.close()
        del run.clients["setup"]
        out = []
        for text in script.steps:
            session, _, command = text.partition(": ")
            reply = _step(run, session, command)
            run.note(reply)
            out.append((command, reply))
        return out
    finally:
        run.close()


def _without_allowed(ours: list[str], theirs: list[str]) -> tuple[list, list, list[str]]:
    """Both replies without what L{allowed} lets one side add; the reasons used."""
    why = []
    for side, line, reason in allowed.EXTRA_LINES:
        mine, other = (ours, theirs) if side == "ours" else (theirs, ours)
        if line in mine and line not in other:
            mine = [x for x in mine if x != line]
            why.append(reason)
        ours, theirs = (mine, other) if side == "ours" else (other, mine)
    if ours and theirs and ours[-1] != theirs[-1]:
        codes = "|".join(allowed.OPTIONAL_CODES)
        a = re.sub(rf" \[({codes})\]$", "", ours[-1])
        b = re.sub(rf" \[({codes})\]$", "", theirs[-1])
        if a == b:
            ours, theirs = ours[:-1] + [a], theirs[:-1] + [b]
            why.append("RFC 5530 section 3: an optional response code on one side")
    return ours, theirs, why


def judge(script: Script, step: int, ours: list[str], theirs: list[str],
          per_step: dict) -> tuple[str, str]:
    """
    The verdict on one step: C{same}, C{allowed}, C{differs}, or
    C{stale-allowed}.
    """
    entry = per_step.get((script.name, step))
    if ours == theirs:
        return ("stale-allowed", entry.why) if entry is not None else ("same", "")
    a, b, why = _without_allowed(ours, theirs)
    if a == b:
        return "allowed", "; ".join(why)
    if entry is not None and entry.matches(ours, theirs):
        return "allowed", entry.why
    return "differs", ""


def compare(script: Script, ours: list, theirs: list, per_step: dict) -> list[Outcome]:
    """Step-by-step verdicts for one script's replies on both servers."""
    outcomes = []
    for i, ((command, a), (_, b)) in enumerate(zip(ours, theirs)):
        o = Outcome(script.name, i, command,
                    normalize(a.untagged, a.tagged or None),
                    normalize(b.untagged, b.tagged or None))
        o.verdict, o.why = judge(script, i, o.ours, o.theirs, per_step)
        outcomes.append(o)
    return outcomes


def column(verdict: str) -> int:
    """Counting column of a verdict: 2 same, 3 allowed, 4 failing."""
    return {"same": 2, "allowed": 3}.get(verdict, 4)


def describe(o: Outcome) -> str:
    """A failing step as text: the command and both normalised replies."""
    return (f"{o.script} step {o.step} [{o.verdict}]: {o.command[:200]}\n"
            + "  ours:   " + "\n          ".join(o.ours) + "\n"
            + "  dovecot:" + "\n          ".join(o.theirs) + "\n")


def main(argv=None) -> int:
    """Command line: start both servers per store, run scripts, print counts."""
    import argparse
    import tempfile
    from pathlib import Path

    from tests.differential import scripts as script_module
    from tests.differential.servers import both_servers

    p = argparse.ArgumentParser(prog="python -m tests.differential.harness",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--store", choices=["maildir", "mbox"], action="append",
                   help="store(s) to run on (default: both)")
    p.add_argument("--family", action="append", help="only these families")
    p.add_argument("--rules", action="store_true", help="only the issue-13 rule scripts")
    p.add_argument("-v", "--verbose", action="store_true", help="print every differing step")
    args = p.parse_args(argv)
    chosen = [s for s in script_module.ALL
              if (not args.rules or s.family == "rules")
              and (not args.family or s.family in args.family)]
    failed = 0
    for store in args.store or ["maildir", "mbox"]:
        with tempfile.TemporaryDirectory(prefix="differential-") as tmp:
            with both_servers(Path(tmp), store, [s.user for s in chosen]) as (ours, theirs):
                table: dict[str, list[int]] = {}
                for script in chosen:
                    outcomes = compare(script, run_script(script, *ours), run_script(script, *theirs),
                                       script_module.allowed_for(store))
                    row = table.setdefault(script.family, [0, 0, 0, 0, 0])
                    row[0] += 1
                    row[1] += len(outcomes)
                    for o in outcomes:
                        row[column(o.verdict)] += 1
                        if column(o.verdict) == 4:
                            failed += 1
                        if args.verbose and o.verdict not in ("same", "allowed"):
                            print(describe(o))
                print(f"\n{store}: family        scripts  steps  same  allowed  failing")
                for family, (n, steps, same, ok, bad) in table.items():
                    print(f"{store}: {family:<14} {n:>7} {steps:>6} {same:>5} {ok:>8} {bad:>8}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
