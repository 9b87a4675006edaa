"""
NOTIFY compared with Dovecot 2.3 (a private instance, see L{dovecot_imap}):
which NOTIFY commands are OK, NO and BAD, and the LIST responses of
MailboxName and SubscriptionChange events.  Only what Dovecot does the
same way every time is compared: its reports of new mail and expunges
arrive late at times (a new message in the selected mailbox was reported
only with the next event in our runs), so those are checked against the
RFC in C{test_notify} instead.  The deliberate differences are listed in
L{imapd.commands.notify} (BADEVENT lists the supported events; MailboxName
with SELECTED is BAD; renames give OLDNAME).
"""

from __future__ import annotations

from dovecot_imap import DovecotSession, dovecot_conf  # noqa: F401 - a fixture

#: NOTIFY arguments whose outcome (OK/NO/BAD) both servers agree on.
COMMANDS = [
    "SET (SELECTED (MessageNew (UID FLAGS) MessageExpunge)) (PERSONAL (MessageNew MessageExpunge))",
    "SET STATUS (SELECTED-DELAYED (MessageNew MessageExpunge FlagChange)) (INBOXES NONE)",
    "SET (SUBTREE Work (MessageNew MessageExpunge)) (MAILBOXES (Other INBOX) (MailboxName))",
    "SET (SUBSCRIBED (SubscriptionChange)) (PERSONAL NONE)",
    "SET (PERSONAL (MessageNew AnnotationChange MessageExpunge))",
    "SET (PERSONAL (MailboxMetadataChange))",
    "SET (SELECTED (MessageNew))",
    "SET (SELECTED (FlagChange))",
    "SET (SELECTED (MessageNew MessageExpunge)) (SELECTED-DELAYED (MessageNew MessageExpunge))",
    "NONE",
]

#: Changes made by the second session, each followed by the first
#: session's unsolicited LIST responses.
CHANGES = ["CREATE New", "SUBSCRIBE Work", "UNSUBSCRIBE Work", "DELETE New"]


def test_same_outcomes_and_list_events(dovecot_conf, new_conv):
    """Both servers answer COMMANDS alike and tell CHANGES with the same LIST lines."""
    theirs_a, theirs_b = DovecotSession(dovecot_conf), DovecotSession(dovecot_conf)
    ours_a, ours_b = new_conv(), new_conv()
    ours_a.login()
    ours_b.login()
    results = {}
    try:
        for name, (a, b) in {"dovecot": (theirs_a, theirs_b), "ours": (ours_a, ours_b)}.items():
            def command(session, line):
                if name == "dovecot":
                    return session.command(line)
                return session.transact(line)
            for n, box in enumerate(["Work", "Other"]):
                command(a, f"c{n} CREATE {box}")
            command(a, "s1 SELECT INBOX")
            outcomes = [command(a, f"n{n} NOTIFY {args}")[-1].split(" ")[1]
                        for n, args in enumerate(COMMANDS)]
            command(a, "m1 NOTIFY SET (PERSONAL (MailboxName SubscriptionChange))")
            events = []
            for n, change in enumerate(CHANGES):
                command(b, f"b{n} {change}")
                if name == "dovecot":
                    got = a.drain(1.0)
                else:
                    a.clock.advance(0)
                    got = a.lines()
                # The hierarchy delimiters differ ("." and "/").
                events.append([line.replace('"."', '"/"') for line in got])
            results[name] = (outcomes, events)
    finally:
        theirs_a.close()
        theirs_b.close()
    assert results["ours"] == results["dovecot"]
    assert results["ours"][0] == ["OK"] * 4 + ["NO", "NO", "BAD", "BAD", "BAD", "OK"]
    assert results["ours"][1] == [['* LIST () "/" New'], ['* LIST (\\Subscribed) "/" Work'],
                                  ['* LIST () "/" Work'], ['* LIST (\\NonExistent) "/" New']]
