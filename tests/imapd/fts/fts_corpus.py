"""
The mail and the SEARCH programs of the full-text differential tests
(C{test_fts_differential}, C{test_fts_dovecot}).

L{messages} takes a fixed sample of C{../shared/corpus}: spam in many
charsets and broken MIME, HTML ham, the mail gem's charset and MIME
fixtures, notmuch's mail, and the CJK and quoted-printable mail of the two
list archives (mboxrd).  L{programs} gives more than 200 SEARCH programs
over it: ASCII words under TEXT, BODY, SUBJECT and FROM; non-ASCII words
found in the sample's own decoded text, sent in UTF-8 and in their own
charsets, in upper case too; words that the sample's quoted-printable
parts split with a soft line break; 1- and 2-character strings; and NOT,
OR and AND combinations with each other and with flag, UID and size keys.
Each program is C{(charset or None, [token, ...])}, a token being C{str}
(an atom, sent as it is) or C{bytes} (a string, sent as a literal).
"""

from __future__ import annotations

import re
from pathlib import Path

CORPUS = next(p / "shared" / "corpus" for p in Path(__file__).resolve().parents
              if (p / "shared" / "corpus").is_dir())

#: (source, how many); a Maildir's files in name order, an mbox's messages in order.
SOURCES = [
    ("spamassassin/spam/cur", 45), ("spamassassin/spam_2/cur", 30),
    ("spamassassin/hard_ham/cur", 30), ("spamassassin/easy_ham/cur", 20),
    ("mail-gem/multi_charset/cur", 20), ("mail-gem/mime_emails/cur", 20),
    ("mail-gem/plain_emails/cur", 15), ("mail-gem/attachment_emails/cur", 10),
    ("notmuch/default/cur", 10), ("notmuch/html/cur", 5),
    ("linux-erofs/linux-erofs.mbox", 30), ("usrp-users/usrp-users.mbox", 25),
]

#: Messages larger than this are left out: the tests read every message
#: many times.
MAX_SIZE = 150_000


def _crlf(data: bytes) -> bytes:
    # IMAP messages have CRLF line ends (RFC 3501 section 2.2.2).
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def _mbox(path: Path):
    # mboxrd: a "From " line starts each message; ">From " lines lose one ">".
    current = None
    for line in path.read_bytes().split(b"\n"):
        if line.startswith(b"From "):
            if current is not None:
                yield b"\n".join(current)
            current = []
            continue
        if current is None:
            continue
        if re.match(rb">+From ", line):
            line = line[1:]
        current.append(line)
    if current is not None:
        yield b"\n".join(current)


def messages() -> list[bytes]:
    """The sample, in a fixed order."""
    out = []
    for source, count in SOURCES:
        path = CORPUS / source
        if path.is_dir():
            found = (p.read_bytes() for p in sorted(path.iterdir()))
        else:
            found = _mbox(path)
        taken = 0
        for data in found:
            if data.startswith(b"From "):
                data = data.split(b"\n", 1)[1]
            data = _crlf(data.rstrip(b"\n") + b"\n")
            if len(data) > MAX_SIZE:
                continue
            out.append(data)
            taken += 1
            if taken == count:
                break
    return out


#: ASCII needles: common and rare words, mixed case, punctuation, strings
#: that only a header has, HTML markup, a word nowhere.
WORDS = [
    "the", "THE", "and", "http", "linux", "EROFS", "free", "Money", "click here",
    "unsubscribe", "patch", "signed-off-by", "usrp", "ettus", "html", "<br>", "&nbsp;",
    "font", "dear", "mortgage", "content-type", "boundary", "charset", "utf-8",
    "iso-8859-1", "base64", "received", "subject: re", "from:", "message-id", "razor",
    "spamassassin", "zzzxqj", "LiNuX", "e-mail", "www.", ".com", "2002", "cheers",
    "attachment", "filename", "jpg", "thanks", "Gao Xiang", "kernel", "=20", "\"",
]

#: 1- and 2-character needles: the index cannot answer them (trigrams).
SHORT = ["a", "Z", "\u00e9", "\u044f", "\u4e2d", "ab", "qu", "TH", "\u4e2d\u6587", "..", "  ",
         "\u00fc\u00df"]

#: Charsets a non-ASCII needle is also sent in, if it can be written in one.
CHARSETS = ["ISO-8859-1", "KOI8-R", "WINDOWS-1251", "GB2312", "SHIFT_JIS", "EUC-KR",
            "ISO-2022-JP", "BIG5"]


def _decoded_texts(data: bytes) -> list[str]:
    from imapd.message import Message
    from imapd.search.match import header_text

    m = Message(data)
    return [*header_text(m), *m.decoded_text()]


def _non_ascii_words(sample: list[bytes], limit: int = 24) -> list[str]:
    # Runs of 3 to 5 non-ASCII letters from the sample's decoded text:
    # words that are really there, in whatever script the mail uses.
    words: dict[str, None] = {}
    for data in sample:
        for text in _decoded_texts(data):
            for m in re.finditer(r"[^\x00-\x7f\W\d_]{3,}", text):
                word = m.group(0)[:5]
                if word not in words and "\ufffd" not in word:
                    words[word] = None
                    break
        if len(words) >= limit:
            break
    return list(words)


_SOFT = re.compile(rb"([A-Za-z]{3,})=\r\n([A-Za-z]{3,})")


def _qp_split_words(sample: list[bytes], limit: int = 12) -> list[str]:
    # Words a quoted-printable soft line break (RFC 2045 section 6.7 rule
    # 5) cuts in two on the wire: found only if the decoding joins them.
    words: dict[str, None] = {}
    for data in sample:
        if b"quoted-printable" not in data.lower():
            continue
        for m in _SOFT.finditer(data):
            word = (m.group(1)[-4:] + m.group(2)[:4]).decode()
            words.setdefault(word, None)
            break
        if len(words) >= limit:
            break
    return list(words)


def _s(text: str, charset: str = "utf-8") -> bytes:
    return text.encode(charset)


def programs(sample: list[bytes]) -> list[tuple[str | None, list]]:
    """The SEARCH programs (see the module docstring)."""
    out: list[tuple[str | None, list]] = []
    for word in WORDS:
        for key in ("TEXT", "BODY", "SUBJECT", "FROM"):
            out.append((None, [key, _s(word)]))
    foreign = _non_ascii_words(sample)
    for word in foreign:
        out.append(("UTF-8", ["TEXT", _s(word)]))
        out.append(("UTF-8", ["BODY", _s(word.upper())]))
        for charset in CHARSETS:
            try:
                encoded = word.encode(charset)
            except UnicodeEncodeError:
                continue
            out.append((charset, ["TEXT", encoded]))
            break
    for word in _qp_split_words(sample):
        out.append((None, ["BODY", _s(word)]))
        out.append((None, ["TEXT", _s(word.lower())]))
    for word in SHORT:
        out.append(("UTF-8", ["TEXT", _s(word)]))
        out.append(("UTF-8", ["BODY", _s(word)]))
    pairs = [("the", "linux"), ("free", "money"), ("patch", "erofs"), ("html", "font"),
             ("http", "zzzxqj"), ("thanks", "a")]
    if foreign:
        pairs.append((foreign[0], "the"))
    for a, b in pairs:
        out.append(("UTF-8", ["NOT", "TEXT", _s(a)]))
        out.append(("UTF-8", ["OR", "BODY", _s(a), "SUBJECT", _s(b)]))
        out.append(("UTF-8", ["OR", "TEXT", _s(a), "NOT", "BODY", _s(b)]))
        out.append(("UTF-8", ["TEXT", _s(a), "NOT", "FROM", _s(b)]))
        out.append(("UTF-8", ["BODY", _s(a), "BODY", _s(b)]))
        out.append(("UTF-8", ["NOT", "OR", "TEXT", _s(a), "TEXT", _s(b)]))
        out.append(("UTF-8", ["FLAGGED", "TEXT", _s(a)]))
        out.append(("UTF-8", ["OR", "UNFLAGGED", "NOT", "BODY", _s(b)]))
        out.append(("UTF-8", ["UID", "1:60", "BODY", _s(a)]))
        out.append(("UTF-8", ["LARGER", "5000", "TEXT", _s(b)]))
    return out


def command(tag: str, program: tuple[str | None, list]) -> bytes:
    """C{tag UID SEARCH [CHARSET c] ...} with every string as a LITERAL+ literal."""
    charset, tokens = program
    parts = [f"{tag} UID SEARCH".encode()]
    if charset:
        parts.append(b"CHARSET " + charset.encode())
    for t in tokens:
        parts.append(t.encode() if isinstance(t, str) else b"{%d+}\r\n" % len(t) + t)
    return b" ".join(parts) + b"\r\n"


def load(conv, sample: list[bytes], flag: bool = True) -> None:
    """
    APPEND C{sample} to INBOX of the conversation C{conv} (so message n
    has UID n), SELECT it and, with C{flag}, set \\Flagged on every fifth
    message (UIDs 1, 6, 11, ...), as the Dovecot comparison does too.
    """
    for i, data in enumerate(sample):
        conv.send(f"a{i} APPEND INBOX {{{len(data)}+}}\r\n".encode() + data + b"\r\n")
        assert conv.lines()[-1].startswith(f"a{i} OK")
    conv.ok("s1 SELECT INBOX")
    if flag:
        conv.ok(f"s2 UID STORE {flagged(sample)} +FLAGS.SILENT (\\Flagged)")


def flagged(sample: list[bytes]) -> str:
    """The UIDs L{load} flags, as a sequence set."""
    return ",".join(str(uid) for uid in range(1, len(sample) + 1, 5))


def describe(program) -> str:
    charset, tokens = program
    words = [t if isinstance(t, str) else repr(t) for t in tokens]
    return (f"CHARSET {charset} " if charset else "") + " ".join(words)


def hits(lines: list[str]) -> list[int]:
    """The numbers of the C{* SEARCH} line among C{lines}."""
    for line in lines:
        if line.startswith("* SEARCH"):
            return [int(n) for n in line.split()[2:]]
    raise AssertionError(f"no SEARCH response in {lines!r}")
