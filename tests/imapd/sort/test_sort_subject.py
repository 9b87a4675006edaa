"""
Base-subject extraction, RFC 5256 section 2.1, as a table: the RFC's
rules one by one, then subjects taken from /work/shared/corpus.
"""

import os

import pytest
from pathlib import Path

from imapd.charset import decode_words
from imapd.message import Message
from imapd.sort.subject import base_subject

CORPUS = str(next(p / "shared" for p in Path(__file__).resolve().parents if (p / "shared" / "corpus").is_dir()) / "corpus")


@pytest.mark.parametrize("subject, base, reply", [
    ("", "", False),
    ("Hello", "Hello", False),
    # (1) whitespace runs and tabs become one space.
    ("  Hello \t  world  ", "Hello world", False),
    # (2) trailers: "(fwd)" and WSP, repeatedly.
    ("Hello (fwd)", "Hello", True),
    ("Hello (FWD) (fwd)  ", "Hello", True),
    ("Hello(fwd)", "Hello", True),
    # (3) subj-leader: re, fw, fwd with optional blob, any case.
    ("Re: Hello", "Hello", True),
    ("RE: Hello", "Hello", True),
    ("re:Hello", "Hello", True),
    ("Fw: Hello", "Hello", True),
    ("FWD: Hello", "Hello", True),
    ("Re : Hello", "Hello", True),
    ("Re[2]: Hello", "Hello", True),
    ("Re [2]: Hello", "Hello", True),
    ("Re: Re: Fwd: Re: Hello", "Hello", True),
    ("[list] Re: Hello", "Hello", True),
    ("[list] [other] Re: Hello", "Hello", True),
    # Words that start like a leader are not leaders.
    ("Reply needed", "Reply needed", False),
    ("Fwding: x", "Fwding: x", False),
    ("Re Hello", "Re Hello", False),
    # (4) a leading blob goes only if something remains.
    ("[list] Hello", "Hello", False),
    ("[list]", "[list]", False),
    ("[a] [b]", "[b]", False),
    ("[list] Re: [list] Re: Hello", "Hello", True),
    # (6) [fwd: ...] wrappers, then again from (2).
    ("[Fwd: Hello]", "Hello", True),
    ("[fwd: Re: Hello (fwd)]", "Hello", True),
    ("[Fwd: [Fwd: Hello]]", "Hello", True),
    ("Re: [Fwd: Hello]", "Hello", True),
    # Not a wrapper: no closing bracket at the end.
    ("[fwd: Hello] there", "there", False),
    # Non-ASCII text and tags survive.
    ("Re: [Список] Привет", "Привет", True),
    ("Re: Ünïcödé", "Ünïcödé", True),
])
def test_base_subject_rules(subject, base, reply):
    """Each RFC 5256 section 2.1 step removes what it should and no more."""
    assert base_subject(subject) == (base, reply)


@pytest.mark.parametrize("raw, base", [
    # Real subjects from the corpus (spamassassin, usrp-users, lkml).
    (b"Re: [ILUG] Newbie seeks advice - Suse 7.2", "Newbie seeks advice - Suse 7.2"),
    (b"[SAtalk] Re: SpamAssassin 2.40 released", "SpamAssassin 2.40 released"),
    (b"Re: [Razor-users] Re: What's wrong with the Razor servers now?",
     "What's wrong with the Razor servers now?"),
    (b"[USRP-users] Re: B210 timing", "B210 timing"),
    # Step (4) drops the leading blob too, as for list tags.
    (b"Re: [PATCH 1/2] erofs: fix something", "erofs: fix something"),
    (b"[PATCH v2] erofs: fix", "erofs: fix"),
    (b"=?iso-8859-1?q?Re=3A_caf=E9?=", "café"),
    (b"=?koi8-r?b?8NLJ18XU?=", "Привет"),
    (b"Re: =?utf-8?q?Fwd=3A?= [fwd: x]", "x"),
])
def test_base_subject_real(raw, base):
    """Subjects as found in real mail, after decoding encoded words (step 1)."""
    assert base_subject(decode_words(raw))[0] == base


def _corpus_files(limit=3000):
    out = []
    for root, _dirs, files in os.walk(CORPUS):
        for name in sorted(files):
            if root.endswith("/cur"):
                out.append(os.path.join(root, name))
    return out[:limit]


def test_base_subject_corpus_is_stable():
    """Over the corpus, extraction never raises and is idempotent on non-replies."""
    for path in _corpus_files():
        with open(path, "rb") as f:
            values = Message(f.read()).decoded_header("subject")
        subject = values[0] if values else ""
        base, _ = base_subject(subject)
        again, reply = base_subject(base)
        # A base subject has no leader or trailer left to remove.
        assert again == base and not reply, (path, subject, base)


def _regex_base_subject(subject: str) -> tuple[str, bool]:
    """
    The RFC 5256 section 2.1 steps as the ABNF reads, with regular
    expressions and a copy per step (the implementation before issue 18):
    the oracle the linear scanner must agree with.
    """
    import re

    blob = r"\[[^\[\]]*\] *"
    leader = re.compile(r"(?:%s)*(?:re|fwd?) *(?:%s)?:" % (blob, blob), re.IGNORECASE)
    blob_re = re.compile(blob)
    s = re.sub(r"[ \t\r\n]+", " ", subject)
    reply = False
    while True:
        while True:
            if s.endswith(" "):
                s = s.rstrip(" ")
            elif s[-5:].lower() == "(fwd)":
                s, reply = s[:-5], True
            else:
                break
        while True:
            before = s
            while True:
                if s.startswith(" "):
                    s = s.lstrip(" ")
                    continue
                m = leader.match(s)
                if m is None:
                    break
                s, reply = s[m.end():], True
            m = blob_re.match(s)
            if m is not None and s[m.end():].strip(" "):
                s = s[m.end():]
            if s == before:
                break
        if s[:5].lower() == "[fwd:" and s.endswith("]"):
            s, reply = s[5:-1], True
            continue
        return s, reply


from hypothesis import given, settings, strategies as st  # noqa: E402


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.sampled_from([
    "re", "Re", "RE", "fw", "FW", "fwd", "Fwd", "d", ":", " ", "  ", "\t", "[", "]", "x", "ü",
    "(fwd)", "(FWD)", "[fwd:", "[a]", "[2]", "e", "r", "f", "w",
]), max_size=30))
def test_scanner_agrees_with_the_abnf(pieces):
    """
    The hand-written scanner gives what the ABNF's regular expressions
    give, for subjects made of every token the steps care about.
    """
    subject = "".join(pieces)
    assert base_subject(subject) == _regex_base_subject(subject), subject


@pytest.mark.parametrize("subject", [
    "[x]" * 20000 + "y",                      # step (4) removes blob after blob
    "[x] " * 20000 + "re y",                  # a chain that ends in no subj-refwd
    "[fwd: " * 5000 + "x" + "]" * 5000,       # nested step (6) wrappers
    "y" + "(fwd)" * 20000,                    # step (2) trailers
    "re:" * 20000 + "y",                      # step (3) leaders
    "[" + "[x]" * 20000,                      # an unclosed bracket before a chain
    "[a]" * 10000 + "[" + "x" * 60000,        # a chain, then a blob never closed
])
def test_work_is_linear_in_the_subject(monkeypatch, subject):
    """
    Issue 18, timing-free: on subjects crafted against each step, the
    scanner looks at each position a bounded number of times: it tries a
    blob at each position at most three times (a chain step (3) failed on
    is not scanned again when step (4) removes its blobs), its searches
    for brackets cover at most a few times the subject's length in all,
    and it reaches the same answer as the ABNF's expressions (which,
    around a linear match, were quadratic: each blob removed re-ran the
    match on the whole rest).
    """
    import collections

    from imapd.sort import subject as module

    tries = collections.Counter()
    real = module._blob_end
    scanned = [0]
    bracket = module._BRACKET

    class CountedBracket:
        @staticmethod
        def search(s, pos, endpos):
            m = bracket.search(s, pos, endpos)
            scanned[0] += (m.end() if m else endpos) - pos
            return m

    def counted(s, i, j):
        tries[i] += 1
        return real(s, i, j)

    monkeypatch.setattr(module, "_blob_end", counted)
    monkeypatch.setattr(module, "_BRACKET", CountedBracket)
    got = base_subject(subject)
    assert max(tries.values(), default=0) <= 3, tries.most_common(3)
    assert scanned[0] <= 3 * len(subject), scanned[0]
    if len(subject) < 40000:
        assert got == _regex_base_subject(subject)
