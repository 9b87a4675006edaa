"""
CONTEXT=SEARCH compared with Dovecot 2.3 (C{/usr/sbin/dovecot}, a private
instance on its own configuration, no listener: each session is Dovecot's
C{imap} process in PREAUTH mode on pipes).  The same two-session script
runs on both servers; the ESEARCH and NOUPDATE lines each step produces
must be the same (other lines differ in wording and are not compared).

Known differences, on purpose, and so not in the script: Dovecot keeps
YOUNGER/OLDER and C{$} results "updated" (it cannot notice a result that
changes with the clock) and has no limit on updating searches; we say
C{NO [NOUPDATE]} for those (L{imapd.search.updates}).  Dovecot does not
offer CONTEXT=SORT.
"""

from __future__ import annotations

import re

from dovecot_imap import DovecotSession, dovecot_conf  # noqa: F401 - a fixture

#: (session, command): A keeps results updated, B changes the mailbox.
SCRIPT = [
    ("A", "x1 UID SEARCH RETURN (UPDATE ALL) UNSEEN"),
    ("A", "x2 SEARCH RETURN (UPDATE COUNT) UNSEEN"),
    ("A", "x3 SEARCH RETURN (PARTIAL 2:3 COUNT) ALL"),
    ("A", "x4 UID SEARCH RETURN (PARTIAL 9:5 MIN) ALL"),
    ("A", "x5 SEARCH RETURN (CONTEXT) UNSEEN"),
    ("A", "x6 UID SEARCH RETURN (UPDATE) SUBJECT quokka"),
    ("B", "b1 STORE 1 -FLAGS (\\Seen)"),
    ("B", "b2 STORE 2 +FLAGS (\\Seen)"),
    ("A", "n1 NOOP"),
    ("B", "APPEND quokka"),
    ("A", "n2 NOOP"),
    ("B", "b3 STORE 4 +FLAGS (\\Deleted)"),
    ("B", "b4 EXPUNGE"),
    ("A", "f1 FETCH 1 FLAGS"),
    ("A", "n3 NOOP"),
    ("A", 'c1 CANCELUPDATE "x1"'),
    ("A", 'c2 CANCELUPDATE "nosuch"'),
    ("B", "APPEND other"),
    ("A", "n4 NOOP"),
    ("A", "u1 UID STORE 1,3 +FLAGS (\\Seen)"),
    ("A", "n5 NOOP"),
]


def message(subject: str) -> bytes:
    return f"From: a@example.org\r\nSubject: {subject}\r\n\r\nbody\r\n".encode()


def interesting(lines: list[str]) -> list[str]:
    """
    The lines compared: updates and results, EXISTS and EXPUNGE (whose
    order against the updates matters), and the tagged status word.
    """
    out = [l for l in lines if l.startswith(("* ESEARCH", "* NO [NOUPDATE"))
           or re.fullmatch(r"\* \d+ (EXISTS|EXPUNGE)", l)]
    if lines and not lines[-1].startswith("*"):
        out.append(lines[-1].split(" ")[1])
    return out


def test_same_updates_as_dovecot(dovecot_conf, new_conv):
    """Every step of SCRIPT yields the same ESEARCH/NOUPDATE lines and status on both."""
    theirs_a, theirs_b = DovecotSession(dovecot_conf), DovecotSession(dovecot_conf)
    ours_a, ours_b = new_conv(), new_conv()
    for conv in (ours_a, ours_b):
        conv.login()

    class Ours:
        def __init__(self, conv):
            self.conv = conv

        def command(self, line):
            return self.conv.transact(line)

        def append(self, tag, data, flags=""):
            self.conv.send(f"{tag} APPEND INBOX {flags}{{{len(data)}+}}\r\n".encode()
                           + data + b"\r\n")
            return self.conv.lines()

    results = {}
    try:
        for name, (a, b) in {"dovecot": (theirs_a, theirs_b),
                             "ours": (Ours(ours_a), Ours(ours_b))}.items():
            for n in range(1, 7):
                subject = "quokka" if n == 3 else f"message {n}"
                a.append(f"a{n}", message(subject), "(\\Seen) " if n % 2 else "")
            a.command("s1 SELECT INBOX")
            b.command("s1 SELECT INBOX")
            steps = []
            counter = iter(range(100))
            for who, line in SCRIPT:
                session = a if who == "A" else b
                if line.startswith("APPEND "):
                    lines = session.append(f"ap{next(counter)}", message(line.split(" ", 1)[1]))
                else:
                    lines = session.command(line)
                steps.append((who, line, interesting(lines)))
            results[name] = steps
    finally:
        theirs_a.close()
        theirs_b.close()
    assert results["ours"] == results["dovecot"]
