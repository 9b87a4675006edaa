# -*- test-case-name: tests.imapd.auth.test_sasl -*-
"""
Tests for L{imapd.auth.sasl}: PLAIN (RFC 4616) and LOGIN exchanges, with
and without an initial response (RFC 4959).
"""

from __future__ import annotations

import pytest

from imapd.auth.sasl import (
    MECHANISMS,
    Challenge,
    Credentials,
    LoginMechanism,
    PlainMechanism,
    SaslError,
)


def test_registry():
    """
    The registry maps the upper-case IANA names to fresh-exchange classes.
    """
    assert MECHANISMS == {"PLAIN": PlainMechanism, "LOGIN": LoginMechanism}
    assert MECHANISMS["PLAIN"]() is not MECHANISMS["PLAIN"]()


def test_rfc4616_example_tim():
    """
    RFC 4616 section 4, first example: with no initial response the server
    sends an empty challenge, then C{NUL tim NUL tanstaaftanstaaf}
    authenticates "tim" (21 octets, as the example's literal says).
    """
    mech = PlainMechanism()
    assert mech.step(None) == Challenge(b"")
    message = b"\0tim\0tanstaaftanstaaf"
    assert len(message) == 21
    assert mech.step(message) == Credentials(authcid="tim", authzid="", password="tanstaaftanstaaf")


def test_rfc4616_example_ursel_as_kurt():
    """
    RFC 4616 section 4, second example: Kurt with password xipj3plmq asks to
    act as Ursel; we do not support proxy authorization, so it is refused
    (the RFC's server answers "Not authorized to requested authorization
    identity").
    """
    message = b"Ursel\0Kurt\0xipj3plmq"
    assert len(message) == 20
    with pytest.raises(SaslError) as caught:
        PlainMechanism().step(message)
    assert "Not authorized" in str(caught.value)


def test_plain_initial_response():
    """
    With SASL-IR the credentials come in the first step, no challenge.
    """
    result = PlainMechanism().step(b"\0alice@example.org\0p\xc3\xa4ss")
    assert result == Credentials("alice@example.org", "", "päss")


def test_plain_authzid_equal_to_authcid():
    """
    An authzid naming the authcid itself is allowed (some clients send it).
    """
    result = PlainMechanism().step(b"tim\0tim\0secret")
    assert result == Credentials(authcid="tim", authzid="tim", password="secret")


@pytest.mark.parametrize("message", [
    b"",
    b"tim",
    b"\0tim",
    b"\0tim\0pw\0extra",
    b"\0\0secret",
    b"\0tim\0",
    b"\0t\xffim\0secret",
    b"\0tim\0s\xc3",
    b"\xc0\xaf\0tim\0secret",
])
def test_plain_malformed(message):
    """
    Wrong field counts, empty authcid or password, and invalid UTF-8 (in any
    field, including overlong forms) raise L{SaslError}.
    """
    with pytest.raises(SaslError):
        PlainMechanism().step(message)


def test_plain_two_empty_steps():
    """
    Answering the empty challenge with no data at all is an error, not a
    second empty challenge.
    """
    mech = PlainMechanism()
    mech.step(None)
    with pytest.raises(SaslError):
        mech.step(None)


def test_login_exchange():
    """
    LOGIN asks "Username:" then "Password:" and gives the credentials with
    an empty authzid.
    """
    mech = LoginMechanism()
    assert mech.step(None) == Challenge(b"Username:")
    assert mech.step(b"tim") == Challenge(b"Password:")
    assert mech.step("tänstaaf".encode()) == Credentials("tim", "", "tänstaaf")


def test_login_initial_response_is_user():
    """
    An initial response to LOGIN is the user name; the server goes straight
    to "Password:".
    """
    mech = LoginMechanism()
    assert mech.step(b"tim") == Challenge(b"Password:")
    assert mech.step(b"secret") == Credentials("tim", "", "secret")


@pytest.mark.parametrize("responses", [
    [None, b""],
    [None, b"\xfftim"],
    [None, b"t\0im"],
    [None, None],
    [None, b"tim", b""],
    [None, b"tim", None],
    [None, b"tim", b"\xff"],
])
def test_login_malformed(responses):
    """
    Empty, NUL-containing or non-UTF-8 user names and passwords, and missing
    responses, raise L{SaslError}.
    """
    mech = LoginMechanism()
    with pytest.raises(SaslError):
        for response in responses:
            mech.step(response)


@pytest.mark.parametrize("mech, steps", [
    (PlainMechanism, [b"\0tim\0secret"]),
    (LoginMechanism, [b"tim", b"secret"]),
])
def test_no_step_after_completion(mech, steps):
    """
    Once the credentials are out, further steps are refused.
    """
    instance = mech()
    for data in steps:
        result = instance.step(data)
    assert isinstance(result, Credentials)
    with pytest.raises(SaslError):
        instance.step(b"more")


def test_no_step_after_error():
    """
    After a L{SaslError} the exchange is over; a retry needs a new object.
    """
    mech = PlainMechanism()
    with pytest.raises(SaslError):
        mech.step(b"garbage")
    with pytest.raises(SaslError):
        mech.step(b"\0tim\0secret")


def test_sasl_error_reason():
    """
    L{SaslError} keeps its reason for the client response.
    """
    error = SaslError("bad thing")
    assert error.reason == "bad thing" and str(error) == "bad thing"
