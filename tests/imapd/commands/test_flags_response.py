"""
Keywords are announced before use (issue 13 rule 2): before any response
shows a keyword the session was not told about, the server sends
C{* FLAGS} (RFC 3501 section 7.2.6) and C{* OK [PERMANENTFLAGS]} (section
7.1) naming it, whoever made the change (this session's STORE, APPEND,
MULTIAPPEND, COPY; another session; another process).  On both stores.
"""

from __future__ import annotations

from tests.imapd.commands.test_mailflow import MSG, append
from tests.imapd.commands.test_store import two_sessions

SYSTEM = "\\Answered \\Flagged \\Deleted \\Seen \\Draft"


def announced(lines, *keywords) -> int:
    """
    Assert C{lines} hold the FLAGS/PERMANENTFLAGS pair naming C{keywords}
    (after the system flags, in that order); return the FLAGS line's index.
    """
    names = " ".join((SYSTEM,) + keywords)
    i = lines.index(f"* FLAGS ({names})")
    assert lines[i + 1] == f"* OK [PERMANENTFLAGS ({names} \\*)] Flags permitted.", lines
    return i


def not_announced(lines) -> None:
    assert not any(l.startswith("* FLAGS") or "PERMANENTFLAGS" in l for l in lines), lines


def test_own_store_announces_a_new_keyword_first(selected):
    """STORE of a new keyword: FLAGS and PERMANENTFLAGS come before the FETCH that shows it, once."""
    append(selected, "a1", "INBOX")
    selected.ok("n1 NOOP")
    lines = selected.ok("t1 STORE 1 +FLAGS ($Todo)")
    i = announced(lines, "$Todo")
    assert i < lines.index("* 1 FETCH (FLAGS (\\Recent $Todo))")
    not_announced(selected.ok("t2 STORE 1 -FLAGS ($Todo)"))
    not_announced(selected.ok("t3 STORE 1 +FLAGS.SILENT ($todo)"))


def test_another_sessions_keyword_is_announced_before_its_fetch(selected, new_conv):
    """A keyword another session set is announced before the unsolicited FETCH."""
    other = two_sessions(selected, new_conv, flags="")
    other.ok("t1 STORE 1 +FLAGS.SILENT ($Elsewhere)")
    lines = selected.ok("n2 NOOP")
    i = announced(lines, "$Elsewhere")
    assert i < next(n for n, l in enumerate(lines) if l.startswith("* 1 FETCH"))


def test_append_into_the_selected_mailbox_announces_first(selected):
    """APPEND and MULTIAPPEND of messages with new keywords: FLAGS before EXISTS."""
    selected.send(b"a1 APPEND INBOX ($One) {%d+}\r\n" % len(MSG) + MSG + b"\r\n")
    lines = selected.lines()
    assert lines[-1].startswith("a1 OK"), lines
    assert announced(lines, "$One") < lines.index("* 1 EXISTS")
    selected.send(b"a2 APPEND INBOX ($Two) {%d+}\r\n" % len(MSG) + MSG
                  + b" ($One $Three) {%d+}\r\n" % len(MSG) + MSG + b"\r\n")
    lines = selected.lines()
    assert lines[-1].startswith("a2 OK"), lines
    # $One was told already; the two new ones follow in the store's order.
    flags = next(l for l in lines if l.startswith("* FLAGS"))
    first, second = sorted(("$Two", "$Three"), key=flags.index)
    assert announced(lines, "$One", first, second) < lines.index("* 3 EXISTS")


def test_copy_by_another_session_announces_first(selected, new_conv):
    """A message COPYed in by another session, with a keyword new here: FLAGS before EXISTS."""
    other = new_conv()
    other.login()
    other.ok("c0 CREATE Other")
    append(other, "a1", "Other", flags="($Copied) ")
    other.ok("s1 SELECT Other")
    other.ok("c1 COPY 1 INBOX")
    lines = selected.ok("n1 NOOP")
    assert announced(lines, "$Copied") < lines.index("* 1 EXISTS")


def test_another_process_keyword_is_announced(selected):
    """A change through another open of the store (as another process makes it) is announced too."""
    store = selected.proto.account.store
    mailbox = store.open("INBOX")
    try:
        tx = mailbox.transaction()
        tx.append(MSG, frozenset({"$Outside"}))
        tx.commit()
    finally:
        mailbox.close()
    lines = selected.ok("n1 NOOP")
    assert announced(lines, "$Outside") < lines.index("* 1 EXISTS")


def test_fetch_setting_seen_announces_a_keyword_set_elsewhere(selected, new_conv):
    """
    FETCH BODY[] sets \\Seen and shows the message's stored flags, which
    may carry a keyword another session just set: FLAGS comes first.
    """
    other = two_sessions(selected, new_conv, flags="")
    other.ok("t1 STORE 1 +FLAGS.SILENT ($Elsewhere)")
    selected.send(b"f1 FETCH 1 (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)] BODY[TEXT])\r\n")
    lines = [l for l in selected.output().decode().split("\r\n") if l]
    assert lines[-1] == "f1 OK FETCH completed", lines
    i = announced(lines, "$Elsewhere")
    assert i < next(n for n, l in enumerate(lines) if l.startswith("* 1 FETCH"))
