"""
The director user hash against Dovecot's own unit test vectors
(dovecot/core src/lib-mail/test-mail-user-hash.c) and CLUSTER.md's table.
"""

import pytest

from imapd.cluster.hashing import HashFormatError, check_format, expand_key, user_hash

# (user name, format, hash): Dovecot's test_mail_user_hash cases.
DOVECOT_VECTORS = [
    ("", "", 3558706393),
    ("testuser", "", 3558706393),
    ("", "%u", 3558706393),
    ("@", "%u", 1368314517),
    ("", "%n@%d", 1368314517),
    ("", "%n", 3558706393),
    ("", "%d", 3558706393),
    ("testuser", "%u", 1570531526),
    ("testuser", "%n", 1570531526),
    ("testuser", "%d", 3558706393),
    ("@domain", "%u", 3749630072),
    ("@domain", "%n@%d", 3749630072),
    ("@domain", "%n", 3558706393),
    ("@domain", "%d", 2908717800),
    ("testuser@domain", "%u", 3813799143),
    ("testuser@domain", "%n@%d", 3813799143),
    ("testuser@domain", "%n", 1570531526),
    ("testuser@domain", "%d", 2908717800),
    ("test@user@domain", "%u", 2029259821),
    ("test@user@domain", "%n@%d", 2029259821),
    ("test@user@domain", "%n", 160394189),
    ("test@user@domain", "%d", 1841230927),
]


@pytest.mark.parametrize("user,fmt,expected", DOVECOT_VECTORS)
def test_dovecot_vectors(user, fmt, expected):
    """Each of Dovecot's vectors hashes to Dovecot's value."""
    assert user_hash(user, fmt) == expected


@pytest.mark.parametrize("user,expected", [
    ("alice", 0x6384E2B2),
    ("erin", 0x5F5BE389),
    ("heidi", 0x3E41D67D),
    ("Dave@INFN.it", 2018280552),
    ("user620", 0xFFF776FB),
])
def test_cluster_md_default_format(user, expected):
    """CLUSTER.md's users hash as a Dovecot 2.3.19 director with %Lu does."""
    assert user_hash(user) == expected


def test_lowercase_is_ascii_only():
    """%L lowercases ASCII letters only, as Dovecot's str_lcase: Å stays Å."""
    assert expand_key("ÅSA@Example.ORG", "%Lu") == "Åsa@example.org"
    assert expand_key("Bob@Example.org", "%Ln@%Ld") == "bob@example.org"
    assert user_hash("ÅSA") != user_hash("åsa")


def test_long_names_and_percent():
    """%{user}, %{username}, %{domain} and %% expand like their short forms."""
    assert expand_key("a@b", "%{username}/%{domain}/%{user}/%%") == "a/b/a@b/%"
    assert expand_key("A@B", "%L{user}") == "a@b"


@pytest.mark.parametrize("fmt", ["%{invalid}", "%x", "abc%", "%Lq"])
def test_unknown_variables_refused(fmt):
    """A format naming an unknown variable is refused, never hashed as text."""
    with pytest.raises(HashFormatError):
        check_format(fmt)


def test_zero_hash_becomes_one(monkeypatch):
    """A key whose MD5 starts with four zero bytes hashes to 1 (0 means none)."""
    import hashlib

    import imapd.cluster.hashing as hashing

    class Zero:
        def __init__(self, data):
            pass

        def digest(self):
            return bytes(16)

    monkeypatch.setattr(hashing.hashlib, "md5", Zero)
    assert hashing.hash32(b"anything") == 1
    monkeypatch.setattr(hashing.hashlib, "md5", hashlib.md5)
