# -*- test-case-name: tests.imapd.sort.test_sort_subject -*-
"""
Base-subject extraction, RFC 5256 section 2.1.

SORT SUBJECT orders, and THREAD groups, by the "base subject": the subject
with reply/forward markers, list tags and trailers removed.  The steps
below are the RFC's, numbered as there; the input is the Subject with its
RFC 2047 encoded words already decoded (step 1's first half, done by the
caller with L{imapd.charset.decode_words}).

One liberty: the ABNF's BLOBCHAR is ASCII only, but after decoding, list
tags such as C{[Список]} hold other characters too; we accept anything but
brackets inside a blob, as Dovecot's C{imap-base-subject.c} does.
"""

from __future__ import annotations

import re

__all__ = ["base_subject"]

# Step 1: tabs and continuations become a space, runs of spaces one space.
_WSP_RUN = re.compile(r"[ \t\r\n]+")

# subj-blob    = "[" *BLOBCHAR "]" *WSP
# subj-refwd   = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":"
# subj-leader  = (*subj-blob subj-refwd) / WSP
_BLOB = r"\[[^\[\]]*\] *"
_REFWD_LEADER = re.compile(r"(?:%s)*(?:re|fwd?) *(?:%s)?:" % (_BLOB, _BLOB),
                           re.IGNORECASE)
_BLOB_RE = re.compile(_BLOB)
# subj-trailer = "(fwd)" / WSP
_FWD_TRAILER = "(fwd)"
# subj-fwd-hdr = "[fwd:" ; subj-fwd-trl = "]"
_FWD_HDR = "[fwd:"


def base_subject(subject: str) -> tuple[str, bool]:
    """
    Extract the base subject.

    @param subject: the decoded Subject value (C{""} when there is none).
    @return: C{(base, is_reply_or_forward)}.  The flag says whether a
        C{subj-refwd}, a C{(fwd)} trailer or a C{[fwd: ...]} wrapper was
        removed, which REFERENCES threading needs (RFC 5256 section 2.1,
        last paragraph, and section 4 step 5).
    """
    s = _WSP_RUN.sub(" ", subject)
    reply = False
    while True:
        # (2) Remove all trailing "(fwd)" and WSP, repeatedly.
        while True:
            if s.endswith(" "):
                s = s.rstrip(" ")
            elif s[-5:].lower() == _FWD_TRAILER:
                s = s[:-5]
                reply = True
            else:
                break
        # (5) Repeat (3) and (4) until no matches remain.
        while True:
            before = s
            # (3) Remove all prefix text matching subj-leader.
            while True:
                if s.startswith(" "):
                    s = s.lstrip(" ")
                    continue
                m = _REFWD_LEADER.match(s)
                if m is None:
                    break
                s = s[m.end():]
                reply = True
            # (4) Remove a leading subj-blob if a non-empty subj-base
            # remains after it.
            m = _BLOB_RE.match(s)
            if m is not None and s[m.end():].strip(" "):
                s = s[m.end():]
            if s == before:
                break
        # (6) "[fwd: ...]": unwrap and start again from step (2).
        if s[:5].lower() == _FWD_HDR and s.endswith("]"):
            s = s[5:-1]
            reply = True
            continue
        # (7) What is left is the base subject.
        return s, reply
