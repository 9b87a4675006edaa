# -*- test-case-name: tests.imapd.message.test_message_charset -*-
"""
Tests for L{imapd.charset}: label lookup, tolerant decoding, RFC 2047
encoded words and RFC 2231 parameter values.
"""

import pytest

from imapd import charset


@pytest.mark.parametrize("label, codec", [
    ("utf8", "utf-8"), ("UTF-8", "utf-8"), ('"utf-8"', "utf-8"),
    ("us-ascii", "ascii"), ("iso-8859-1", "latin-1"), ("ISO-8859-2", "iso8859-2"),
    ("iso-8859-15", "iso8859-15"), ("iso-8859-16", "iso8859-16"),
    ("windows-1251", "cp1251"), ("Windows-1256", "cp1256"),
    ("koi8-r", "koi8_r"), ("koi8-u", "koi8_u"),
    ("iso-2022-jp", "iso2022_jp_2"), ("shift_jis", "cp932"), ("sjis", "cp932"),
    ("euc-jp", "euc_jp"), ("gb2312", "gbk"), ("gbk", "gbk"), ("gb18030", "gb18030"),
    ("big5", "cp950"), ("chinesebig5", "cp950"),
    ("euc-kr", "cp949"), ("ks_c_5601-1987", "cp949"),
    ("unknown-8bit", None), ("x-unknown", None), ("default", None),
    ("default_charset", None), ("y", None), ("", None), (None, None),
    ("base64", None), ("undefined", None), ("rot13", None),
])
def test_lookup(label, codec):
    """Labels map to supersets of what they name; meaningless and non-charset labels to None."""
    assert charset.lookup(label) == codec


def test_decode_never_raises():
    """Invalid bytes in a known charset become U+FFFD; unknown labels fall back."""
    assert charset.decode(b"a\xffb", "utf-8") == "a\ufffdb"
    assert charset.decode("é".encode(), "x-unknown") == "é"
    assert charset.decode(b"caf\xe9", "default") == "café"
    assert charset.decode(b"caf\xe9", "us-ascii") == "café"
    assert charset.decode(b"caf\xe9", None, fallback="cp1251") == "cafй"
    assert charset.decode(b"\x1b$B%F%9%H\x1b(B", "iso-2022-jp") == "テスト"


@pytest.mark.parametrize("raw, text", [
    (b"plain", "plain"),
    (b"=?ISO-8859-1?Q?a?=", "a"),
    (b"=?ISO-8859-1?Q?a?= b", "a b"),
    (b"=?ISO-8859-1?Q?a?= =?ISO-8859-1?Q?b?=", "ab"),
    (b"=?ISO-8859-1?Q?a?=  \r\n  =?ISO-8859-1?Q?b?=", "ab"),
    (b"=?ISO-8859-1?Q?a_b?=", "a b"),
    (b"=?ISO-8859-1?Q?a?= =?ISO-8859-2?Q?_b?=", "a b"),
    (b"=?utf-8?q?caf=C3=A9?=", "café"),
    (b"=?UTF-8*en?B?w6k=?=", "é"),
    # a multibyte character split across two words
    (b"=?utf-8?B?4oI=?= =?utf-8?B?rA==?=", "€"),
    (b"=?gb2312?B?1tA=?==?gb2312?B?zsQ=?=", "中文"),
    # bad base64 padding
    (b"=?utf-8?B?w6k?=", "é"),
    (b"=?utf-8?B?w6k===?=", "é"),
    # unknown charset labels: UTF-8 first, then latin-1
    (b"=?default?Q?caf=E9?=", "café"),
    (b"=?unknown-8bit?B?w6k=?=", "é"),
    (b"=?chinesebig5?B?pKSk5Q==?=", "中文"),
    (b"=?ks_c_5601-1987?B?x9GxuQ==?=", "한국"),
    # raw 8-bit header bytes
    (b"caf\xc3\xa9", "café"),
    (b"caf\xe9", "café"),
    # not an encoded word
    (b"=?broken", "=?broken"),
    (b"a =?utf-8?x?b?= c", "a =?utf-8?x?b?= c"),
])
def test_decode_words(raw, text):
    """RFC 2047 decoding, tolerant of the breakage real mail shows."""
    assert charset.decode_words(raw) == text


def test_decode_param():
    """RFC 2231 section 4 values decode with their charset; plain ones pass."""
    assert charset.decode_param(b"utf-8''%E2%82%AC%20rates") == "€ rates"
    assert charset.decode_param("iso-8859-1'en'caf%E9") == "café"
    assert charset.decode_param("''abc") == "abc"
    assert charset.decode_param("plain.txt") == "plain.txt"
    assert charset.decode_param("=?utf-8?q?caf=C3=A9?=.pdf") == "café.pdf"
    assert charset.decode_param("bogus-charset''%E9") == "é"
