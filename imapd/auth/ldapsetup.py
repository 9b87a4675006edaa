# -*- test-case-name: tests.imapd.auth.test_ldap -*-
"""
The C{[ldap]} table made into a password database and a user database
(L{imapd.auth.ldapdb}) over one L{imapd.auth.ldapconn.Directory}, with
every problem reported at start-up as a L{conf.ConfigError} that names
the option and the file.

L{ldap3} is an optional dependency (the C{ldap} extra: C{pip install
'imapd[ldap]'}): a server without LDAP users needs no LDAP client.
"""

from __future__ import annotations

__all__ = ["ldap_databases", "ldap_userdb", "ldap_settings"]


def _problem(config, option: str, reason: str):
    from conf import COMMAND_LINE, ConfigError

    return ConfigError(config.source or COMMAND_LINE, option, reason)


def _ldap3(config, ldap3):
    if ldap3 is not None:
        return ldap3
    from imapd.auth.ldapconn import load_ldap3

    try:
        return load_ldap3()
    except ImportError:
        raise _problem(config, "auth.passdb",
                       "lists \"ldap\", but the ldap3 package is not installed "
                       "(pip install 'imapd[ldap]')") from None


def ldap_settings(config):
    """
    The L{LDAPSettings} of C{[ldap]}.

    @raises conf.ConfigError: no URI, no base, an unreadable password file.
    """
    from imapd.auth.ldapconn import LDAPSettings

    section = config.ldap
    if not section.uris:
        raise _problem(config, "ldap.uris", "is empty, and auth.passdb lists \"ldap\"")
    password = section.bind_password
    if section.bind_password_file:
        if password:
            raise _problem(config, "ldap.bind_password_file",
                           "and ldap.bind_password are both set; keep one")
        try:
            with open(section.bind_password_file, encoding="utf-8") as f:
                password = f.read().rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as e:
            raise _problem(config, "ldap.bind_password_file",
                           f"cannot read it: {getattr(e, 'strerror', None) or e}") from None
    return LDAPSettings(uris=section.uris, base=section.base, scope=section.scope,
                        bind_dn=section.bind_dn, bind_password=password,
                        starttls=section.starttls, ca_file=section.tls_ca_cert_file,
                        timeout=section.timeout, pool_size=section.pool_size)


def _directory(config, ldap3):
    from imapd.auth.ldapconn import Directory

    ldap3 = _ldap3(config, ldap3)
    try:
        return Directory(ldap_settings(config), ldap3=ldap3)
    except (ValueError, ldap3.core.exceptions.LDAPException) as e:
        raise _problem(config, "ldap.uris", str(e)) from None


def ldap_databases(config, ldap3=None, runner=None):
    """
    C{(checker, userdb)} for C{[auth] passdb = ["ldap"]}: one directory,
    with its own threads for the password checks.

    @param runner: runs the blocking checks (default: the directory's
        own L{DirectoryThreads}).
    """
    from imapd.auth.ldapconn import DirectoryThreads
    from imapd.auth.ldapdb import LDAPPassdb, LDAPUserDB

    section = config.ldap
    directory = _directory(config, ldap3)
    if runner is None:
        runner = DirectoryThreads(section.pool_size).run
    try:
        checker = LDAPPassdb(directory, section.pass_filter, section.auth_bind,
                             section.pass_attrs, section.user_attrs, runner)
    except ValueError as e:
        raise _problem(config, "ldap.pass_attrs", str(e)) from None
    return checker, LDAPUserDB(directory, section.user_filter, section.user_attrs)


def ldap_userdb(config, ldap3=None):
    """The directory's user database alone (delivery: no passwords)."""
    from imapd.auth.ldapdb import LDAPUserDB

    section = config.ldap
    return LDAPUserDB(_directory(config, ldap3), section.user_filter, section.user_attrs)
