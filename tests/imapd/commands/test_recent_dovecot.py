"""
C{\\Recent} compared with a real Dovecot 2.3 (issue 13 rule 3): the same
sessions, one after another, against a private Dovecot (its C{imap}
binary run by C{doveadm exec}, as in
L{tests.storage.mbox.test_mbox_dovecot}) and against our server, on
Maildir and on mbox, give the same RECENT counts, STATUS RECENT and
C{\\Recent} flags: mail APPENDed or COPYed (with flags or not) is recent
to the first SELECT, EXAMINE and STATUS show it without taking it.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests.storage.mbox.test_mbox_dovecot import DOVEADM, chown_mail, start_dovecot

MSG = "Subject: hello\r\n\r\nbody\r\n"

#: The sessions, one after another; each is a list of command lines.
SESSIONS = [
    ["a SELECT INBOX"],
    [f"b APPEND INBOX (\\Seen) {{{len(MSG)}+}}\r\n{MSG}",
     f"c APPEND INBOX {{{len(MSG)}+}}\r\n{MSG}",
     "d CREATE Other",
     f"e APPEND Other (\\Answered) {{{len(MSG)}+}}\r\n{MSG}"],
    ["f STATUS INBOX (RECENT)", "g EXAMINE INBOX", "h FETCH 1:* FLAGS"],
    ["i SELECT INBOX", "j FETCH 1:* FLAGS", "k COPY 1:2 Other"],
    ["l SELECT INBOX", "m FETCH 1:* FLAGS"],
    ["n STATUS Other (RECENT)", "o SELECT Other", "p FETCH 1:* FLAGS"],
    ["q EXAMINE Other"],
]


def facts(text: str) -> list[str]:
    """What a session's answers say about \\Recent, in order."""
    out = []
    for line in text.replace("\r\n", "\n").split("\n"):
        if re.fullmatch(r"\* \d+ RECENT", line):
            out.append(line)
        elif m := re.fullmatch(r"\* STATUS \S+ \((RECENT \d+)\)", line):
            out.append(m.group(1))
        elif m := re.fullmatch(r"\* (\d+) FETCH \(FLAGS \((.*)\)\)", line):
            recent = "\\Recent" in m.group(2).split()
            out.append(f"{m.group(1)} recent={recent}")
    return out


@pytest.fixture
def dovecot_sessions(store_kind):
    """Run L{SESSIONS} against a private Dovecot; return each one's facts."""
    location = "maildir:{top}/mail/%u/Maildir" if store_kind == "maildir" else None
    top, conf = start_dovecot(location)
    try:
        results = []
        for commands in SESSIONS:
            chown_mail(top)
            script = "".join(c + "\r\n" for c in commands) + "z LOGOUT\r\n"
            run = subprocess.run([DOVEADM, "-c", conf, "exec", "imap", "-u", "u"], input=script,
                                 capture_output=True, text=True, timeout=30)
            assert run.returncode == 0, run.stderr
            results.append(facts(run.stdout))
        return results
    finally:
        subprocess.run([DOVEADM, "-c", conf, "stop"], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
        shutil.rmtree(top, ignore_errors=True)


def test_recent_as_dovecot_reports_it(new_conv, dovecot_sessions):
    """Each session's RECENT counts, STATUS RECENT and \\Recent flags equal Dovecot's."""
    ours = []
    for commands in SESSIONS:
        conv = new_conv()
        conv.login()
        for command in commands:
            conv.send(command.encode() + b"\r\n")
        ours.append(facts(conv.output().decode()))
        conv.ok("z LOGOUT")
    assert ours == dovecot_sessions
    # The steps do what they are meant to: not a vacuous comparison.
    assert ours[2] == ["RECENT 2", "* 2 RECENT", "1 recent=True", "2 recent=True"]
    assert ours[4][0] == "* 0 RECENT"
