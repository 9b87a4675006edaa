# -*- test-case-name: tests.imapd.adminops.test_users -*-
"""
C{imapd-admin pw}, C{auth test} and C{user}: passwords and users as the
daemon sees them (the counterparts of C{doveadm pw}, C{doveadm auth test}
and C{doveadm user}).

    pw [-s SCHEME] [-p PASSWORD]        a passwd-file password field
    pw -t '{SCHEME}hash' [-p PASSWORD]  check one (as doveadm pw -t)
    pw -l                               the schemes we can make
    auth test USER [PASSWORD]           a login, end to end
    user -u USER | -A                   uid, gid, home, mail, quota

Hashes come from L{imapd.auth.schemes} (the passwd-file's own code), in
Dovecot's C{{SCHEME}data} form, so that C{doveadm pw -t} verifies them.
C{auth test} runs the daemon's authenticator
(L{imapd.auth.build_authenticator}: passwd-file or PAM, the user
database, C{first_valid_uid}); C{user} its user database.
"""

from __future__ import annotations

import getpass

from imapd.adminops.common import (EX_NOTFOUND, Failed, Site, add_command, emit,
                                   log_lines, run_per_user)

__all__ = ["add_commands", "generated_schemes"]


def generated_schemes() -> list[str]:
    """Every scheme the passwd-file accepts that we can make a hash of."""
    from imapd.auth.schemes import _SCHEMES

    return sorted(name for name, scheme in _SCHEMES.items() if scheme.generate is not None)


def add_commands(areas) -> None:
    p = add_command(areas, "pw", _pw, "make or check a password hash for the passwd-file",
                    "  imapd-admin pw                         # asks twice, SHA512-CRYPT\n"
                    "  imapd-admin pw -s ARGON2ID -p secret\n"
                    "  imapd-admin pw -t '{SSHA256}...' -p secret\n"
                    "  imapd-admin pw -l")
    p.add_argument("-s", "--scheme", default="SHA512-CRYPT", type=str.upper,
                   help="the scheme (default SHA512-CRYPT; -l lists them)")
    p.add_argument("-p", "--password", help="the password (default: asked twice, not shown)")
    p.add_argument("-t", "--test", metavar="HASH",
                   help="check PASSWORD against HASH instead (exit 0 if it matches, 1 if not)")
    p.add_argument("-l", "--list", action="store_true", help="list the schemes")

    auth = areas.add_parser("auth", help="check a login through the daemon's authenticator")
    commands = auth.add_subparsers(dest="command", metavar="COMMAND", required=True)
    p = add_command(commands, "test", _auth_test,
                    "check a user's password as a login does, and show the userdb fields",
                    "  imapd-admin auth test alice            # asks for the password\n"
                    "  imapd-admin auth test alice secret --json")
    p.add_argument("name", metavar="USER")
    p.add_argument("password", metavar="PASSWORD", nargs="?",
                   help="default: asked, not shown")

    add_command(areas, "user", _user, "what the user database says of a user",
                "  imapd-admin user -u alice\n"
                "  imapd-admin user -A --json", users="many")


def _ask(prompt: str) -> str:
    try:
        return getpass.getpass(prompt)
    except (EOFError, KeyboardInterrupt):
        raise Failed("no password given") from None


def _pw(config, args, out, err):
    from imapd.auth.schemes import verify_password

    schemes = generated_schemes()
    if args.list:
        emit(out, args, [{"scheme": s} for s in schemes], lambda row: row["scheme"])
        return 0
    if args.test is None and args.scheme not in schemes:
        raise Failed(f"cannot make scheme {args.scheme!r}; use one of {' '.join(schemes)}")
    password = args.password
    if password is None:
        password = _ask("Enter password to verify: " if args.test else "Enter new password: ")
        if args.test is None and _ask("Retype new password: ") != password:
            raise Failed("the passwords do not match")
    if not password:
        raise Failed("an empty password is never accepted")
    if args.test is not None:
        with log_lines() as why:
            ok = verify_password(password, args.test)
        emit(out, args, [{"hash": args.test, "verified": ok}],
             lambda row: f"{row['hash']} ({'verified' if ok else 'does not match'})")
        if not ok:
            for line in why:
                print(f"imapd-admin: {line}", file=err)
        return 0 if ok else EX_NOTFOUND
    from imapd.auth.schemes import hash_password

    try:
        hashed = hash_password(password, args.scheme)
    except ValueError as e:
        raise Failed(str(e)) from None
    emit(out, args, [{"scheme": args.scheme, "hash": hashed}], lambda row: row["hash"])
    return 0


def _record_row(site: Site, record) -> dict:
    """The userdb fields of C{record} and what the daemon makes of them."""
    from imapd.tap import _quota_policy
    from storage.location import parse_location

    location = site.location(record)
    limits = _quota_policy(site.config.quota).limits_for(record.name, record)
    row = {"uid": record.uid, "gid": record.gid, "home": record.home, "mail": location}
    try:
        row["mail_root"] = parse_location(location, record.name, record.home).root
    except Exception as e:  # the location's own error text; the login fails the same way
        row["mail_root"] = f"unusable: {e}"
    row["quota_storage_kib"] = limits.storage
    row["quota_messages"] = limits.messages
    row.update({k: v for k, v in sorted(record.extra.items())})
    return row


def _text(row: dict) -> str:
    return " ".join(f"{key}={'-' if value is None else value}" for key, value in row.items())


def _user(config, args, out, err):
    def one(site, name):
        record = site.lookup(name)
        return [{"user": record.name, **_record_row(site, record)}]

    rows, status = run_per_user(config, args, err, one)
    emit(out, args, rows, _text)
    return status


def _auth_test(config, args, out, err):
    from twisted.cred.error import UnauthorizedLogin

    site = Site(config)
    password = args.password if args.password is not None else _ask("Password: ")
    results = []
    with log_lines() as why:
        d = site.authenticator.authenticate(args.name.encode("utf-8"),
                                            password.encode("utf-8"))
        d.addBoth(results.append)
    if not results:
        # Every call above is inline (Site's runner): nothing is pending.
        raise Failed("the authenticator did not answer")
    result = results[0]
    if not hasattr(result, "name"):
        if result.check(UnauthorizedLogin) is None:
            raise Failed(f"authentication failed: {result.getErrorMessage()}")
        # The refusal's own reason (LoginRefused), else what was logged.
        given = getattr(result.value, "reason", None)
        reason = (f"Authentication refused for {args.name!r}: {given}" if given
                  else "; ".join(why) or "refused")
        emit(out, args, [{"user": args.name, "result": "fail", "reason": reason}],
             lambda row: f"auth fail: {row['user']}: {row['reason']}")
        return EX_NOTFOUND
    row = {"user": result.name, "result": "ok", **_record_row(site, result)}
    emit(out, args, [row], lambda row: "auth succeeded: " + _text(
        {k: v for k, v in row.items() if k != "result"}))
    return 0

