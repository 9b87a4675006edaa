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
