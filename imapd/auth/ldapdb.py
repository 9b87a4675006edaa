# -*- test-case-name: tests.imapd.auth.test_ldap -*-
"""
LDAP as a password database and a user database (C{[auth] passdb =
["ldap"]}, the C{[ldap]} table), as Dovecot's C{driver = ldap} does it.

A login searches the directory with C{pass_filter} for the user's entry
and then either binds as that entry's DN with the password
(C{auth_bind}: the directory checks it, whatever scheme it stores) or
reads the password attribute named in C{pass_attrs} and verifies its
C{{SCHEME}} value as the passwd-file does (L{imapd.auth.schemes}).  The
same search reads the C{user_attrs} (home, uid, gid, mail location,
quota), so that a login costs one search (Dovecot's "prefetch"): the
checker's avatar is the L{UserRecord}.  Without a password (delivery,
another user's URLAUTH URL) users are found with C{user_filter}.

Filters are templates: C{%u} the user name as given, C{%n} its part
before C{@}, C{%d} the part after it, C{%%} a percent sign (also
C{%{user}}, C{%{username}}, C{%{domain}}).  Every value put into a filter
is escaped as RFC 4515 section 3 requires (C{*}, C{(}, C{)}, C{\\} and
NUL as C{\\XX}), so a user name such as C{*)(uid=*} is looked for as
those characters and matches nobody.

A search that finds more than one entry refuses the login (and says so in
the log): which of two entries' passwords counts is not for us to guess.
"""

from __future__ import annotations

import re
from typing import Optional

from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import IUsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet.defer import maybeDeferred
from twisted.logger import Logger
from zope.interface import implementer

from imapd.auth.checker import _text
from imapd.auth.schemes import verify_password
from imapd.auth.userdb import IUserDB, UserRecord

__all__ = ["escape_filter_value", "expand_filter", "parse_attr_map", "USER_FIELDS",
           "PASS_FIELDS", "LDAPPassdb", "LDAPUserDB", "record_from_entry"]

_log = Logger(namespace="imapd.auth.ldap")

#: What C{user_attrs} may map an attribute to.  C{mail} becomes the
#: C{userdb_mail} extra field (the user's mail location, as Dovecot's);
#: C{quota_storage} (bytes, or a size with k, M, G, T) and
#: C{quota_messages} (a count) become the user's quota limits.
USER_FIELDS = ("home", "uid", "gid", "mail", "quota_storage", "quota_messages", "user")
#: What C{pass_attrs} may map an attribute to: C{password} is the stored
#: C{{SCHEME}} value, C{user} the name the user is known by afterwards.
PASS_FIELDS = ("user", "password")
#: A password value without C{{SCHEME}} is a crypt(3) string, as in
#: Dovecot's LDAP driver (C{default_pass_scheme = CRYPT}).
DEFAULT_SCHEME = "CRYPT"

_TEMPLATE = re.compile(r"%(\{[a-z]+\}|.)", re.S)
_NAMES = {"u": "user", "n": "username", "d": "domain",
          "{user}": "user", "{username}": "username", "{domain}": "domain"}


def escape_filter_value(value: str) -> str:
    """
    RFC 4515 section 3: in an assertion value, C{*}, C{(}, C{)}, C{\\} and
    NUL are written as a backslash and two hex digits.
    """
    return "".join(f"\\{ord(c):02x}" if c in "*()\\\0" else c for c in value)


def expand_filter(template: str, user: str) -> str:
    """
    The filter C{template} for C{user} (see the module docstring), with
    every substituted value escaped.

    @raises ValueError: an unknown C{%} variable.
    """
    name, _, domain = user.partition("@")
    values = {"user": user, "username": name, "domain": domain}

    def one(match: re.Match) -> str:
        key = match.group(1)
        if key == "%":
            return "%"
        if key not in _NAMES:
            raise ValueError(f"unknown variable %{key} (known: %u, %n, %d, %%)")
        return escape_filter_value(values[_NAMES[key]])

    return _TEMPLATE.sub(one, template)


def parse_attr_map(text: str, fields: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """
    Dovecot's C{attr=field, attr=field} (C{user_attrs}, C{pass_attrs}), as
    (attribute, field) pairs.

    @raises ValueError: a pair without C{=}, an empty attribute, or a
        field not in C{fields}.
    """
    pairs = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        attr, sep, fld = item.partition("=")
        attr, fld = attr.strip(), fld.strip()
        if not sep or not attr:
            raise ValueError(f"{item!r}: write LDAP_ATTRIBUTE=FIELD "
                             f"(fields: {', '.join(fields)})")
        if fld not in fields:
            raise ValueError(f"{item!r}: unknown field {fld!r} (fields: {', '.join(fields)})")
        pairs.append((attr, fld))
    return tuple(pairs)


def _parse_bytes(value: str) -> int:
    """A quota size: bytes, or a number with k, M, G or T (powers of 1024), in KiB."""
    text = value.strip()
    units = {"k": 1, "m": 1024, "g": 1024 ** 2, "t": 1024 ** 3}
    if text[-1:].lower() in units:
        return int(text[:-1]) * units[text[-1].lower()]
    return -(-int(text) // 1024)


def record_from_entry(name: str, entry: dict, user_attrs, dn: str = "") -> UserRecord:
    """
    The L{UserRecord} of C{name} from a search result's attributes mapped
    by C{user_attrs}; an attribute with an unusable value (a uid that is
    no number) is logged and left out.  The entry's C{dn} is kept as the
    C{ldap_dn} extra field, so that C{imapd-admin user} and C{auth test}
    show which entry the directory gave.
    """
    fields: dict[str, str] = {}
    for attr, fld in user_attrs:
        values = entry.get(attr.lower())
        if values:
            fields[fld] = values[0]
    ids = {}
    for key in ("uid", "gid"):
        if key in fields:
            try:
                ids[key] = int(fields[key])
            except ValueError:
                _log.warn("LDAP entry of {user!r}: {field} {value!r} is not a number; ignored",
                          user=name, field=key, value=fields[key])
    extra = {"ldap_dn": dn} if dn else {}
    if fields.get("mail"):
        extra["userdb_mail"] = fields["mail"]
    for key, parse in (("quota_storage", _parse_bytes), ("quota_messages", int)):
        if fields.get(key):
            try:
                extra[f"userdb_{key}"] = str(parse(fields[key]))
            except ValueError:
                _log.warn("LDAP entry of {user!r}: {field} {value!r} is not a size; ignored",
                          user=name, field=key, value=fields[key])
    return UserRecord(fields.get("user") or name, ids.get("uid"), ids.get("gid"),
                      fields.get("home") or None, extra)


class _Lookup:
    """What the password and the user database share: one search by a filter."""

    def __init__(self, directory, filter: str, attributes: tuple[str, ...]) -> None:
        self.directory = directory
        self.filter = filter
        self.attributes = tuple(dict.fromkeys(attributes))

    def find(self, name: str) -> Optional[tuple[str, dict]]:
        """
        Blocking: C{(dn, attributes)} of the one entry for C{name}, or None
        (none, or more than one: logged).

        @raises imapd.auth.errors.AuthUnavailable: the directory did not answer.
        """
        if not name or "\0" in name:
            return None
        found = self.directory.search(expand_filter(self.filter, name), self.attributes)
        if len(found) > 1:
            _log.error("LDAP search for {user!r} found more than one entry; refused",
                       user=name)
            return None
        return found[0] if found else None


@implementer(ICredentialsChecker)
class LDAPPassdb:
    """
    Check passwords in the directory (see the module docstring).  The
    avatar id is the user's L{UserRecord}, from the same search.

    @param directory: an L{imapd.auth.ldapconn.Directory}.
    @param pass_filter: the filter template for logins.
    @param auth_bind: check the password by binding as the entry's DN.
    @param pass_attrs: (attribute, field) pairs, fields in L{PASS_FIELDS}.
    @param user_attrs: (attribute, field) pairs, fields in L{USER_FIELDS}.
    @param runner: C{runner(f, *args)} runs the blocking check and
        returns a Deferred (L{imapd.auth.ldapconn.DirectoryThreads.run}).
    """

    credentialInterfaces = (IUsernamePassword,)

    def __init__(self, directory, pass_filter: str, auth_bind: bool, pass_attrs, user_attrs,
                 runner) -> None:
        self.auth_bind = auth_bind
        self.pass_attrs = tuple(pass_attrs)
        self.user_attrs = tuple(user_attrs)
        self._password_attr = next((a for a, f in self.pass_attrs if f == "password"), None)
        if not auth_bind and self._password_attr is None:
            raise ValueError("pass_attrs names no password attribute (ATTRIBUTE=password) "
                             "and auth_bind is false")
        wanted = [a for a, f in self.pass_attrs if auth_bind is False or f != "password"]
        self._lookup = _Lookup(directory, pass_filter, tuple(wanted) +
                               tuple(a for a, _f in self.user_attrs))
        self._runner = runner

    def requestAvatarId(self, credentials):
        return maybeDeferred(self._runner, self._check, credentials.username,
                             credentials.password)

    def _check(self, username, password) -> UserRecord:
        user = _text(username, "user name")
        if isinstance(password, str):
            password = password.encode("utf-8")
        found = self._lookup.find(user)
        if found is None:
            return self._refuse(user, "not found in the LDAP directory (pass_filter)")
        dn, entry = found
        if self.auth_bind:
            if not self._lookup.directory.check_bind(dn, password):
                return self._refuse(user, f"wrong password (bind as {dn!r})")
        else:
            stored = (entry.get(self._password_attr.lower()) or [""])[0]
            if not stored:
                return self._refuse(user, f"no {self._password_attr} in {dn!r}")
            if not verify_password(password, stored, default_scheme=DEFAULT_SCHEME, user=user):
                return self._refuse(user, "wrong password")
        name = next((entry[a.lower()][0] for a, f in self.pass_attrs
                     if f == "user" and entry.get(a.lower())), user)
        return record_from_entry(name, entry, self.user_attrs, dn)

    def _refuse(self, user: str, reason: str):
        _log.info("Authentication refused for {user!r}: {reason}", user=user, reason=reason)
        raise UnauthorizedLogin("Authentication failed")


@implementer(IUserDB)
class LDAPUserDB:
    """
    Users from the directory by C{user_filter}, their fields by
    C{user_attrs} (blocking, like every L{IUserDB}).
    """

    def __init__(self, directory, user_filter: str, user_attrs) -> None:
        self.user_attrs = tuple(user_attrs)
        self._lookup = _Lookup(directory, user_filter, tuple(a for a, _f in self.user_attrs))

    def lookup(self, name: str) -> Optional[UserRecord]:
        found = self._lookup.find(name)
        if found is None:
            return None
        return record_from_entry(name, found[1], self.user_attrs, found[0])
