"""
The shared corpus as one Maildir per corpus mailbox, and our SORT/THREAD
answers on each (used by C{test_sort_golden} and C{test_sort_dovecot}).

Each mailbox of C{../shared/corpus/} (a Maildir folder or an mbox file,
listed in L{MAILBOXES}) is written by imapbench as its own Maildir with a
C{dovecot-uidlist}, so that our server and Dovecot number its messages
alike (UID n is the n-th message in imapbench's order) and both take
INTERNALDATE from the file's mtime, which imapbench sets from the Date
header.

Golden files: C{golden/<mailbox>.txt} holds our answer to every command
of L{COMMANDS} on that mailbox, as C{C:}/C{S:} line pairs.  After a
deliberate change of the SORT/THREAD rules, regenerate them with::

    IMAPD_REGEN_GOLDEN=1 /work/venv/bin/python -m pytest -q \\
        tests/imapd/sort/test_sort_golden.py

and review the diff: every changed line is a changed answer.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SHARED = next(p / "shared" for p in Path(__file__).resolve().parents
              if (p / "shared" / "corpus").is_dir())
CORPUS = SHARED / "corpus"
BENCH = SHARED / "bench" / "imapbench.py"
GOLDEN = Path(__file__).resolve().parent / "golden"

#: Set to 1 to rewrite the golden files from our current answers.
REGEN_ENV = "IMAPD_REGEN_GOLDEN"

#: Mailbox name -> its path under the corpus (see the corpus README).
#: Names use no "." so that they are plain Maildir++ folder names.
MAILBOXES: dict[str, str] = {
    **{f"spamassassin-{n}": f"spamassassin/{n}"
       for n in ("easy_ham", "easy_ham_2", "hard_ham", "spam", "spam_2")},
    "usrp-users": "usrp-users/usrp-users.mbox",
    "linux-erofs": "linux-erofs/linux-erofs.mbox",
    **{f"notmuch-{n}": f"notmuch/{n}"
       for n in ("attachment", "broken", "crypto", "default", "duplicate",
                 "html", "indexing", "insert", "lkml", "mangling", "pkcs7",
                 "protected-headers", "threading")},
    **{f"mail-gem-{n}": f"mail-gem/{n}"
       for n in ("attachment_emails", "error_emails", "mime_emails",
                 "multi_charset", "multipart_report_emails", "plain_emails")},
}

#: Every SORT criterion (RFC 5256 section 3, RFC 5957); REVERSE where
#: webmail uses it (REVERSE ARRIVAL, REVERSE DATE) and where equal keys
#: show that it reverses only its own criterion, never the sequence-number
#: tie-break (REVERSE SUBJECT); two criteria at once; every THREAD
#: algorithm we advertise.
COMMANDS: tuple[str, ...] = (
    "UID SORT (ARRIVAL) UTF-8 ALL",
    "UID SORT (REVERSE ARRIVAL) UTF-8 ALL",
    "UID SORT (CC) UTF-8 ALL",
    "UID SORT (DATE) UTF-8 ALL",
    "UID SORT (REVERSE DATE) UTF-8 ALL",
    "UID SORT (FROM) UTF-8 ALL",
    "UID SORT (SIZE) UTF-8 ALL",
    "UID SORT (SUBJECT) UTF-8 ALL",
    "UID SORT (REVERSE SUBJECT) UTF-8 ALL",
    "UID SORT (SUBJECT REVERSE DATE) UTF-8 ALL",
    "UID SORT (TO) UTF-8 ALL",
    "UID SORT (DISPLAYFROM) UTF-8 ALL",
    "UID SORT (DISPLAYTO) UTF-8 ALL",
    "UID THREAD ORDEREDSUBJECT UTF-8 ALL",
    "UID THREAD REFERENCES UTF-8 ALL",
    "UID THREAD REFS UTF-8 ALL",
)


def build(root: str) -> dict[str, str]:
    """Write every corpus mailbox as a Maildir under C{root}; name -> path."""
    out = {}
    for name, rel in MAILBOXES.items():
        path = os.path.join(root, name)
        subprocess.run([sys.executable, str(BENCH), "corpus", "--from-real",
                        str(CORPUS / rel), "--out", path, "--uidlist"],
                       check=True, capture_output=True)
        out[name] = path
    return out


def our_answers(name: str, path: str) -> dict[str, str]:
    """Command -> our untagged answer line, on the Maildir at C{path}."""
    from imapd.commands.sort import run_sort
    from imapd.commands.thread import run_thread
    from imapd.parser.commands import Context, parse_command_args
    from imapd.selected import SelectedView
    from storage.maildir.mailbox import MaildirMailbox

    mailbox = MaildirMailbox(name, path, lambda: 1, readonly=True)
    view = SelectedView(mailbox, mailbox.sync(), True)
    answers = {}
    for command in COMMANDS:
        cmd = parse_command_args("x", (command + "\r\n").encode(), 0, Context())
        if cmd.name == "SORT":
            line = "* SORT" + "".join(" %d" % uid for _seq, uid in run_sort(view, cmd))
        else:
            line = run_thread(view, cmd).decode().rstrip("\r\n")
        answers[command] = line
    return answers


def golden_path(name: str) -> Path:
    return GOLDEN / f"{name}.txt"


def format_golden(name: str, answers: dict[str, str]) -> str:
    """The golden file's text: a header, then C{C:}/C{S:} pairs in COMMANDS order."""
    lines = [f"# imapd's SORT/THREAD answers on corpus mailbox {name} "
             f"({MAILBOXES[name]}).",
             f"# Regenerate: {REGEN_ENV}=1 pytest tests/imapd/sort/test_sort_golden.py"]
    for command in COMMANDS:
        lines += [f"C: {command}", f"S: {answers[command]}"]
    return "\n".join(lines) + "\n"


def read_golden(name: str) -> dict[str, str]:
    """Command -> answer line from C{golden/<name>.txt}."""
    answers, command = {}, None
    for line in golden_path(name).read_text().splitlines():
        if line.startswith("C: "):
            command = line[3:]
        elif line.startswith("S: "):
            answers[command] = line[3:]
    return answers


def threads(line: str) -> list[str]:
    """The top-level threads of a C{* THREAD} line, as strings."""
    out, depth, cur = [], 0, ""
    for ch in line[len("* THREAD "):]:
        cur += ch
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                out.append(cur)
                cur = ""
    return out


def uids_of(thread: str) -> set[int]:
    return {int(t) for t in thread.replace("(", " ").replace(")", " ").split()}
