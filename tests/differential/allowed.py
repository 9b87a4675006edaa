"""
Differences between our replies and Dovecot's that the RFCs allow, each
with the section that allows it, and the differences that belong to the
known-broken rules of issue 13 (judged by their own scripts in
L{scripts_rules}).

Three kinds:

  - L{EXTRA_LINES}: an untagged line that one server may send and the
    other may leave out; it is removed from that side only.
  - L{OPTIONAL_CODES}: RFC 5530 response codes on a tagged NO/OK that one
    side sends and the other does not.
  - L{ALLOWED}: one step of one script, keyed by (script, step index,
    stores); the entry must match our normalised reply, so a change on
    our side is noticed, and an entry whose difference went away fails the
    harness ("stale-allowed") until it is removed.

Issue 13's rules (keyword announcements, \\Recent, HIGHESTMODSEQ, ...)
are judged by their own scripts and by every family script alike: no
difference is set aside for them any more.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Allowed", "ALLOWED", "EXTRA_LINES", "OPTIONAL_CODES"]

BOTH = ("maildir", "mbox")
MAILDIR = ("maildir",)
MBOX = ("mbox",)

#: (side, normalised line, why).
EXTRA_LINES = (
    ("ours", "* (expunged) FETCH (FLAGS (\\Deleted))",
     "RFC 2177 section 3: while idling, the server sends untagged responses as changes "
     "happen; another session of the same mail worker wakes our IDLE at once (issue 14), "
     "so a \\Deleted set just before an EXPUNGE may be reported on its own first, where "
     "Dovecot (and we, when the two changes land in one look) report only the EXPUNGE"),
    ("ours", "* OK [HIGHESTMODSEQ <modseq>]",
     "RFC 7162 section 3.1.2.1: a server with persistent mod-sequences MUST send "
     "HIGHESTMODSEQ with every successful SELECT/EXAMINE; Dovecot sends it only once "
     "CONDSTORE is enabled"),
    ("ours", "* 0 RECENT",
     "RFC 3501 section 7.3.2: RECENT is sent when the mailbox size changes, also when the "
     "count is 0; Dovecot leaves it out when the count did not change"),
    ("theirs", "* OK",
     "RFC 3501 section 7.1.1: an untagged OK without a response code is information only "
     "(Dovecot's keep-alive during IDLE); a client acts on nothing in it"),
    ("theirs", "* OK [CLOSED]",
     "RFC 7162 section 3.2.11: a server implementing QRESYNC MUST return CLOSED when SELECT "
     "closes the previous mailbox; we read that, as the rest of QRESYNC, as applying once "
     "the client enabled QRESYNC (or IMAP4rev2, RFC 9051 section 7.1), Dovecot sends it to "
     "every client; a client ignores a response code it does not know (RFC 3501 section "
     "7.1), so neither breaks one"),
)

#: RFC 5530 section 3: response codes that only add detail to a NO (or an
#: OK); a server MAY send them.  TRYCREATE is not here: RFC 3501 section
#: 6.3.11 requires it.
OPTIONAL_CODES = ("NONEXISTENT", "ALREADYEXISTS", "CANNOT", "CLIENTBUG", "INUSE")


@dataclass(frozen=True)
class Allowed:
    """
    Why we may differ here.  With C{theirs_has}, the difference must be
    exactly that: Dovecot's reply with C{theirs_has} replaced by
    C{ours_has} is ours (a line that the replacement empties is one that
    only Dovecot sends).  Without it, our reply must contain C{ours_has}
    (for replies that differ as a whole, e.g. a command Dovecot refuses).
    """

    why: str
    ours_has: str
    theirs_has: str | None = None

    def matches(self, ours: list[str], theirs: list[str]) -> bool:
        if self.theirs_has is not None:
            replaced = (t.replace(self.theirs_has, self.ours_has) for t in theirs)
            return sorted(t for t in replaced if t) == sorted(ours)
        return any(self.ours_has in line for line in ours)


_SUPERIOR = ("RFC 3501 section 6.3.3: CREATE of a/b SHOULD create the superior a; we "
             "create it as a real mailbox, Dovecot's Maildir++ leaves a \\Noselect "
             "placeholder (\\NonExistent in LIST-EXTENDED, RFC 5258 section 3)")
_CHILD_INFO = ("RFC 5258 section 4: \\HasChildren/\\HasNoChildren may be returned without "
               "the CHILDREN return option (RFC 3348 servers always send them)")
_RENAME_INBOX = ("RFC 3501 section 6.3.5: renaming INBOX is permitted and moves its messages "
                 "to the new mailbox, leaving INBOX empty; Dovecot refuses it on Maildir")
_READ_ONLY = ("RFC 3501 section 6.3.2: after EXAMINE no change to the mailbox is permitted; "
              "we refuse with NO [READ-ONLY], Dovecot answers OK and changes nothing")
_RECENT_FLAG = ("RFC 3501 section 2.3.2: \\Recent cannot be altered by the client; it is "
                "syntactically a flag-extension (section 9), which we ignore, while Dovecot "
                "answers BAD")

_CHILDINFO_TAG = ("RFC 5258 section 9: the extended-item tag is an astring; we quote it as the "
                  "RFC's own examples do, Dovecot sends an atom")
_RECENT_WITH_EXISTS = ("RFC 3501 section 7.3.2: RECENT goes with the change of the mailbox's "
                       "size; we send it with the EXISTS (during a FETCH here), Dovecot at the "
                       "next command that is not a FETCH, STORE or SEARCH")
_LAST_KNOWN = ("RFC 2180 section 4.1: a server may go on answering FETCH for a message another "
               "session expunged until it can send the EXPUNGE; which flags it then shows is "
               "not specified: we show the flags this session last saw, Dovecot the flags the "
               "message had when it was expunged")

ALLOWED: dict[tuple[str, int, tuple[str, ...]], Allowed] = {
    ("select-two-sessions", 8, BOTH): Allowed(_READ_ONLY, "NO [READ-ONLY]"),
    ("expunge-examine", 3, BOTH): Allowed(_READ_ONLY, "NO [READ-ONLY]"),
    ("list-tree", 2, MAILDIR): Allowed(_SUPERIOR, "(\\HasChildren)", "(\\HasChildren \\Noselect)"),
    ("list-tree", 3, MAILDIR): Allowed(_SUPERIOR, "(\\HasChildren)", "(\\HasChildren \\Noselect)"),
    ("list-tree", 4, MAILDIR): Allowed(_SUPERIOR, "(\\HasChildren)", "(\\HasChildren \\Noselect)"),
    ("list-tree", 5, MAILDIR): Allowed(_SUPERIOR, "(\\HasChildren)", "(\\HasChildren \\Noselect)"),
    ("list-tree", 10, MAILDIR): Allowed(_SUPERIOR, "(\\HasChildren)",
                                        "(\\HasChildren \\NonExistent \\Noselect)"),
    ("list-tree", 11, MAILDIR): Allowed(_SUPERIOR + "; " + _CHILD_INFO,
                                     "* STATUS Projects (MESSAGES 0 UNSEEN 0)"),
    ("list-tree", 9, MAILDIR): Allowed(_CHILD_INFO, "(\\HasNoChildren \\Subscribed)",
                                    "(\\Subscribed)"),
    ("mailbox-manage", 3, MAILDIR): Allowed(
        "RFC 6154 section 2: the server decides which mailboxes carry special-use "
        "attributes; our default [mailboxes] special_use marks \"Archive\" \\Archive",
        "(\\Archive \\HasChildren)", "(\\HasChildren)"),
    ("mailbox-manage", 3, MBOX): Allowed(
        "RFC 6154 section 2, as on Maildir (an mbox file has no children)",
        "(\\Archive \\HasNoChildren \\NoInferiors)", "(\\HasNoChildren \\NoInferiors)"),
    ("mailbox-manage", 19, BOTH): Allowed(
        "RFC 3501 section 6.3.6: a server MAY check that a mailbox exists before SUBSCRIBE "
        "(Dovecot does), or not (we do not)", "OK", "NO"),
    ("mailbox-manage", 20, BOTH): Allowed(
        "RFC 3501 section 6.3.9: LSUB lists subscribed names that do not exist, as "
        "\\Noselect (follows from the SUBSCRIBE before)", '* LSUB (\\Noselect) "/" Ghost'),
    ("mailbox-rename-inbox", 1, MAILDIR): Allowed(_RENAME_INBOX, "OK", "NO [CANNOT]"),
    ("mailbox-rename-inbox", 2, MAILDIR): Allowed(_RENAME_INBOX, "* STATUS Saved (MESSAGES 3)"),
    ("mailbox-rename-inbox", 3, MAILDIR): Allowed(_RENAME_INBOX, "(MESSAGES 0)", "(MESSAGES 3)"),
    ("mailbox-rename-inbox", 4, BOTH): Allowed(_RENAME_INBOX, "* 3 EXPUNGE"),
    ("append-two-sessions", 10, BOTH): Allowed(_RECENT_FLAG, "OK [APPENDUID"),
    ("store-flags", 11, BOTH): Allowed(_RECENT_FLAG, "* 1 FETCH (FLAGS (\\Flagged))"),
    ("fetch-structure", 3, BOTH): Allowed(
        "RFC 5322 section 3.6.4: the CFWS around a msg-id is not part of it; Dovecot keeps "
        "the white space of a folded Message-ID field (corpus text-calendar.eml)",
        '"<YT3PR01MB10572', '" <YT3PR01MB10572'),
    ("fetch-structure", 4, BOTH): Allowed(
        "RFC 2045 section 5.1: the order of parameters is not significant; for a text part "
        "without charset we put the default charset=us-ascii first, Dovecot last",
        '("charset" "us-ascii" "x-unix-mode" "0666" "name" "test.rb")',
        '("x-unix-mode" "0666" "name" "test.rb" "charset" "us-ascii")'),
    ("fetch-structure", 5, BOTH): Allowed(
        "RFC 2045 section 5.1: the order of parameters is not significant (as BODYSTRUCTURE)",
        '("charset" "us-ascii" "x-unix-mode" "0666" "name" "test.rb")',
        '("x-unix-mode" "0666" "name" "test.rb" "charset" "us-ascii")'),
    ("fetch-sections", 19, BOTH): Allowed(
        "RFC 3501 section 6.4.5 does not define a section past the last part; NIL (ours) "
        "and the empty string (Dovecot) both say there is nothing", "(BODY[9] NIL)",
        '(BODY[9] "")'),
    ("fetch-sections", 21, BOTH): Allowed(
        "RFC 3501 section 6.4.5 numbers the parts of multiparts and message/rfc822 only; "
        "part 3 is an application/octet-stream leaf, so 3.1 does not exist for us (NIL), "
        "Dovecot takes it as the leaf itself", "(BODY[3.1] NIL)"),
    ("search-keys", 41, BOTH): Allowed(
        "RFC 3501 section 7.1: BADCHARSET is optionally followed by the supported charsets; "
        "we list them, Dovecot does not", "NO [BADCHARSET (US-ASCII UTF-8"),
    ("search-keys", 24, BOTH): Allowed(
        "A Date field that does not parse (corpus text-calendar.eml: \"Thu Jan 01 00:00:10 "
        "+0000\", no year): RFC 3501 section 6.4.4 gives no rule; we use INTERNALDATE as "
        "RFC 5256 section 2.2 does for SORT, Dovecot uses the epoch", "* SEARCH 1 2 6 7 9",
        "* SEARCH 1 2 6 7 8 9"),
    ("list-tree", 9, MBOX): Allowed(
        "RFC 3501 section 7.2.2: \\Marked/\\UnMarked are optional; Dovecot sends them for "
        "mbox, we do not; and " + _CHILD_INFO,
        "(\\HasNoChildren \\NoInferiors \\Subscribed)", "(\\HasNoChildren \\NoInferiors \\Subscribed \\UnMarked)"),
    ("list-tree", 11, MBOX): Allowed(_CHILD_INFO, '* LIST (\\HasChildren \\Noselect) "/" Projects'),
    ("mailbox-manage", 7, MBOX): Allowed(
        "RFC 3501 section 6.3.5: renaming to a name that exists is an error, and INBOX always "
        "exists (section 5.1); Dovecot renames onto an mbox INBOX whose file is not there yet",
        "NO [ALREADYEXISTS]", "OK"),
    ("mailbox-manage", 8, MBOX): Allowed(
        "Follows from step 7 (Old still exists with us, not with Dovecot) and RFC 3501 section "
        "6.3.6 (a server MAY refuse to SUBSCRIBE a missing mailbox)", "OK", "NO"),
    ("mailbox-manage", 12, MBOX): Allowed(
        "Follows from step 7 (RFC 3501 section 6.3.5): Old still exists with us", "OK",
        "NO [NONEXISTENT]"),
    ("rules-6-search-from-comment", 1, BOTH): Allowed(
        "RFC 3501 section 6.4.4: FROM matches messages whose From field contains the string; "
        "\"carol@example.com (Carol Commenter)\" is the field as written, which Dovecot's "
        "address-wise matching does not find", "* SEARCH 5", "* SEARCH"),
    ("rules-6-search-from-comment", 5, BOTH): Allowed(
        "RFC 3501 section 6.4.4, as step 1: the From field is \"Alice Example "
        "<alice@example.org>\" verbatim", "* SEARCH 1", "* SEARCH"),
    ("rules-6-search-from-comment", 4, BOTH): Allowed(
        "Issue 13 rule 6 (RFC 3501 section 6.4.4): an address matches in each of its forms, "
        "\"Name <addr>\" included, whatever form the From field was written in; Dovecot "
        "matches the form as written only", "* SEARCH 5", "* SEARCH"),
    ("rules-7-lsub-percent", 4, MAILDIR): Allowed(
        _SUPERIOR + "; " + _CHILD_INFO + "; " + _CHILDINFO_TAG,
        '(\\HasChildren) "/" top ("CHILDINFO"', '(\\NonExistent \\Noselect) "/" top (CHILDINFO'),
    ("rules-7-lsub-percent", 4, MBOX): Allowed(
        _CHILD_INFO + "; " + _CHILDINFO_TAG,
        '(\\HasChildren \\Noselect) "/" top ("CHILDINFO"', '(\\Noselect) "/" top (CHILDINFO'),
    ("rules-9-fetch-after-foreign-expunge", 4, BOTH): Allowed(
        _LAST_KNOWN, "", " FLAGS (\\Deleted)"),
    ("rules-9-fetch-after-foreign-expunge", 5, BOTH): Allowed(
        _LAST_KNOWN, "* 2 FETCH (FLAGS ())", "* 2 FETCH (FLAGS (\\Deleted))"),
    ("rules-3-recent", 13, BOTH): Allowed(
        "RFC 3501 section 7.3.2: RECENT is sent when the size of the mailbox changes, with "
        "the session's count (here unchanged, 1); Dovecot leaves it out when the count did "
        "not change", "* 1 RECENT"),
    ("copy-move", 11, BOTH): Allowed(_RECENT_WITH_EXISTS, "* 5 RECENT"),
    ("copy-move", 13, BOTH): Allowed(_RECENT_WITH_EXISTS, "", "* 5 RECENT"),
    ("store-keywords", 9, BOTH): Allowed(
        "RFC 3501 section 6.4.6: after STORE FLAGS.SILENT the flags of message 3 are what "
        "this session set, so its state is determinate without the FETCH the note asks for "
        "after changes by others; Dovecot sends it anyway", "", "* 3 FETCH (FLAGS ($Work))"),
    ("condstore-basics", 5, BOTH): Allowed(
        "RFC 3501 section 7.4.2: an unsolicited FETCH may carry more items; we add UID to "
        "flag updates once CONDSTORE is on (RFC 7162 section 3.2.4 requires it with QRESYNC)",
        "MODSEQ (<modseq>) UID 2)", "MODSEQ (<modseq>))"),
    ("qresync-basics", 5, BOTH): Allowed(
        "RFC 3501 section 6.4.6: STORE +FLAGS returns the new flags \"as if a FETCH of those "
        "flags was done\"; Dovecot leaves the FETCH out when the flag was already set",
        "* 2 FETCH (FLAGS ($Work \\Flagged))"),
    ("enable-namespace-id", 1, BOTH): Allowed(
        "RFC 5161 section 3.2: ENABLED lists the capabilities this command enabled; CONDSTORE "
        "was enabled by the command before, so we list none, Dovecot lists it again",
        "* ENABLED", "* ENABLED CONDSTORE"),
    ("search-keys", 26, BOTH): Allowed(
        "The unparsable Date of message 8, as SENTBEFORE above (RFC 5256 section 2.2)",
        "* SEARCH 4 5 8",
        "* SEARCH 4 5"),
}
