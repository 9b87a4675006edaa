# -*- test-case-name: tests.imapd.auth.test_crammd5 -*-
"""
Tests for L{imapd.auth.crammd5}: Dovecot's stored HMAC-MD5 contexts.
"""

from __future__ import annotations

import hmac

import pytest

from imapd.auth.crammd5 import cram_md5_context, hmac_md5_from_context

from .vectors import load_vectors, vector_id

_DOVECOT = [v for v in load_vectors() if v.scheme == "CRAM-MD5"]


@pytest.mark.parametrize("vector", _DOVECOT, ids=vector_id)
def test_dovecot_vectors(vector):
    """
    The context computed from the password is the one Dovecot stored.
    """
    expected = vector.stored[len("{CRAM-MD5}"):]
    assert cram_md5_context(vector.password.encode("utf-8")).hex() == expected


@pytest.mark.parametrize("length", [0, 1, 55, 56, 63, 64, 65, 200])
def test_hmac_from_context(length):
    """
    HMAC-MD5 computed from the stored context equals the standard HMAC with
    the password, for keys and messages around the 64-byte block size
    (longer keys are hashed first, RFC 2104 section 2).
    """
    key = bytes(range(length % 256)) * (length // 256 + 1)
    key = key[:length]
    message = b"<1896.697170952@postoffice.example.net>" * (length // 8 + 1)
    context = cram_md5_context(key)
    assert hmac_md5_from_context(context, message) == hmac.new(key, message, "md5").digest()


def test_rfc2195_example():
    """
    The RFC 2195 section 2 example: user tim, secret tanstaaftanstaaf.
    """
    context = cram_md5_context(b"tanstaaftanstaaf")
    digest = hmac_md5_from_context(context, b"<1896.697170952@postoffice.reston.mci.net>")
    assert digest.hex() == "b913a602c7eda7a495b4e6e7334d3890"


def test_bad_context():
    """
    A context that is not 32 bytes is refused.
    """
    with pytest.raises(ValueError):
        hmac_md5_from_context(b"short", b"challenge")
