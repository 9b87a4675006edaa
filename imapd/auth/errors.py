# -*- test-case-name: tests.imapd.auth.test_passdb -*-
"""
The one error of the authentication layer that is not "wrong password".

A password database that cannot answer (an LDAP directory that is down or
does not answer in time) must not look like a refusal: the client gets
C{NO [UNAVAILABLE]} (RFC 5530 section 3) and may try again, the failure
is not counted against its address, and nothing is cached.  Refusals stay
L{twisted.cred.error.UnauthorizedLogin}.
"""

from __future__ import annotations

__all__ = ["AuthUnavailable"]


class AuthUnavailable(Exception):
    """
    The user database or password database could not be asked; the text
    says which server failed and why (for the log, never for the client).
    """
