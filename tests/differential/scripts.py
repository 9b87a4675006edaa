"""
The differential scripts, by command family (see L{harness} for the step
syntax).  Each family has at least two sessions whose commands interleave,
so that one session's changes must reach the other.  The scripts for the
known-broken rules of issue 13 are in L{scripts_rules}, one per rule;
L{ALL} holds both sets.
"""

from __future__ import annotations

from tests.differential.allowed import ALLOWED
from tests.differential.harness import Script
from tests.differential.scripts_rules import RULES

__all__ = ["FAMILIES", "ALL", "allowed_for"]

#: Initial mail of most scripts: (mailbox, message, flags, INTERNALDATE).
INBOX = (
    ("INBOX", "plain", "(\\Seen)", "02-Feb-2026 10:00:00 +0100"),
    ("INBOX", "reply", "", "03-Feb-2026 09:30:00 +0000"),
    ("INBOX", "multi", "(\\Flagged $Work)", "04-Feb-2026 18:00:00 -0500"),
    ("INBOX", "qp", "(\\Answered)", "05-Feb-2026 12:00:00 +0000"),
    ("INBOX", "comment", "", "06-Feb-2026 08:00:00 +0000"),
    ("INBOX", "rfc822", "(\\Seen \\Draft)", "07-Feb-2026 08:00:00 +0000"),
    ("INBOX", "apple", "", "08-Feb-2026 08:00:00 +0000"),
    ("INBOX", "calendar", "($Later)", "09-Feb-2026 08:00:00 +0000"),
    ("INBOX", "basic", "", "10-Feb-2026 08:00:00 +0000"),
)

S = Script

SELECT = [
    S("select-two-sessions", "select", (
        "a: SELECT INBOX",
        "b: EXAMINE INBOX",
        "b: APPEND INBOX {msg:small}",
        "a: NOOP",
        "b: NOOP",
        "a: FETCH 1:* (FLAGS)",
        "b: FETCH 10 (FLAGS)",
        "a: UNSELECT",
        "b: STORE 1 +FLAGS (\\Deleted)",
        "b: SELECT Nonexistent",
        "b: FETCH 1 (FLAGS)",
        "a: EXAMINE INBOX",
        "a: CLOSE",
        "a: SELECT inbox",
    ), setup=INBOX),
    S("select-mailbox-other", "select", (
        "a: SELECT Work",
        "b: SELECT Work",
        "a: STATUS Work (MESSAGES RECENT UNSEEN UIDNEXT)",
        "b: APPEND Work (\\Seen) {msg:plain}",
        "a: CHECK",
        "a: SELECT INBOX",
        "b: CLOSE",
        "b: EXAMINE Work",
    ), mailboxes=("Work",), setup=(("Work", "small", "", ""),)),
]

LIST = [
    S("list-tree", "list", (
        "a: CREATE Projects/Alpha",
        "a: CREATE Projects/Beta/Deep",
        "b: LIST \"\" *",
        "b: LIST \"\" %",
        "b: LIST \"\" Projects/%",
        "b: LIST Projects %",
        "b: LIST \"\" \"\"",
        "a: SUBSCRIBE Projects/Alpha",
        "b: LSUB \"\" *",
        "b: LIST (SUBSCRIBED) \"\" *",
        "b: LIST \"\" * RETURN (CHILDREN)",
        "b: LIST \"\" % RETURN (STATUS (MESSAGES UNSEEN))",
        "a: STATUS INBOX (MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN)",
        "b: STATUS Projects/Alpha (MESSAGES UIDNEXT)",
        "b: STATUS Nope (MESSAGES)",
        "a: LIST \"\" inbox",
        "a: LIST \"\" IN%",
        "a: STATUS INBOX (SIZE)",
    ), setup=INBOX),
]

MAILBOXES = [
    S("mailbox-manage", "mailbox", (
        "a: CREATE Archive",
        "b: CREATE Archive",
        "b: CREATE Archive/2026/",
        "a: LIST \"\" Archive*",
        "a: RENAME Archive Old",
        "b: LIST \"\" *",
        "b: RENAME Nope Other",
        "b: RENAME Old INBOX",
        "a: SUBSCRIBE Old",
        "a: UNSUBSCRIBE Old",
        "a: LSUB \"\" *",
        "a: DELETE Old/2026",
        "b: DELETE Old",
        "b: LIST \"\" *",
        "a: DELETE Nope",
        "a: DELETE INBOX",
        "a: CREATE INBOX",
        "b: CREATE \"Entw&APw-rfe\"",
        "a: LIST \"\" Entw*",
        "a: SUBSCRIBE Ghost",
        "b: LSUB \"\" *",
    )),
    S("mailbox-rename-inbox", "mailbox", (
        "a: SELECT INBOX",
        "b: RENAME INBOX Saved",
        "b: STATUS Saved (MESSAGES)",
        "b: STATUS INBOX (MESSAGES)",
        "a: NOOP",
    ), setup=INBOX[:3]),
]

APPEND = [
    S("append-two-sessions", "append", (
        "a: SELECT INBOX",
        "b: APPEND INBOX {msg:plain}",
        "b: APPEND INBOX (\\Seen \\Flagged) \"12-Jan-2026 10:11:12 +0000\" {msg:reply}",
        "b: APPEND INBOX ($Todo) {msg:multi}",
        "a: NOOP",
        "a: FETCH 1:* (FLAGS INTERNALDATE RFC822.SIZE)",
        "b: APPEND INBOX {msg:small} {msg:qp} (\\Draft) {msg:comment}",
        "a: NOOP",
        "a: UID FETCH 1:* (UID FLAGS)",
        "b: APPEND Target (\\Seen) {msg:plain}",
        "b: APPEND INBOX (\\Recent) {msg:small}",
    ), mailboxes=("Target",)),
    S("append-empty-and-status", "append", (
        "a: STATUS Target (MESSAGES UIDNEXT UNSEEN RECENT)",
        "b: APPEND Target {msg:basic}",
        "a: STATUS Target (MESSAGES UIDNEXT UNSEEN RECENT)",
        "a: SELECT Target",
        "b: APPEND Target (\\Seen) {msg:apple} {msg:calendar}",
        "a: NOOP",
        "a: FETCH 1:* (FLAGS RFC822.SIZE)",
    ), mailboxes=("Target",)),
]

FETCH = [
    S("fetch-structure", "fetch", (
        "a: EXAMINE INBOX",
        "b: SELECT INBOX",
        "a: FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE)",
        "a: FETCH 1:* ENVELOPE",
        "a: FETCH 1:* BODYSTRUCTURE",
        "a: FETCH 1:* BODY",
        "a: FETCH 1:4 FAST",
        "a: FETCH 2 ALL",
        "a: FETCH 3 FULL",
    ), setup=INBOX),
    S("fetch-sections", "fetch", (
        "a: SELECT INBOX",
        "b: EXAMINE INBOX",
        "a: FETCH 1 BODY.PEEK[]",
        "a: FETCH 3 (BODY.PEEK[HEADER] BODY.PEEK[TEXT])",
        "a: FETCH 3 (BODY.PEEK[1] BODY.PEEK[1.MIME] BODY.PEEK[2] BODY.PEEK[3])",
        "a: FETCH 3 BODY.PEEK[HEADER.FIELDS (From Subject Message-ID)]",
        "a: FETCH 3 BODY.PEEK[HEADER.FIELDS.NOT (From Subject Date)]",
        "a: FETCH 3 (BODY.PEEK[]<0.20> BODY.PEEK[TEXT]<5.10> BODY.PEEK[1]<100.50>)",
        "a: FETCH 6 (BODY.PEEK[2] BODY.PEEK[2.HEADER] BODY.PEEK[2.TEXT] BODY.PEEK[2.1])",
        "a: FETCH 7 (BODY.PEEK[1.1] BODY.PEEK[1.2.MIME] BODY.PEEK[2])",
        "a: FETCH 1 (RFC822.HEADER RFC822.TEXT)",
        "a: FETCH 3 (BINARY.PEEK[3] BINARY.SIZE[3] BINARY.PEEK[2])",
        "a: FETCH 3 (BINARY.PEEK[3]<4.8>)",
        "a: FETCH 2 BODY[]",
        "b: NOOP",
        "b: FETCH 2 FLAGS",
        "a: FETCH 2 RFC822",
        "a: UID FETCH 3:4 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])",
        "a: FETCH 99 FLAGS",
        "a: FETCH 1 BODY.PEEK[9]",
        "a: FETCH 1 (BODY.PEEK[1])",
        "a: FETCH 3 BODY.PEEK[3.1]",
    ), setup=INBOX),
]

STORE = [
    S("store-flags", "store", (
        "a: SELECT INBOX",
        "b: SELECT INBOX",
        "a: STORE 1 +FLAGS (\\Flagged)",
        "a: STORE 2 FLAGS (\\Answered \\Seen)",
        "a: STORE 3 -FLAGS (\\Flagged)",
        "a: STORE 4:5 +FLAGS.SILENT (\\Deleted)",
        "b: NOOP",
        "b: FETCH 1:5 FLAGS",
        "b: UID STORE 1:2 -FLAGS.SILENT (\\Seen)",
        "a: NOOP",
        "a: FETCH 1:2 FLAGS",
        "a: STORE 1 +FLAGS (\\Recent)",
        "a: STORE 1 FLAGS ()",
        "a: STORE 1 +FLAGS (\\Bogus)",
    ), setup=INBOX[:5]),
    S("store-keywords", "store", (
        "a: SELECT INBOX",
        "b: SELECT INBOX",
        "a: STORE 2 +FLAGS ($Important Project)",
        "b: NOOP",
        "b: FETCH 2 FLAGS",
        "b: STORE 2 -FLAGS (Project)",
        "a: NOOP",
        "a: UID STORE 3 +FLAGS.SILENT (Other)",
        "a: FETCH 3 (UID FLAGS)",
        "b: STORE 1:3 FLAGS.SILENT ($Work)",
        "a: NOOP",
        "a: FETCH 1:* FLAGS",
    ), setup=INBOX[:5]),
]

SEARCH = [
    S("search-keys", "search", (
        "a: SELECT INBOX",
        "b: EXAMINE INBOX",
        "a: SEARCH ALL",
        "a: SEARCH SEEN",
        "a: SEARCH UNSEEN",
        "a: SEARCH FLAGGED",
        "a: SEARCH ANSWERED",
        "a: SEARCH DRAFT",
        "a: SEARCH KEYWORD $Work",
        "a: SEARCH UNKEYWORD $Work",
        "a: SEARCH FROM alice",
        "a: SEARCH TO bob",
        "a: SEARCH CC dave",
        "a: SEARCH SUBJECT lunch",
        "a: SEARCH CHARSET UTF-8 SUBJECT {msg:resume}",
        "a: SEARCH BODY quokka",
        "a: SEARCH TEXT noon",
        "a: SEARCH HEADER Message-ID <reply-1@example.net>",
        "a: SEARCH HEADER In-Reply-To \"\"",
        "a: SEARCH LARGER 1000",
        "a: SEARCH SMALLER 1000",
        "a: SEARCH BEFORE 05-Feb-2026",
        "a: SEARCH ON 04-Feb-2026",
        "a: SEARCH SINCE 06-Feb-2026",
        "a: SEARCH SENTBEFORE 04-Feb-2026",
        "a: SEARCH SENTON 03-Feb-2026",
        "a: SEARCH SENTSINCE 05-Feb-2026",
        "a: SEARCH UID 2:4",
        "a: SEARCH 2,4:5",
        "a: SEARCH OR SEEN FLAGGED",
        "a: SEARCH NOT SEEN NOT FLAGGED",
        "a: SEARCH NEW",
        "a: SEARCH OLD",
        "a: SEARCH RECENT",
        "b: SEARCH RECENT",
        "a: UID SEARCH DELETED",
        "a: SEARCH RETURN (MIN MAX COUNT) ALL",
        "a: SEARCH RETURN () UNSEEN",
        "a: UID SEARCH RETURN (ALL) SEEN",
        "a: SEARCH RETURN (SAVE) FLAGGED",
        "a: FETCH $ FLAGS",
        "a: SEARCH CHARSET X-UNKNOWN ALL",
        "a: SEARCH CHARSET UTF-8 BODY {msg:cafe}",
        "a: SEARCH TEXT data.bin",
        "a: SEARCH BODY data.bin",
        "a: SEARCH YOUNGER 1",
        "a: SEARCH $",
    ), setup=INBOX),
]

SORT = [
    S("sort-thread", "sort", (
        "a: SELECT INBOX",
        "b: EXAMINE INBOX",
        "a: SORT (DATE) UTF-8 ALL",
        "a: SORT (REVERSE ARRIVAL) UTF-8 ALL",
        "a: UID SORT (SUBJECT) UTF-8 ALL",
        "a: SORT (FROM) UTF-8 ALL",
        "a: SORT (TO CC) UTF-8 ALL",
        "a: SORT (SIZE) UTF-8 SEEN",
        "a: SORT (DISPLAYFROM) UTF-8 ALL",
        "b: THREAD REFERENCES UTF-8 ALL",
        "b: UID THREAD ORDEREDSUBJECT UTF-8 ALL",
        "b: THREAD REFS UTF-8 ALL",
        "a: SORT RETURN (MIN MAX COUNT) (DATE) UTF-8 ALL",
        "a: SORT (BOGUS) UTF-8 ALL",
    ), setup=INBOX),
]

COPYMOVE = [
    S("copy-move", "copymove", (
        "a: SELECT INBOX",
        "b: SELECT Dest",
        "a: COPY 1:2 Dest",
        "b: NOOP",
        "b: FETCH 1:* (UID FLAGS)",
        "a: UID COPY 3 Dest",
        "a: MOVE 4 Dest",
        "b: NOOP",
        "a: UID MOVE 5 Dest",
        "a: COPY 1 Missing",
        "a: MOVE 1 Missing",
        "b: FETCH 1:* (UID FLAGS)",
        "a: FETCH 1:* (UID FLAGS)",
        "b: COPY 1 INBOX",
        "a: NOOP",
        "a: COPY 99 Dest",
    ), mailboxes=("Dest",), setup=INBOX[:5]),
]

EXPUNGE = [
    S("expunge-sessions", "expunge", (
        "a: SELECT INBOX",
        "b: SELECT INBOX",
        "a: STORE 2,4 +FLAGS.SILENT (\\Deleted)",
        "a: EXPUNGE",
        "b: NOOP",
        "b: FETCH 1:* (UID)",
        "b: STORE 1:2 +FLAGS.SILENT (\\Deleted)",
        "b: UID EXPUNGE 1",
        "a: NOOP",
        "a: FETCH 1:* (UID FLAGS)",
        "a: CLOSE",
        "b: NOOP",
        "b: EXPUNGE",
    ), setup=INBOX[:6]),
    S("expunge-examine", "expunge", (
        "a: EXAMINE INBOX",
        "b: SELECT INBOX",
        "b: STORE 1 +FLAGS (\\Deleted)",
        "a: EXPUNGE",
        "a: CLOSE",
        "b: NOOP",
        "b: UID EXPUNGE 2:3",
        "b: EXPUNGE",
        "b: SEARCH ALL",
    ), setup=INBOX[:3]),
]

IDLE = [
    S("idle-updates", "idle", (
        "a: SELECT INBOX",
        "b: SELECT INBOX",
        "a: IDLE",
        "b: APPEND INBOX {msg:small}",
        "a: DONE ~EXISTS",
        "a: IDLE",
        "b: STORE 1 +FLAGS (\\Flagged)",
        "a: DONE ~FETCH",
        "a: IDLE",
        "b: STORE 2 +FLAGS.SILENT (\\Deleted)",
        "b: EXPUNGE",
        "a: DONE ~EXPUNGE",
        "a: NOOP",
        "a: FETCH 1:* (FLAGS)",
    ), setup=INBOX[:3]),
]

CONDSTORE = [
    S("condstore-basics", "condstore", (
        "a: SELECT INBOX (CONDSTORE)",
        "b: SELECT INBOX",
        "a: FETCH 1:* (FLAGS MODSEQ)",
        "a: STORE 1 +FLAGS (\\Flagged)",
        "b: STORE 2 +FLAGS (\\Seen)",
        "a: NOOP",
        "a: FETCH 1:* (FLAGS) (CHANGEDSINCE ${modseq})",
        "a: STATUS Other (HIGHESTMODSEQ MESSAGES)",
        "a: STORE 3 (UNCHANGEDSINCE 1) +FLAGS (\\Answered)",
        "a: SEARCH MODSEQ 1",
        "a: UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1)",
    ), mailboxes=("Other",), setup=INBOX[:3]),
    S("qresync-basics", "condstore", (
        "a: ENABLE QRESYNC",
        "a: SELECT INBOX",
        "b: SELECT INBOX",
        "b: STORE 1 +FLAGS.SILENT (\\Deleted)",
        "b: EXPUNGE",
        "b: STORE 2 +FLAGS (\\Flagged)",
        "a: NOOP",
        "a: UNSELECT",
        "a: SELECT INBOX (QRESYNC (${uidvalidity} 1))",
        "a: UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)",
        "a: SELECT INBOX (QRESYNC (${uidvalidity} 1 1:5))",
        "a: SELECT INBOX (QRESYNC (1 1))",
    ), setup=INBOX[:4]),
]

MISC = [
    S("enable-namespace-id", "misc", (
        "a: ENABLE CONDSTORE",
        "a: ENABLE CONDSTORE X-UNKNOWN",
        "b: NAMESPACE",
        "b: ID NIL",
        "a: ID (\"name\" \"differential\" \"version\" \"1\")",
        "b: ENABLE QRESYNC",
        "a: SELECT INBOX",
        "b: SELECT INBOX",
        "a: NOOP",
        "b: NOOP",
        "a: CHECK",
        "b: XYZZY",
        "b: FETCH",
    ), setup=INBOX[:2]),
]

FAMILIES = SELECT + LIST + MAILBOXES + APPEND + FETCH + STORE + SEARCH + SORT + COPYMOVE \
    + EXPUNGE + IDLE + CONDSTORE + MISC

ALL = FAMILIES + RULES


def allowed_for(store: str) -> dict:
    """The allowed differences on C{store}: (script, step) -> L{allowed.Allowed}."""
    out = {}
    for (script, step, stores), entry in ALLOWED.items():
        if store in stores:
            out[(script, step)] = entry
    return out
