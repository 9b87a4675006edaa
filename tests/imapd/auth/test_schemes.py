# -*- test-case-name: tests.imapd.auth.test_schemes -*-
"""
Tests for L{imapd.auth.schemes}: every hash Dovecot wrote verifies, every
wrong password is refused, and unknown or broken values never match.
"""

from __future__ import annotations

import base64
import hashlib

import pytest
from twisted.logger import LogLevel, capturedLogs, formatEvent

from imapd.auth import schemes
from imapd.auth.schemes import SUPPORTED_SCHEMES, hash_password, split_scheme, verify_password

from .vectors import load_vectors, vector_id

VECTORS = load_vectors()


@pytest.fixture(autouse=True)
def cheap_bcrypt(monkeypatch):
    """
    Make new BLF-CRYPT hashes with bcrypt's lowest work factor: these tests
    check formats, not strength, and should stay fast.
    """
    monkeypatch.setattr(schemes, "_BCRYPT_COST", 4)
# Schemes we can also generate; DES-CRYPT is verify-only.
GENERATED = sorted(SUPPORTED_SCHEMES - {"DES-CRYPT"})


def _wrong_passwords(password: str) -> set[str]:
    """
    Near misses for a password: one more character, one fewer (the empty
    password for a one-character one), and another case.
    """
    wrong = {password + "x", password[:-1], password.swapcase()}
    wrong.discard(password)
    return wrong


@pytest.mark.parametrize("vector", VECTORS, ids=vector_id)
def test_vector_verifies(vector):
    """
    Every hash made by C{doveadm pw} verifies with its password, given as
    str or as UTF-8 bytes.
    """
    assert verify_password(vector.password, vector.stored)
    assert verify_password(vector.password.encode("utf-8"), vector.stored)


@pytest.mark.parametrize("vector", VECTORS, ids=vector_id)
def test_vector_rejects_wrong_password(vector):
    """
    Every scheme refuses near misses of the right password.
    """
    for wrong in _wrong_passwords(vector.password):
        assert not verify_password(wrong, vector.stored), wrong


def test_all_vector_schemes_supported():
    """
    Every scheme in the vectors file is one we claim to support.
    """
    assert {v.scheme for v in VECTORS} <= SUPPORTED_SCHEMES


@pytest.mark.parametrize(
    "vector",
    [v for v in VECTORS if v.scheme.endswith("CRYPT")],
    ids=vector_id,
)
def test_bare_crypt_strings(vector):
    """
    A crypt(3) string without a C{{SCHEME}} prefix (C{$6$}, C{$5$}, C{$1$},
    C{$2y$}) is read as CRYPT, Dovecot's passwd-file default.
    """
    bare = vector.stored.split("}", 1)[1]
    assert verify_password(vector.password, bare)
    assert not verify_password(vector.password + "x", bare)


def test_crypt_label_follows_hash():
    """
    As with crypt(3), the C{$id$} of the hash picks the algorithm, whatever
    crypt-family label the line carries.
    """
    sha512 = next(v for v in VECTORS if v.scheme == "SHA512-CRYPT")
    relabelled = "{MD5-CRYPT}" + sha512.stored.split("}", 1)[1]
    assert verify_password(sha512.password, relabelled)


def test_scheme_names_case_insensitive():
    """
    C{{ssha256}} is the same scheme as C{{SSHA256}}.
    """
    vector = next(v for v in VECTORS if v.scheme == "SSHA256")
    lower = "{ssha256}" + vector.stored.split("}", 1)[1]
    assert verify_password(vector.password, lower)


def test_encoding_suffixes():
    """
    A binary digest may be hex or base64, chosen by a C{.HEX} / C{.B64} /
    C{.BASE64} suffix, or recognised by its length when there is none.
    """
    digest = hashlib.sha256(b"secret").digest()
    b64 = base64.b64encode(digest).decode()
    assert verify_password("secret", "{SHA256.HEX}" + digest.hex())
    assert verify_password("secret", "{SHA256.b64}" + b64)
    assert verify_password("secret", "{SHA256.BASE64}" + b64)
    assert verify_password("secret", "{SHA256}" + digest.hex())
    assert verify_password("secret", "{SHA256}" + b64.rstrip("="))
    md5 = hashlib.md5(b"secret").digest()
    assert verify_password("secret", "{PLAIN-MD5}" + base64.b64encode(md5).decode())
    assert not verify_password("secret!", "{SHA256.HEX}" + digest.hex())


def test_unknown_scheme_refused_and_logged():
    """
    An unknown scheme never matches, and the log line names the scheme and
    the user (but not the password or the stored value).
    """
    with capturedLogs() as events:
        assert not verify_password("hunter2", "{NTLM}hunter2", user="alice")
    assert len(events) == 1
    event = events[0]
    assert event["scheme"] == "NTLM"
    assert event["log_level"] == LogLevel.warn
    text = formatEvent(event)
    assert "NTLM" in text and "alice" in text
    assert "hunter2" not in text


def test_unknown_encoding_suffix_refused():
    """
    A suffix that is not an encoding leaves an unknown scheme name, which is
    refused and logged as such.
    """
    with capturedLogs() as events:
        assert not verify_password("secret", "{SHA256.ROT13}whatever")
    assert [e["scheme"] for e in events] == ["SHA256.ROT13"]


@pytest.mark.parametrize("stored", [
    "{SSHA}not*base64",
    "{SSHA}" + base64.b64encode(hashlib.sha1(b"secret").digest()).decode(),  # no salt
    "{SHA1}AAAA",
    "{PLAIN-MD5}xyz",
    "{PBKDF2}$1$salt$many$00",
    "{PBKDF2}$2$salt$5000$" + "00" * 20,
    "{PBKDF2}$1$salt$5000$00",
    "{SCRAM-SHA-1}4096,c2FsdA==,onlythree",
    "{SCRAM-SHA-256}x,c2FsdA==,AA==,AA==",
    "{ARGON2ID}$argon2id$v=19$broken",
    "{ARGON2I}$scrypt$whatever",
    "{BLF-CRYPT}$2y$05$short",
    "{CRAM-MD5}abcd",
])
def test_malformed_refused_and_logged(stored):
    """
    A stored value that does not fit its scheme never matches and is
    logged as malformed, naming the scheme, without the value itself.
    """
    with capturedLogs() as events:
        assert not verify_password("secret", stored, user="bob")
    assert len(events) == 1
    text = formatEvent(events[0])
    assert "malformed" in text and "bob" in text
    assert stored.split("}", 1)[1] not in text


@pytest.mark.parametrize("stored", ["", "{PLAIN}", "{SHA512-CRYPT}", "*", "!", "!!", "{CRYPT}*LK*"])
def test_empty_and_locked(stored):
    """
    An empty password field and the conventional locked-account markers
    never match, not even an empty or identical password.
    """
    for attempt in ("", "secret", stored):
        assert not verify_password(attempt, stored)


def test_des_crypt_with_system_crypt(monkeypatch):
    """
    Traditional DES crypt (13 characters) is handed to the platform's
    crypt(3) where Python still has one; its answer must match exactly.
    """
    calls = []

    def fake_crypt(password: str, setting: str) -> str:
        calls.append(setting)
        return "abJnggxhB/yWI" if password == "secret" else "abXXXXXXXXXXX"

    monkeypatch.setattr(schemes, "_system_crypt", fake_crypt)
    assert verify_password("secret", "{CRYPT}abJnggxhB/yWI")
    assert verify_password("secret", "abJnggxhB/yWI")
    assert not verify_password("wrong", "{DES-CRYPT}abJnggxhB/yWI")
    assert calls == ["abJnggxhB/yWI"] * 3


def test_system_crypt_failure_tokens(monkeypatch):
    """
    crypt(3) signals failure with C{*0}/C{*1} or L{None}; that is a refusal,
    even against a stored value that happens to be the same token.
    """
    monkeypatch.setattr(schemes, "_system_crypt", lambda pw, setting: None)
    assert not verify_password("secret", "{CRYPT}abJnggxhB/yWI")
    monkeypatch.setattr(schemes, "_system_crypt", lambda pw, setting: "*0")
    assert not verify_password("secret", "{CRYPT}*0" + "x" * 11)


def test_des_crypt_without_crypt_module(monkeypatch):
    """
    On a Python without the C{crypt} module (3.13+), a DES hash is refused
    with a log line that says why.
    """
    monkeypatch.setattr(schemes, "_system_crypt", None)
    with capturedLogs() as events:
        assert not verify_password("secret", "{CRYPT}abJnggxhB/yWI")
    assert len(events) == 1
    assert "crypt module" in formatEvent(events[0])
    assert events[0]["kind"] == "DES"


def test_real_des_crypt():
    """
    Against the real crypt module, when this Python has one.
    """
    if schemes._system_crypt is None:
        pytest.skip("no crypt module on this Python")
    stored = schemes._system_crypt("secret", "ab")
    assert verify_password("secret", "{CRYPT}" + stored)
    assert not verify_password("secreT", "{CRYPT}" + stored)


def test_bcrypt_long_password():
    """
    bcrypt only reads 72 bytes, as the C implementations that made existing
    hashes do; a longer password is cut, not refused with an error.
    """
    stored = hash_password("p" * 72, "BLF-CRYPT")
    assert stored.startswith("{BLF-CRYPT}$2y$04$")
    assert verify_password("p" * 72, stored)
    assert verify_password("p" * 72 + "ignored", stored)
    assert not verify_password("p" * 71, stored)


@pytest.mark.parametrize("scheme", GENERATED)
def test_hash_password_round_trip(scheme):
    """
    Every scheme we generate verifies its own output (with a non-ASCII
    password) and rejects a wrong one; the output names the scheme.
    """
    stored = hash_password("pässwörd", scheme)
    assert stored.startswith("{" + scheme + "}")
    assert verify_password("pässwörd", stored)
    assert not verify_password("passwörd", stored)


def test_hash_password_default_and_salted():
    """
    The default scheme is SHA512-CRYPT, Dovecot's usual choice, and salts
    make two hashes of one password differ.
    """
    first, second = hash_password("demo"), hash_password("demo")
    assert first.startswith("{SHA512-CRYPT}$6$")
    assert first != second
    assert verify_password("demo", first) and verify_password("demo", second)


@pytest.mark.parametrize("scheme", ["NTLM", "DES-CRYPT", "SHA256.HEX"])
def test_hash_password_refuses(scheme):
    """
    Unknown schemes, and DES which is too weak to create, raise
    L{ValueError}.
    """
    with pytest.raises(ValueError):
        hash_password("pw", scheme)


def test_hash_password_plain_must_fit_a_line():
    """
    A PLAIN password containing C{:} or a line break would break the
    passwd-file line, so it is refused.
    """
    for bad in ("a:b", "a\nb"):
        with pytest.raises(ValueError):
            hash_password(bad, "PLAIN")


def test_split_scheme():
    """
    The scheme is upper-cased; bare values get the default scheme; a lone
    brace is data.
    """
    assert split_scheme("{ssha}abc") == ("SSHA", "abc")
    assert split_scheme("$6$abc") == ("CRYPT", "$6$abc")
    assert split_scheme("$6$abc", "plain") == ("PLAIN", "$6$abc")
    assert split_scheme("{abc") == ("CRYPT", "{abc")
    assert split_scheme("{SHA256.HEX}00") == ("SHA256.HEX", "00")


def test_default_scheme_option():
    """
    With C{default_scheme="PLAIN"}, a bare value is a clear-text password.
    """
    assert verify_password("secret", "secret", default_scheme="PLAIN")
    assert not verify_password("secret", "secret")
