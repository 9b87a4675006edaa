# -*- test-case-name: tests.imapd.auth.test_unixcrypt -*-
"""
Tests for L{imapd.auth.unixcrypt}: the pure-Python SHA-crypt and MD5-crypt
must give exactly what crypt(3) gives.
"""

from __future__ import annotations

import os
import warnings

import pytest

from imapd.auth.unixcrypt import CRYPT_ALPHABET, gensalt, md5_crypt, sha256_crypt, sha512_crypt

from .vectors import load_vectors, vector_id

_FUNCS = {"$1$": md5_crypt, "$5$": sha256_crypt, "$6$": sha512_crypt}

# Dovecot's own hashes of the three families, scheme prefix removed.
_DOVECOT = [
    v for v in load_vectors()
    if v.scheme in ("SHA512-CRYPT", "SHA256-CRYPT", "MD5-CRYPT")
]

# From Drepper's SHA-crypt specification (its test vectors) and glibc's
# MD5-crypt; each was also checked against libcrypt.
_KNOWN = [
    ("Hello world!", "$5$saltstring",
     "$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5"),
    ("Hello world!", "$5$rounds=10000$saltstringsaltstring",
     "$5$rounds=10000$saltstringsaltst$3xv.VbSHBb41AL9AvLeujZkZRBAwqFMz2.opqey6IcA"),
    ("This is just a test", "$5$rounds=5000$toolongsaltstring",
     "$5$rounds=5000$toolongsaltstrin$Un/5jzAHMgOGZ5.mWJpuVolil07guHPvOW8mGRcvxa5"),
    ("Hello world!", "$6$saltstring",
     "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"),
    ("Hello world!", "$6$rounds=10000$saltstringsaltstring",
     "$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/"
     "UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v."),
    ("This is just a test", "$6$rounds=5000$toolongsaltstring",
     "$6$rounds=5000$toolongsaltstrin$lQ8jolhgVRVhY4b5pZKaysCLi0QBxGoNeKQzQ3glMhwllF7oGDZxUhx1yx"
     "dYcz/e1JSbq3y6JMxxl8audkUEm0"),
    ("password", "$1$saltstri", "$1$saltstri$qQY4WxjABChYG1ccLpfkz/"),
    ("", "$1$$", "$1$$qRPK7m23GJusamGpoGLby/"),
    ("a" * 100, "$1$12345678", "$1$12345678$yHGf0oZf8H0kWFcG99n58."),
]


def _system_crypt():
    """
    The deprecated C{crypt} module's function, or L{None} where it is gone.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import crypt
        except ImportError:
            return None
    return crypt.crypt


@pytest.mark.parametrize("vector", _DOVECOT, ids=vector_id)
def test_dovecot_vectors(vector):
    """
    Recomputing a Dovecot SHA512-CRYPT, SHA256-CRYPT or MD5-CRYPT hash from
    its password and salt gives the stored string, character for character.
    """
    stored = vector.stored.split("}", 1)[1]
    func = _FUNCS[stored[:3]]
    assert func(vector.password.encode("utf-8"), stored) == stored


@pytest.mark.parametrize("password, setting, expected", _KNOWN)
def test_published_vectors(password, setting, expected):
    """
    The published test vectors come out exactly, including salt truncation
    (16 characters for SHA-crypt, 8 for MD5-crypt) and the C{rounds=} field.
    """
    func = _FUNCS[setting[:3]]
    assert func(password.encode("utf-8"), setting) == expected


def test_setting_may_be_a_whole_hash():
    """
    Passing the stored hash as the setting reuses its salt and rounds, which
    is how a password is verified.
    """
    stored = _KNOWN[1][2]
    assert sha256_crypt(b"Hello world!", stored) == stored
    assert sha256_crypt(b"Hello world?", stored) != stored


def test_rounds_are_clamped():
    """
    A C{rounds=} below the minimum of 1000 is raised to 1000 (glibc's
    behaviour), and the output says so.
    """
    low = sha256_crypt(b"pw", "$5$rounds=10$salt")
    assert low.startswith("$5$rounds=1000$salt$")
    assert low == sha256_crypt(b"pw", "$5$rounds=1000$salt")


@pytest.mark.parametrize("func, setting", [
    (sha256_crypt, "$6$salt"),
    (sha512_crypt, "$5$salt"),
    (md5_crypt, "$2y$salt"),
    (sha512_crypt, "$6$rounds=many$salt"),
    (sha512_crypt, "$6$rounds=5000"),
])
def test_bad_setting(func, setting):
    """
    A setting of the wrong family or with a broken rounds field raises
    L{ValueError} instead of producing some unrelated hash.
    """
    with pytest.raises(ValueError):
        func(b"pw", setting)


def test_gensalt():
    """
    Salts are of the requested length, from the crypt alphabet, and differ.
    """
    salts = {gensalt(16) for _ in range(20)}
    assert len(salts) == 20
    assert all(len(s) == 16 and set(s) <= set(CRYPT_ALPHABET) for s in salts)
    assert len(gensalt(8)) == 8


@pytest.mark.skipif(_system_crypt() is None, reason="no crypt module on this Python")
def test_matches_system_crypt():
    """
    On random passwords of lengths around the 16-, 32- and 64-byte digest
    sizes and random salts, the results equal libcrypt's.
    """
    system = _system_crypt()
    for length in (0, 1, 2, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 139):
        # crypt.crypt() takes str; latin-1 maps bytes to code points, and
        # it encodes with UTF-8, so hash those same bytes.
        text = os.urandom(length).replace(b"\0", b"@").decode("latin-1")
        for setting in ("$1$" + gensalt(8), "$5$" + gensalt(16), "$6$" + gensalt(11),
                        "$6$rounds=1001$" + gensalt(16)):
            ours = _FUNCS[setting[:3]](text.encode("utf-8"), setting)
            assert ours == system(text, setting), (text, setting)
