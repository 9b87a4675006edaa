"""
FETCH of messages another session expunged (RFC 2180 section 4.1,
RFC 5530 section 3): the messages still there are answered in full, the
gone ones with what is left (NIL data, an all-NIL ENVELOPE, BINARY.SIZE
0, the flags and UID this session knows), and the command completes with
C{OK [EXPUNGEISSUED]}, not NO; the EXPUNGE follows at the next command
that allows it.  Dovecot 2.3 answers these commands the same way (checked
by hand against a private instance; it shows INTERNALDATE and RFC822.SIZE
it never read as the epoch and 0, as we do).  On each store.
"""

import re


def _setup(authed, new_conv):
    for i in range(1, 4):
        authed.append(f"a{i}", b"Subject: m%d\r\n\r\nbody %d\r\n" % (i, i))
    authed.ok("s1 SELECT INBOX")
    other = new_conv()
    other.login()
    other.ok("o1 SELECT INBOX")
    other.ok("o2 STORE 2 +FLAGS.SILENT (\\Deleted)")
    other.ok("o3 EXPUNGE")


def test_fetch_answers_what_exists_and_completes_ok(authed, new_conv):
    """BODY[] of 1:3 after 2 was expunged elsewhere: 1 and 3 in full, 2 as NIL, OK [EXPUNGEISSUED]."""
    _setup(authed, new_conv)
    authed.script(
        """
        C: f1 FETCH 1:3 (UID BODY.PEEK[])
        S: * 1 FETCH (UID 1 BODY[] {23}
        S: Subject: m1
        S: body 1
        S: )
        S: * 2 FETCH (UID 2 BODY[] NIL)
        S: * 3 FETCH (UID 3 BODY[] {23}
        S: Subject: m3
        S: body 3
        S: )
        S: f1 OK [EXPUNGEISSUED] Some messages were already expunged
        C: f2 FETCH 2 (FLAGS ENVELOPE RFC822.HEADER BINARY.SIZE[1] BINARY.PEEK[1] BODY.PEEK[HEADER.FIELDS (SUBJECT)])
        S: * 2 FETCH (FLAGS ({{\\\\Recent}}) ENVELOPE (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) RFC822.HEADER NIL BINARY.SIZE[1] 0 BINARY[1] NIL BODY[HEADER.FIELDS (SUBJECT)] NIL)
        S: f2 OK [EXPUNGEISSUED] Some messages were already expunged
        C: n1 NOOP
        S: * 2 EXPUNGE
        S: n1 OK NOOP completed
        C: f3 FETCH 1:2 (BODY.PEEK[TEXT])
        S: * 1 FETCH (BODY[TEXT] {8}
        S: body 1
        S: )
        S: * 2 FETCH (BODY[TEXT] {8}
        S: body 3
        S: )
        S: f3 OK FETCH completed
        """
    )


def test_record_items_of_an_expunged_message(authed, new_conv):
    """UID, FLAGS, RFC822.SIZE and INTERNALDATE need no content: answered, and the date is a valid date-time."""
    _setup(authed, new_conv)
    lines = authed.transact("f1 FETCH 2 (UID FLAGS RFC822.SIZE INTERNALDATE)")
    assert lines[-1].startswith("f1 OK"), lines
    m = re.fullmatch(r'\* 2 FETCH \(UID 2 FLAGS \(\\Recent\) RFC822\.SIZE (\d+) '
                     r'INTERNALDATE "[ \d]\d-\w{3}-\d{4} \d\d:\d\d:\d\d [+-]\d{4}"\)', lines[0])
    assert m and int(m.group(1)) in (0, 23), lines


def test_seen_is_not_lost_on_the_others(authed, new_conv):
    """FETCH BODY[] (not PEEK) over a gone message still marks the others \\Seen and completes OK."""
    _setup(authed, new_conv)
    lines = authed.transact("f1 FETCH 1:3 (BODY[TEXT])")
    assert lines[-1] == "f1 OK [EXPUNGEISSUED] Some messages were already expunged", lines
    authed.ok("n1 NOOP")
    flags = authed.ok("f2 FETCH 1:2 (FLAGS)")
    assert flags[:2] == ["* 1 FETCH (FLAGS (\\Seen \\Recent))", "* 2 FETCH (FLAGS (\\Seen \\Recent))"], flags
