"""
RFC 5465 NOTIFY as conversations with two sessions interleaved, on each
store: events of the selected mailbox between commands (SELECTED and
SELECTED-DELAYED, MessageNew with FETCH attributes, FlagChange), STATUS
for other mailboxes (PERSONAL, INBOXES, SUBTREE, MAILBOXES, SUBSCRIBED),
LIST for MailboxName and SubscriptionChange, NOTIFY NONE, BADEVENT,
NOTIFICATIONOVERFLOW, the periodic re-check that finds changes by other
processes, and IDLE.
"""

import os
import re
import subprocess
import sys

from conversation_helpers import RECENT, append, second


def poll(conv):
    """Let the re-check timer fire once, and return what the session said."""
    conv.clock.advance(conv.context.limits.notify_poll_interval)
    return conv.lines()


def setup(authed, count=2):
    authed.ok("c1 CREATE Work")
    authed.ok("c2 CREATE Lists/A")
    authed.ok("c3 CREATE Lists/B")
    authed.ok("c4 CREATE Other")
    for n in range(1, count + 1):
        append(authed, f"a{n}", n)
    authed.ok("s1 SELECT INBOX")


def test_capability(authed):
    """NOTIFY is advertised."""
    assert "NOTIFY" in authed.ok("c1 CAPABILITY")[0].split()


def test_syntax_and_badevent(authed):
    """
    Section 5 and 6.1 rules are BAD; unsupported events (AnnotationChange,
    the METADATA ones, unknown ones) are NO [BADEVENT (what we support)].
    """
    setup(authed)
    for n, args in enumerate([
            "SET (SELECTED (MessageNew))",
            "SET (SELECTED (FlagChange))",
            "SET (PERSONAL (FlagChange MessageNew))",
            "SET (SELECTED (MessageNew MessageExpunge MailboxName))",
            "SET (SELECTED NONE) (SELECTED-DELAYED NONE)",
            "SET (NOWHERE (MessageNew MessageExpunge))",
            "SET (SUBTREE (MessageNew MessageExpunge))",
            "SET",
            "BOGUS"]):
        lines = authed.transact(f"b{n} NOTIFY {args}")
        assert lines == [lines[-1]] and lines[-1].startswith(f"b{n} BAD "), (args, lines)
    for n, events in enumerate(["MessageNew MessageExpunge AnnotationChange",
                                "MailboxMetadataChange", "ServerMetadataChange", "XFoo"]):
        lines = authed.transact(f"n{n} NOTIFY SET (PERSONAL ({events}))")
        assert lines[-1] == (f"n{n} NO [BADEVENT (MessageNew MessageExpunge FlagChange "
                             f"MailboxName SubscriptionChange)] Unsupported NOTIFY event "
                             f"{events.split()[-1]}"), lines


def test_selected_events_between_commands(authed, new_conv):
    """
    SELECTED: another session's new message (EXISTS, then FETCH of the
    asked attributes), flag change (FETCH with UID) and expunge (EXPUNGE)
    reach the client with no command in progress, at once (the other
    session is in this process).
    """
    setup(authed)
    other = second(new_conv)
    authed.ok("n1 NOTIFY SET (SELECTED (MessageNew (UID FLAGS) MessageExpunge FlagChange))")
    append(other, "b1", 3)
    authed.clock.advance(0)
    assert authed.lines() == ["* 3 EXISTS", RECENT, "* 3 FETCH (UID 3 FLAGS ())"]
    other.ok("b2 STORE 1 +FLAGS.SILENT (\\Flagged)")
    authed.clock.advance(0)
    assert authed.lines() == ["* 1 FETCH (UID 1 FLAGS (\\Flagged \\Recent))"]
    other.ok("b3 STORE 2 +FLAGS.SILENT (\\Deleted)")
    other.ok("b4 EXPUNGE")
    authed.clock.advance(0)
    lines = authed.lines()
    assert lines[-1] == "* 2 EXPUNGE", lines


def test_selected_without_flagchange_and_delayed(authed, new_conv):
    """
    Without FlagChange no flag FETCH is sent; SELECTED-DELAYED holds the
    EXPUNGE back until a command that may send it (not FETCH: RFC 3501
    section 7.4.1), while EXISTS goes out at once.
    """
    setup(authed, 3)
    other = second(new_conv)
    authed.ok("n1 NOTIFY SET (SELECTED-DELAYED (MessageNew MessageExpunge))")
    other.ok("b1 STORE 1 +FLAGS.SILENT (\\Flagged \\Deleted)")
    other.ok("b2 EXPUNGE")
    append(other, "b3", 4)
    authed.clock.advance(0)
    assert authed.lines() == ["* 4 EXISTS", RECENT]
    authed.script(
        """
        C: f1 FETCH 1 UID
        S: * 1 FETCH (UID 1)
        S: f1 OK FETCH completed
        C: f2 NOOP
        S: * 1 EXPUNGE
        S: f2 OK NOOP completed
        """
    )


def test_other_mailboxes_status(authed, new_conv, store_kind):
    """
    PERSONAL: new mail, flag changes and expunges in a mailbox other than
    the selected one give STATUS responses; the selected mailbox is not
    among them (no SELECTED group: no events for it at all).  STATUS
    indicator: one STATUS per watched mailbox before the OK.
    """
    setup(authed)
    other = second(new_conv, select=None)
    lines = authed.ok("n1 NOTIFY SET STATUS (PERSONAL (MessageNew MessageExpunge))")
    # Maildir++ makes "Lists" a mailbox of its own; in mbox it is a directory.
    expected = ["Lists/A", "Lists/B", "Other", "Work"]
    if store_kind == "maildir":
        expected.insert(0, "Lists")
    assert [re.sub(r"UIDVALIDITY \d+", "UIDVALIDITY v", l) for l in lines] == [
        f"* STATUS {name} (MESSAGES 0 UIDNEXT 1 UIDVALIDITY v UNSEEN 0)" for name in expected
    ] + ["n1 OK NOTIFY completed"], lines
    append(other, "b1", 1, mailbox="Work")
    append(other, "b2", 2, mailbox="INBOX")
    authed.clock.advance(0)
    assert authed.lines() == ["* STATUS Work (MESSAGES 1 UIDNEXT 2 UNSEEN 1)"]
    # No FlagChange asked: a flag change elsewhere says nothing.
    other.ok("b3 SELECT Work")
    other.ok("b4 STORE 1 +FLAGS.SILENT (\\Seen)")
    authed.clock.advance(0)
    assert authed.lines() == []
    other.ok("b5 STORE 1 +FLAGS.SILENT (\\Deleted)")
    other.ok("b6 EXPUNGE")
    authed.clock.advance(0)
    assert authed.lines() == ["* STATUS Work (MESSAGES 0 UIDNEXT 2 UNSEEN 0)"]
    # Nothing said about INBOX, the selected mailbox, even at NOOP.
    assert authed.ok("n2 NOOP") == ["n2 OK NOOP completed"]
    # NOTIFY SET reports what was held back (section 3.1).
    lines = authed.ok("n3 NOTIFY SET (SELECTED (MessageNew MessageExpunge))")
    assert lines[0] == "* 3 EXISTS", lines


def test_flagchange_elsewhere_and_filters(authed, new_conv):
    """
    FlagChange for other mailboxes enables CONDSTORE and reports UNSEEN
    and HIGHESTMODSEQ; SUBTREE covers the children, MAILBOXES exactly the
    names, and an earlier group with NONE excludes a mailbox.
    """
    setup(authed)
    other = second(new_conv, select=None)
    authed.ok("n1 NOTIFY SET (MAILBOXES Lists/B NONE) "
              "(SUBTREE Lists (MessageNew MessageExpunge FlagChange)) "
              "(MAILBOXES (Other) (MessageNew MessageExpunge))")
    append(other, "b1", 1, mailbox="Lists/B")
    append(other, "b2", 2, mailbox="Other")
    append(other, "b3", 3, mailbox="Lists/A")
    append(other, "b4", 4, mailbox="Work")
    authed.clock.advance(0)
    out = authed.lines()
    assert [re.sub(r"HIGHESTMODSEQ \d+", "HIGHESTMODSEQ n", l) for l in out] == [
        "* STATUS Lists/A (MESSAGES 1 UIDNEXT 2 UNSEEN 1 HIGHESTMODSEQ n)",
        "* STATUS Other (MESSAGES 1 UIDNEXT 2 UNSEEN 1 HIGHESTMODSEQ n)"], out
    other.ok("b5 SELECT Lists/A")
    other.ok("b6 STORE 1 +FLAGS.SILENT (\\Seen)")
    authed.clock.advance(0)
    out = authed.lines()
    assert len(out) == 1 and re.fullmatch(
        r"\* STATUS Lists/A \(UIDVALIDITY \d+ UNSEEN 0 HIGHESTMODSEQ \d+\)", out[0]), out


def test_mailbox_names_and_subscriptions(authed, new_conv):
    """
    MailboxName: LIST for a created mailbox, \\NonExistent for a deleted
    one, OLDNAME for a rename; SubscriptionChange: LIST with or without
    \\Subscribed.
    """
    setup(authed)
    other = second(new_conv, select=None)
    authed.ok("n1 NOTIFY SET (PERSONAL (MailboxName SubscriptionChange))")
    other.ok("b1 CREATE New")
    authed.clock.advance(0)
    assert authed.lines() == ['* LIST () "/" New']
    other.ok("b2 RENAME New Newer")
    authed.clock.advance(0)
    assert authed.lines() == ['* LIST () "/" Newer ("OLDNAME" (New))']
    other.ok("b3 DELETE Newer")
    authed.clock.advance(0)
    assert authed.lines() == ['* LIST (\\NonExistent) "/" Newer']
    other.ok("b4 SUBSCRIBE Other")
    authed.clock.advance(0)
    assert authed.lines() == ['* LIST (\\Subscribed) "/" Other']
    other.ok("b5 UNSUBSCRIBE Other")
    authed.clock.advance(0)
    assert authed.lines() == ['* LIST () "/" Other']


def test_subscribed_and_inboxes(authed, new_conv):
    """SUBSCRIBED follows the subscriptions; INBOXES is INBOX."""
    setup(authed)
    authed.ok("u1 UNSELECT")
    authed.ok("u2 SUBSCRIBE Other")
    other = second(new_conv, select=None)
    authed.ok("n1 NOTIFY SET (SUBSCRIBED (MessageNew MessageExpunge)) "
              "(INBOXES (MessageNew MessageExpunge))")
    append(other, "b1", 1, mailbox="Other")
    append(other, "b2", 2, mailbox="Work")
    append(other, "b3", 3, mailbox="INBOX")
    authed.clock.advance(0)
    assert authed.lines() == ["* STATUS INBOX (MESSAGES 3 UIDNEXT 4 UNSEEN 3)",
                              "* STATUS Other (MESSAGES 1 UIDNEXT 2 UNSEEN 1)"]


def test_notify_none(authed, new_conv):
    """NOTIFY NONE: no events, not even the usual ones at NOOP; NOTIFY SET brings them back."""
    setup(authed)
    other = second(new_conv)
    authed.ok("n1 NOTIFY SET (SELECTED (MessageNew MessageExpunge)) (PERSONAL (MailboxName))")
    authed.ok("n2 NOTIFY NONE")
    append(other, "b1", 3)
    other.ok("b2 CREATE New")
    authed.clock.advance(0)
    assert poll(authed) == []
    assert authed.ok("n3 NOOP") == ["n3 OK NOOP completed"]
    lines = authed.ok("n4 NOTIFY SET (SELECTED (MessageNew MessageExpunge))")
    assert lines[:1] == ["* 3 EXISTS"], lines


def test_another_process_is_found_by_the_poll(authed, mail_root, store_kind, tmp_path):
    """
    Mail delivered by another process (its own store object and index)
    is found at the next periodic re-check: EXISTS for the selected
    mailbox, STATUS for another.
    """
    setup(authed)
    authed.ok("n1 NOTIFY SET (SELECTED (MessageNew MessageExpunge)) "
              "(PERSONAL (MessageNew MessageExpunge))")
    code = (
        "import sys\n"
        "from storage.registry import open_store\n"
        "store = open_store(sys.argv[1], 'demo', None, sys.argv[2])\n"
        "for name in ('INBOX', 'Other'):\n"
        "    box = store.open(name)\n"
        "    t = box.transaction()\n"
        "    t.append(b'Subject: mda\\r\\n\\r\\nbody\\r\\n', ())\n"
        "    t.commit()\n"
    )
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    subprocess.run([sys.executable, "-c", code, f"{store_kind}:{mail_root}/%u",
                    str(tmp_path / "index-mda")], check=True,
                   env=dict(os.environ, PYTHONPATH=root), timeout=60)
    authed.clock.advance(0)
    assert authed.lines() == []
    assert poll(authed) == ["* 3 EXISTS", RECENT,
                            "* STATUS Other (MESSAGES 1 UIDNEXT 2 UNSEEN 1)"]
    # The timer goes on.
    assert poll(authed) == []


def test_idle_reports_notify_events(authed, new_conv):
    """Section 4: during IDLE the IDLE poll reports the NOTIFY events of other mailboxes."""
    setup(authed)
    other = second(new_conv, select=None)
    authed.ok("n1 NOTIFY SET (PERSONAL (MessageNew MessageExpunge))")
    authed.send(b"i1 IDLE\r\n")
    assert authed.lines() == ["+ idling"]
    append(other, "b1", 1, mailbox="Other")
    authed.clock.advance(authed.context.limits.idle_poll_interval)
    assert authed.lines() == ["* STATUS Other (MESSAGES 1 UIDNEXT 2 UNSEEN 1)"]
    authed.send(b"DONE\r\n")
    assert authed.lines() == ["i1 OK IDLE terminated"]


def test_overflow(authed, new_conv, store_kind):
    """
    More watched mailboxes than max_notify_mailboxes: NOTIFY SET is NO
    [NOTIFICATIONOVERFLOW]; a set that grows past it later ends with an
    untagged OK [NOTIFICATIONOVERFLOW] and no more events.
    """
    import dataclasses

    setup(authed)
    # Other, Work, Lists/A, Lists/B (and, in Maildir++, Lists): one too many.
    watched = 5 if store_kind == "maildir" else 4
    authed.proto.limits = dataclasses.replace(authed.proto.limits,
                                              max_notify_mailboxes=watched - 1)
    lines = authed.transact("n1 NOTIFY SET (PERSONAL (MessageNew MessageExpunge))")
    assert lines[-1].startswith("n1 NO [NOTIFICATIONOVERFLOW] "), lines
    authed.ok("d1 DELETE Work")
    authed.ok("n2 NOTIFY SET (PERSONAL (MessageNew MessageExpunge))")
    other = second(new_conv, select=None)
    other.ok("b1 CREATE Fifth")
    authed.clock.advance(0)
    lines = authed.lines()
    assert len(lines) == 1 and lines[0].startswith("* OK [NOTIFICATIONOVERFLOW] "), lines
    append(other, "b2", 1, mailbox="Other")
    authed.clock.advance(0)
    assert poll(authed) == []


def test_messagenew_fetch_comes_before_search_updates(authed, new_conv):
    """
    Section 7 with CONTEXT=SEARCH: a new message is told by EXISTS, then
    the FETCH MessageNew asked for, then the ESEARCH ADDTO.
    """
    setup(authed)
    other = second(new_conv)
    authed.ok("x1 UID SEARCH RETURN (UPDATE) ALL")
    authed.ok("n1 NOTIFY SET (SELECTED (MessageNew (UID) MessageExpunge))")
    append(other, "b1", 3)
    authed.clock.advance(0)
    assert authed.lines() == ["* 3 EXISTS", RECENT, "* 3 FETCH (UID 3)",
                              '* ESEARCH (TAG "x1") UID ADDTO (0 3)']


def test_a_notice_reads_only_what_the_command_touched(authed, new_conv):
    """
    After another session's APPEND, the look reads the STATUS of that one
    mailbox, not of every watched one; the periodic re-check reads them all.
    """
    setup(authed)
    other = second(new_conv, select=None)
    authed.ok("n1 NOTIFY SET (PERSONAL (MessageNew MessageExpunge))")
    store = authed.proto.account.store
    read = []
    status = store.status
    store.status = lambda name: read.append(name) or status(name)
    append(other, "b1", 1, mailbox="Other")
    authed.clock.advance(0)
    assert authed.lines() == ["* STATUS Other (MESSAGES 1 UIDNEXT 2 UNSEEN 1)"]
    assert read == ["Other"]
    del read[:]
    assert poll(authed) == []
    assert "Other" in read and "Work" in read and len(read) >= 4


def test_update_with_fetch_attributes(authed, new_conv):
    """
    Section 7: SEARCH RETURN (UPDATE (fetch-atts)): a new message that
    joins the result is sent with a FETCH of those attributes, after
    EXISTS and before the ESEARCH ADDTO; one that joins by a flag change
    gets no FETCH.
    """
    setup(authed)
    other = second(new_conv)
    authed.ok("x1 UID SEARCH RETURN (UPDATE (UID FLAGS) COUNT) UNFLAGGED")
    append(other, "b1", 3)
    other.ok("b2 STORE 1 +FLAGS.SILENT (\\Flagged)")
    assert authed.ok("n1 NOOP") == [
        "* 1 FETCH (FLAGS (\\Flagged \\Recent))", "* 3 EXISTS", RECENT,
        "* 3 FETCH (UID 3 FLAGS ())", '* ESEARCH (TAG "x1") UID REMOVEFROM (0 1) ADDTO (0 3)',
        "n1 OK NOOP completed"]
    other.ok("b3 STORE 1 -FLAGS.SILENT (\\Flagged)")
    assert authed.ok("n2 NOOP") == [
        "* 1 FETCH (FLAGS (\\Recent))", '* ESEARCH (TAG "x1") UID ADDTO (0 1)',
        "n2 OK NOOP completed"]
