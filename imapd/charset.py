# -*- test-case-name: tests.imapd.message.test_message_charset -*-
"""
One charset layer over Python's codecs, the counterpart of Dovecot's iconv
wrapper (C{lib/charset-iconv.c}).

Mail names its charsets with labels Python does not always know
(C{ks_c_5601-1987}, C{chinesebig5}) or with labels that mean nothing at all
(C{default}, C{x-unknown}, C{unknown-8bit}).  Everything here maps such
labels onto a real codec, or onto C{None} when the label carries no
information, and every decoding function degrades instead of raising: a
SEARCH over a broken message must still find the words that survive.
"""

from __future__ import annotations

import binascii
import codecs
import re
from urllib.parse import unquote_to_bytes

__all__ = ["lookup", "decode", "decode_words", "decode_param"]

# Labels that are wrong in the wild or whose Python codec is narrower than
# what senders actually emit.  The targets are supersets, chosen so that a
# message labelled with the narrower charset still decodes (the WHATWG
# Encoding Standard makes the same choices for the CJK legacy charsets).
_ALIASES = {
    "utf8": "utf-8",
    "utf-8": "utf-8",
    "unicode-1-1-utf-7": "utf-7",
    "us-ascii": "ascii",
    "ascii": "ascii",
    "ansi_x3.4-1968": "ascii",
    "iso-8859-1": "latin-1",
    "iso8859-1": "latin-1",
    "latin1": "latin-1",
    "latin-1": "latin-1",
    # GB 2312 is a strict subset of GBK; mislabelled GBK text is common.
    "gb2312": "gbk",
    "gb_2312-80": "gbk",
    "gb2312_charset": "gbk",
    "eucgb2312_cn": "gbk",
    "euc-cn": "gbk",
    "x-gbk": "gbk",
    "csgb2312": "gbk",
    "gbk": "gbk",
    "gb18030": "gb18030",
    # Big5 as Microsoft ships it (code page 950) is what mailers produce.
    "big5": "cp950",
    "chinesebig5": "cp950",
    "x-x-big5": "cp950",
    "big5-hkscs": "big5hkscs",
    # Korean: the Windows superset of EUC-KR, as every Korean MUA sends it.
    "euc-kr": "cp949",
    "ks_c_5601-1987": "cp949",
    "ks_c_5601": "cp949",
    "ksc5601": "cp949",
    "korean": "cp949",
    # Japanese: Shift_JIS from phones and Windows is really CP932, and
    # ISO-2022-JP-2 decodes everything plain ISO-2022-JP does.
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "sjis": "cp932",
    "x-sjis": "cp932",
    "ms_kanji": "cp932",
    "windows-31j": "cp932",
    "iso-2022-jp": "iso2022_jp_2",
    "euc-jp": "euc_jp",
    "x-euc-jp": "euc_jp",
    "koi8-r": "koi8_r",
    "koi8-u": "koi8_u",
}

# Labels that say "I don't know": decoding falls back as for no label.
_UNKNOWN = frozenset(
    ["", "default", "default_charset", "x-unknown", "unknown", "unknown-8bit",
     "x-user-defined", "none", "charset", "us-ascii?"]
)

# Python codecs that are not charsets (bytes-to-bytes transforms, escape
# decoders, the codec that always fails).  A message must not be able to
# pick them by naming them.
_NOT_CHARSETS = frozenset(
    ["undefined", "unicode_escape", "raw_unicode_escape", "idna", "punycode",
     "mbcs", "oem", "string_escape"]
)

_cache: dict[str, str | None] = {}


def lookup(name: str | bytes | None) -> str | None:
    """
    Map a MIME charset label onto a Python codec name.

    @param name: the label as found in a message (any case, possibly
        quoted or padded).
    @return: a codec name usable with C{bytes.decode}, or C{None} when the
        label is unknown or says nothing (C{default}, C{x-unknown}, ...).
    """
    if name is None:
        return None
    if isinstance(name, bytes):
        name = name.decode("latin-1")
    key = name.strip().strip("\"'").strip().lower()
    try:
        return _cache[key]
    except KeyError:
        pass
    result = _lookup(key)
    if len(_cache) < 1000:
        _cache[key] = result
    return result


def _lookup(key: str) -> str | None:
    if key in _UNKNOWN:
        return None
    if key in _ALIASES:
        return _ALIASES[key]
    m = re.fullmatch(r"(?:windows|win|cp|x-cp)-?(125[0-8])", key)
    if m:
        return "cp" + m.group(1)
    m = re.fullmatch(r"iso[-_ ]?8859[-_ ]?(\d{1,2})(?::\d+)?", key)
    if m and m.group(1) in {str(i) for i in range(1, 17)} - {"12"}:
        return "latin-1" if m.group(1) == "1" else "iso8859-" + m.group(1)
    try:
        info = codecs.lookup(key)
    except (LookupError, ValueError):
        return None
    if not getattr(info, "_is_text_encoding", True) or info.name in _NOT_CHARSETS:
        return None
    return info.name


def decode(data: bytes, name: str | bytes | None, fallback: str = "latin-1") -> str:
    """
    Decode bytes from a message, never raising.

    With a known charset, undecodable bytes become U+FFFD.  With an unknown
    label or none (or US-ASCII, which 8-bit bytes prove wrong), the bytes
    are tried as UTF-8 first and then decoded with C{fallback}, as Dovecot
    does for 8-bit header data.

    @param data: the raw bytes.
    @param name: the charset label, or C{None}.
    @param fallback: codec for data that is neither the named charset nor
        UTF-8.
    """
    codec = lookup(name)
    if codec is None or codec == "ascii":
        if data.isascii():
            return data.decode("ascii")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            codec = lookup(fallback) or "latin-1"
    try:
        return data.decode(codec, "replace")
    except Exception:  # a stateful codec can fail in odd ways
        return data.decode("latin-1")


# RFC 2047 section 2: encoded-word = "=?" charset "?" encoding "?" text "?="
# (with RFC 2231 section 5's optional "*language" after the charset).  The
# text may not contain "?" or whitespace, but broken mailers put spaces in
# Q words; we stay strict there so that plain text is never eaten.
_ENCODED_WORD = re.compile(
    rb"=\?([^?\s*]*)(?:\*[^?\s]*)?\?([bBqQ])\?([^?\s]*)\?="
)
_WS_ONLY = re.compile(rb"[ \t\r\n]*")
_QP_HEX = re.compile(rb"=([0-9A-Fa-f]{2})")


def _b64(text: bytes) -> bytes:
    # Tolerate missing or excess padding and stray characters: drop what
    # is not base64, then pad to a multiple of four.
    pad = text.find(b"=")
    if pad >= 0:
        text = text[:pad]
    text = re.sub(rb"[^A-Za-z0-9+/]", b"", text)
    if len(text) % 4 == 1:
        text = text[:-1]
    text += b"=" * (-len(text) % 4)
    try:
        return binascii.a2b_base64(text)
    except binascii.Error:
        return b""


def _q(text: bytes) -> bytes:
    # RFC 2047 section 4.2: "_" is space, "=XX" is a byte.
    return _QP_HEX.sub(lambda m: bytes([int(m.group(1), 16)]), text.replace(b"_", b" "))


def decode_words(value: bytes | str, fallback: str = "latin-1") -> str:
    """
    Decode RFC 2047 encoded words in a header value.

    Whitespace between two adjacent encoded words is dropped (RFC 2047
    section 6.2).  Adjacent words in the same charset are joined as bytes
    before decoding, so a multibyte character split across two words (as
    many mailers do) survives.  Text outside encoded words, and words in
    unknown charsets, are decoded as UTF-8 or else C{fallback}.

    @param value: the raw header value, unfolded or not.
    @param fallback: the charset for 8-bit text that is not UTF-8.
    @return: the decoded text; never raises.
    """
    if isinstance(value, str):
        value = value.encode("utf-8", "surrogateescape")
    if b"=?" not in value:
        return decode(value, None, fallback)
    out: list[str] = []
    pending = bytearray()
    pending_charset: str | None = None
    after_word = False
    pos = 0

    def flush() -> None:
        nonlocal pending_charset
        if pending:
            out.append(decode(bytes(pending), pending_charset, fallback))
            pending.clear()
        pending_charset = None

    for m in _ENCODED_WORD.finditer(value):
        between = value[pos:m.start()]
        charset = m.group(1).decode("latin-1").lower()
        if between and not (after_word and _WS_ONLY.fullmatch(between)):
            flush()
            out.append(decode(between, None, fallback))
        elif charset != pending_charset:
            flush()
        pending_charset = charset
        after_word = True
        if m.group(2) in b"bB":
            pending += _b64(m.group(3))
        else:
            pending += _q(m.group(3))
        pos = m.end()
    flush()
    out.append(decode(value[pos:], None, fallback))
    return "".join(out)


def decode_param(value: bytes | str) -> str:
    """
    Decode an RFC 2231 extended parameter value,
    C{charset'language'percent-encoded} (section 4), as found after the
    continuations of C{name*0*=...; name*1*=...} have been joined.  A value
    without the two quotes is percent-decoded as UTF-8/latin-1; RFC 2047
    words in plain parameter values (not allowed, but common) are decoded
    too.

    @return: the decoded text; never raises.
    """
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    parts = value.split("'", 2)
    if len(parts) == 3:
        charset, _language, text = parts
    else:
        charset, text = None, value
    data = unquote_to_bytes(text)
    if charset is None and b"=?" in data:
        return decode_words(data)
    return decode(data, charset or None)
