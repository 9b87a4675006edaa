# -*- test-case-name: tests.imapd.auth.test_sasl -*-
"""
Server side of the SASL mechanisms used by IMAP AUTHENTICATE, without I/O.

The protocol layer (RFC 3501 section 6.2.2, with RFC 4959's initial
response) owns the wire: base64, the C{+} continuation, the C{*} that
cancels.  It creates one mechanism object per AUTHENTICATE and feeds it the
decoded client responses::

    mech = MECHANISMS["PLAIN"]()
    result = mech.step(initial_response)   # None if the client sent none
    while isinstance(result, Challenge):
        # send result.data (base64) to the client, read its answer
        result = mech.step(decoded_answer)
    # result is Credentials: check them through the cred portal

C{step(None)} means "no initial response" (the client sent the command
without one); C{step(b"")} means an empty one (SASL-IR's C{=}).  Malformed
input raises L{SaslError}, whose message may be shown to the client.

Mechanisms here yield a user name and password; they do not check them.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "MECHANISMS",
    "Challenge",
    "Credentials",
    "LoginMechanism",
    "PlainMechanism",
    "SaslError",
    "SaslMechanism",
]


class SaslError(Exception):
    """
    The client's SASL data is malformed or not acceptable; the exchange is
    over.  C{str()} gives a reason fit for the client.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Challenge:
    """
    The server needs another client response.

    @ivar data: the challenge to send (before base64); may be empty.
    """

    data: bytes


@dataclass(frozen=True)
class Credentials:
    """
    The exchange is complete.

    @ivar authcid: the authentication identity: whose password this is.
    @ivar authzid: the authorization identity: the user to act as.  Empty,
        or equal to C{authcid}: we do not support proxy authorization.
    @ivar password: the password.
    """

    authcid: str
    authzid: str
    password: str


def _utf8(data: bytes, what: str) -> str:
    """
    Decode a field that must be UTF-8 (RFC 4616 section 2).
    """
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise SaslError(f"{what} is not valid UTF-8") from None


class SaslMechanism:
    """
    A server mechanism: a small state machine driven by L{step}.

    @cvar name: the IANA mechanism name.
    """

    name = ""

    def __init__(self) -> None:
        self._done = False

    def step(self, client_response: bytes | None) -> Challenge | Credentials:
        """
        Take the next client response.

        @param client_response: the decoded response, or L{None} on the
            first step if the client sent no initial response.
        @return: a L{Challenge} to send, or the final L{Credentials}.
        @raises SaslError: if the response is malformed, or the exchange is
            already over.
        """
        if self._done:
            raise SaslError("authentication exchange already complete")
        try:
            result = self._step(client_response)
        except SaslError:
            self._done = True
            raise
        if isinstance(result, Credentials):
            self._done = True
        return result

    def _step(self, client_response: bytes | None) -> Challenge | Credentials:
        """
        The mechanism's own logic; see L{step}.
        """
        raise NotImplementedError


class PlainMechanism(SaslMechanism):
    """
    PLAIN (RFC 4616): one message, C{[authzid] NUL authcid NUL passwd}.

    Without an initial response, the server first sends an empty challenge
    (RFC 4422 section 5, RFC 3501 section 6.2.2).
    """

    name = "PLAIN"

    def __init__(self) -> None:
        super().__init__()
        self._asked = False

    def _step(self, client_response: bytes | None) -> Challenge | Credentials:
        if client_response is None:
            if self._asked:
                raise SaslError("PLAIN needs a response")
            self._asked = True
            return Challenge(b"")
        parts = client_response.split(b"\0")
        if len(parts) != 3:
            raise SaslError("PLAIN message must be authzid NUL authcid NUL password")
        authzid, authcid, password = (
            _utf8(p, what) for p, what in zip(parts, ("authzid", "authcid", "password"))
        )
        # RFC 4616 section 2: authcid and passwd are 1*SAFE, never empty.
        if not authcid:
            raise SaslError("PLAIN authentication identity is empty")
        if not password:
            raise SaslError("PLAIN password is empty")
        if authzid and authzid != authcid:
            # RFC 4616 section 2: the server must check the authcid may act
            # as the authzid.  We have no such rights (no master users), so
            # only "act as myself" is allowed.
            raise SaslError("Not authorized to requested authorization identity")
        return Credentials(authcid=authcid, authzid=authzid, password=password)


class LoginMechanism(SaslMechanism):
    """
    LOGIN (draft-murchison-sasl-login-00): the server asks C{Username:} and
    then C{Password:}.  Outlook and other old clients use it instead of
    PLAIN.

    An initial response, where a client sends one, is the user name (the
    draft allows this).
    """

    name = "LOGIN"

    def __init__(self) -> None:
        super().__init__()
        self._user: str | None = None
        self._asked_user = False

    def _step(self, client_response: bytes | None) -> Challenge | Credentials:
        if self._user is None:
            if client_response is None:
                if self._asked_user:
                    raise SaslError("LOGIN needs a user name")
                self._asked_user = True
                return Challenge(b"Username:")
            user = _utf8(client_response, "user name")
            if not user or "\0" in user:
                raise SaslError("LOGIN user name is empty or contains NUL")
            self._user = user
            return Challenge(b"Password:")
        if client_response is None:
            raise SaslError("LOGIN needs a password")
        password = _utf8(client_response, "password")
        if not password or "\0" in password:
            raise SaslError("LOGIN password is empty or contains NUL")
        return Credentials(authcid=self._user, authzid="", password=password)


#: Mechanism name (upper case) to class; call the class for a new exchange.
MECHANISMS: dict[str, type[SaslMechanism]] = {
    PlainMechanism.name: PlainMechanism,
    LoginMechanism.name: LoginMechanism,
}
