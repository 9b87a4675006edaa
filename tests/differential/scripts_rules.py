"""
One differential script per known-broken rule of issue 13 ("Conformance"),
kept apart from the family scripts so that whoever merges the fixes can
run exactly these (C{python -m tests.differential.harness --rules}, or
C{pytest tests/differential -k rules}).  Rules 1-4 are conf-flags' work,
rules 5-9 conf-rules'.
"""

from __future__ import annotations

from tests.differential.harness import Script

__all__ = ["RULES"]

_SETUP = (
    ("INBOX", "plain", "(\\Seen)", "02-Feb-2026 10:00:00 +0100"),
    ("INBOX", "reply", "", "03-Feb-2026 09:30:00 +0000"),
    ("INBOX", "multi", "", "04-Feb-2026 18:00:00 -0500"),
    ("INBOX", "qp", "", "05-Feb-2026 12:00:00 +0000"),
    ("INBOX", "comment", "", "06-Feb-2026 08:00:00 +0000"),
)

RULES = [
    # Rule 1 (RFC 3501 section 6.4.6, DESIGN.md "Flag changes are applied
    # to the stored state"): two sessions change different flags of one
    # message, each from its own (stale) view; a third sees both changes.
    Script("rules-1-lost-flag-updates", "rules", (
        "a: SELECT INBOX",
        "b: SELECT INBOX",
        "a: STORE 2 +FLAGS.SILENT (\\Flagged)",
        "b: STORE 2 +FLAGS.SILENT (\\Answered)",
        "a: STORE 2 +FLAGS.SILENT (kwA)",
        "b: STORE 2 +FLAGS.SILENT (kwB)",
        "b: STORE 3 FLAGS.SILENT (\\Draft)",
        "a: STORE 3 +FLAGS.SILENT (\\Flagged)",
        "a: FETCH 2 BODY[TEXT]",
        "b: COPY 2 INBOX",
        "c: EXAMINE INBOX",
        "c: FETCH 1:* (FLAGS)",
    ), setup=_SETUP),
    # Rule 2 (RFC 3501 section 7.2.6): a keyword appears in FLAGS (and
    # PERMANENTFLAGS) before a FETCH response uses it.
    Script("rules-2-keywords-announced", "rules", (
        "a: SELECT INBOX",
        "b: SELECT INBOX",
        "b: STORE 1 +FLAGS ($Fresh)",
        "a: NOOP",
        "b: APPEND INBOX (NewKw) {msg:small}",
        "a: NOOP",
        "a: FETCH 1:* (FLAGS)",
    ), setup=_SETUP),
    # Rule 3 (RFC 3501 section 2.3.2): \Recent goes to exactly one
    # session, and stays with it; a message appended with flags is as
    # recent as any other new message.
    Script("rules-3-recent", "rules", (
        "a: SELECT INBOX",
        "b: SELECT INBOX",
        "c: APPEND INBOX {msg:small}",
        "a: NOOP",
        "b: NOOP",
        "a: FETCH 6 (FLAGS)",
        "b: FETCH 6 (FLAGS)",
        "b: SEARCH RECENT",
        "a: SEARCH RECENT",
        "c: STATUS INBOX (RECENT)",
        "c: APPEND INBOX (\\Seen $Kw) {msg:small}",
        "c: APPEND INBOX (\\Flagged) {msg:small} (\\Draft) {msg:small}",
        "b: NOOP",
        "a: NOOP",
        "a: FETCH 6:* (FLAGS)",
        "b: FETCH 6:* (FLAGS)",
        "c: STATUS INBOX (RECENT MESSAGES)",
    ), setup=_SETUP),
    # Rule 4 (RFC 7162 section 3.1): a command that enables CONDSTORE in a
    # selected mailbox (FETCH MODSEQ here) makes the server send
    # HIGHESTMODSEQ.
    Script("rules-4-highestmodseq-enabled-by-command", "rules", (
        "a: SELECT INBOX",
        "a: FETCH 1 (FLAGS MODSEQ)",
        "b: SELECT INBOX",
        "b: SEARCH MODSEQ 1",
        "c: SELECT INBOX",
        # The largest mod-sequence (RFC 7162 section 7: 63 bits): the store
        # must succeed on both servers, whose MODSEQ values differ in size
        # (ours start from the UIDVALIDITY's time, Dovecot's from 1).
        "c: STORE 1 (UNCHANGEDSINCE 9223372036854775807) +FLAGS.SILENT (\\Flagged)",
    ), setup=_SETUP),
    # Rule 5 (RFC 3516 section 4.2): BINARY.SIZE is the decoded size of
    # a quoted-printable part.
    Script("rules-5-binary-size-qp", "rules", (
        "a: EXAMINE INBOX",
        "a: FETCH 6 (BINARY.SIZE[1])",
        "a: FETCH 6 (BINARY.PEEK[1])",
        "a: FETCH 4 (BINARY.SIZE[1] BINARY.PEEK[1])",
        "a: FETCH 3 (BINARY.SIZE[1])",
    ), setup=_SETUP + (("INBOX", "qp-spaces", "", "07-Feb-2026 12:00:00 +0000"),)),
    # Rule 6 (RFC 3501 section 6.4.4): SEARCH FROM is a substring match
    # on the header; an address written with a comment is found.
    Script("rules-6-search-from-comment", "rules", (
        "a: EXAMINE INBOX",
        "a: SEARCH FROM \"carol@example.com (Carol Commenter)\"",
        "a: SEARCH FROM \"Carol Commenter\"",
        "a: SEARCH FROM carol@example.com",
        "a: SEARCH FROM \"Carol Commenter <carol@example.com>\"",
        "a: SEARCH FROM \"Alice Example <alice@example.org>\"",
        "a: SEARCH TO \"Bob <bob@example.net>\"",
    ), setup=_SETUP),
    # Rule 7 (RFC 3501 section 6.3.9; RFC 5258 section 3.5): LSUB % shows
    # an unsubscribed parent of a subscribed mailbox as \Noselect, and
    # LIST (SUBSCRIBED RECURSIVEMATCH) marks it CHILDINFO.
    Script("rules-7-lsub-percent", "rules", (
        "a: CREATE top/mid/leaf",
        "a: SUBSCRIBE top/mid/leaf",
        "b: LSUB \"\" %",
        "b: LSUB \"\" top/%",
        "b: LIST (SUBSCRIBED RECURSIVEMATCH) \"\" %",
    )),
    # Rule 8 (RFC 3501 section 6.3.11; RFC 4469 section 5): APPEND and
    # CATENATE into a missing mailbox fail with NO [TRYCREATE].
    Script("rules-8-append-trycreate", "rules", (
        "a: APPEND Missing {msg:small}",
        "a: APPEND Missing (\\Seen) CATENATE (TEXT {msg:small})",
        "a: APPEND Missing CATENATE (URL \"/INBOX/;UID=1\")",
        "a: APPEND Missing CATENATE (URL \"/Nowhere/;UID=99\")",
        "a: APPEND Missing (\\Seen) CATENATE (TEXT {msg:small} URL \"/INBOX/;UID=77\")",
        "b: STATUS Missing (MESSAGES)",
    ), setup=_SETUP),
    # Rule 9 (RFC 2180 section 4.1.2; RFC 5530 EXPUNGEISSUED): a FETCH of a
    # message another session expunged, before this one was told.
    Script("rules-9-fetch-after-foreign-expunge", "rules", (
        "a: SELECT INBOX",
        "b: SELECT INBOX",
        "b: STORE 2 +FLAGS.SILENT (\\Deleted)",
        "b: EXPUNGE",
        "a: FETCH 2 (BODY.PEEK[TEXT])",
        "a: FETCH 1:3 (FLAGS)",
        "a: NOOP",
    ), setup=_SETUP),
]
