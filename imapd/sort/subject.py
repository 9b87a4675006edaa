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
# subj-trailer = "(fwd)" / WSP
# subj-fwd-hdr = "[fwd:" ; subj-fwd-trl = "]"
#
# The steps scan the subject by hand, with indexes, never a regular
# expression or a copy per step: the Subject is message text of any
# length.  The pattern once used for subj-leader,
# (?:\[[^\[\]]*\] *)*(?:re|fwd?) *(?:\[[^\[\]]*\] *)?:, has a nested
# star but cannot backtrack catastrophically (a blob ends at its first
# "]" and cannot hold "[", so a string splits into blobs one way only;
# a failed match costs its length once).  What was quadratic was the
# loop around it (issue 18): each blob step (4) removed made step (3)
# match the rest of a blob chain again, and each step copied the rest of
# the subject.  Here every position is looked at a bounded number of
# times: a chain step (3) failed on is not scanned again (see
# L{base_subject}), and the subject is sliced once, at the end.


_BRACKET = re.compile(r"[\[\]]")


def _blob_end(s: str, i: int, j: int) -> int:
    """
    The end of the subj-blob at C{s[i]} (after its trailing spaces), or
    C{-1}; BLOBCHAR is anything but brackets (module docstring).
    """
    if i >= j or s[i] != "[":
        return -1
    # The next bracket, whichever: looking for "]" alone would scan past
    # a "[" to a far "]" at every try (nested "[fwd: [fwd: ...]]").
    m = _BRACKET.search(s, i + 1, j)
    if m is None or m.group() != "]":
        return -1
    k = m.end()
    while k < j and s[k] == " ":
        k += 1
    return k


def _refwd_end(s: str, k: int, j: int) -> int:
    """The end of the subj-refwd at C{s[k]}, or C{-1} (any case)."""
    word = s[k:k + 2]
    if word in ("re", "Re", "rE", "RE"):
        k += 2
    elif word in ("fw", "Fw", "fW", "FW"):
        k += 3 if s[k + 2:k + 3] in ("d", "D") and k + 2 < j else 2
    else:
        return -1
    if k > j:
        return -1
    while k < j and s[k] == " ":
        k += 1
    blob = _blob_end(s, k, j)
    if blob >= 0 and blob < j and s[blob] == ":":
        return blob + 1
    return k + 1 if k < j and s[k] == ":" else -1


def _chain_end(s: str, i: int, j: int) -> int:
    """The end of the longest run of subj-blobs from C{s[i]}."""
    while (k := _blob_end(s, i, j)) >= 0:
        i = k
    return i


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
    i, j = 0, len(s)  # the subject left is s[i:j]
    reply = False
    while True:
        # (2) Remove all trailing "(fwd)" and WSP, repeatedly.
        while j > i:
            if s[j - 1] == " ":
                j -= 1
            elif j - i >= 5 and s[j - 5:j].lower() == "(fwd)":
                j -= 5
                reply = True
            else:
                break
        # (5) Repeat (3) and (4) until no matches remain.  A subj-leader
        # is a run of blobs then a subj-refwd, which can only start where
        # the longest run ends; so once (3) failed at a run ending at
        # "failed", it fails from every blob of that run (4) reaches.
        failed = -1
        while True:
            before = i
            # (3) Remove all prefix text matching subj-leader.
            while i < j:
                if s[i] == " ":
                    i += 1
                    continue
                if i <= failed:
                    break
                chain = _chain_end(s, i, j)
                end = _refwd_end(s, chain, j)
                if end < 0:
                    failed = chain
                    break
                i = end
                reply = True
            # (4) Remove a leading subj-blob if a non-empty subj-base
            # remains after it (the subject ends in no space, step 2).
            k = _blob_end(s, i, j)
            if 0 <= k < j:
                i = k
            if i == before:
                break
        # (6) "[fwd: ...]": unwrap and start again from step (2).
        if j - i >= 6 and s[i:i + 5].lower() == "[fwd:" and s[j - 1] == "]":
            i, j = i + 5, j - 1
            reply = True
            continue
        # (7) What is left is the base subject.
        return s[i:j], reply
