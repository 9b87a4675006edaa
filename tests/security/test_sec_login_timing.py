# -*- test-case-name: tests.security.test_sec_login_timing -*-
"""
Issue 18 item 7: user enumeration by timing, and failed logins per
remote address.  Against the real daemon on loopback.

 - Users with SHA512-CRYPT, bcrypt and Argon2i hashes and an unknown
   user: a wrong password is answered after the same time for all four
   (before: the unknown user was checked against a SHA512-CRYPT dummy
   only, so an Argon2i user answered about 0.15 s later here).
 - After C{max_failed_logins_per_address} failures, over several
   connections, the address gets BYE at once, even with the right
   password, until failures decay.
"""

from __future__ import annotations

import statistics
import time

from sec_content_helpers import Client, start_server


def _passwd(root, users: dict[str, str]) -> None:
    (root / "passwd").write_text("".join(
        f"{user}:{stored}::::{root / 'home' / user}::\n" for user, stored in users.items()))


def _hashes() -> dict[str, str]:
    import bcrypt
    from argon2.low_level import Type, hash_secret

    from imapd.auth.schemes import hash_password
    from sec_content_helpers import PASSWORD, USER

    salt = b"0123456789abcdef"
    argon = hash_secret(b"secret", salt, time_cost=3, memory_cost=16384, parallelism=1,
                        hash_len=32, type=Type.I).decode()
    return {
        USER: hash_password(PASSWORD, "SHA512-CRYPT"),
        "blf": "{BLF-CRYPT}" + bcrypt.hashpw(b"secret", bcrypt.gensalt(9)).decode(),
        "argon": "{ARGON2I}" + argon,
    }


def _failure_time(server, user: str, rounds: int) -> float:
    """Median seconds from sending LOGIN with a wrong password to its NO."""
    times = []
    c = None
    for i in range(rounds):
        if i % 2 == 0:
            if c is not None:
                c.close()
            c = Client(server)
        spent, out = c.timed("t%d" % i, b'LOGIN "%s" "wrong-password"' % user.encode())
        assert b" NO " in out, out
        times.append(spent)
    c.close()
    return statistics.median(times)


def test_failure_time_does_not_tell_users_or_schemes(tmp_path, tls_files):
    """
    With failed_login_delay 0.6 s, the four kinds of user answer a wrong
    password within 80 ms of each other (before: the delay came after
    the check, so the Argon2i user answered later by its verification).
    """
    server = start_server(tmp_path, tls_files, {"limits": {
        "failed_login_delay": 0.6, "max_failed_logins_per_address": 0}})
    try:
        _passwd(tmp_path, _hashes())
        time.sleep(2.1)  # the passwd-file is re-read once its mtime is settled
        _failure_time(server, "nobody-here", 2)  # warm-up: the file is read
        medians = {user: _failure_time(server, user, 4)
                   for user in ("nobody-here", "alice", "blf", "argon")}
        spread = max(medians.values()) - min(medians.values())
        assert spread < 0.08, medians
    finally:
        server.daemon.stop()


def test_checker_pads_every_refusal_to_the_slowest_scheme(tmp_path, monkeypatch):
    """
    The checker alone (failed_login_delay aside): with verifications that
    cost 0.01 s (SHA512-CRYPT), 0.2 s (bcrypt) and 0.5 s (Argon2) on a fake
    clock, an unknown user, each known user with a wrong password, a user
    with no password and a non-UTF-8 name are all refused after exactly
    the same time, which covers the slowest verification; a success is
    not delayed.
    """
    from twisted.cred.credentials import UsernamePassword
    from twisted.cred.error import UnauthorizedLogin

    from imapd.auth import checker as checker_module
    from imapd.auth.checker import PasswdFileChecker
    from imapd.auth.passwdfile import PasswdFile

    costs = {"{SHA512-CRYPT}": 0.01, "{BLF-CRYPT}": 0.2, "{ARGON2I}": 0.5}
    now = [0.0]
    real_verify = checker_module.verify_password

    def verify(password, stored, **kw):
        now[0] += next(c for prefix, c in costs.items() if stored.startswith(prefix))
        return real_verify(password, stored, **kw)
    monkeypatch.setattr(checker_module, "verify_password", verify)
    users = _hashes()
    users["nopw"] = ""
    _passwd(tmp_path, users)
    checker = PasswdFileChecker(PasswdFile(tmp_path / "passwd"), runner=lambda f, *a: f(*a))
    checker.clock = lambda: now[0]
    checker.sleep = lambda s: now.__setitem__(0, now[0] + s)

    def attempt(user, password):
        start = now[0]
        failures = []
        d = checker.requestAvatarId(UsernamePassword(user, password))
        d.addErrback(lambda f: failures.append(f.trap(UnauthorizedLogin)))
        return now[0] - start, bool(failures)

    attempt("nobody", b"x")  # the first check measures the file's costs
    spent = {user: attempt(user, b"wrong") for user in
             ("nobody", "alice", "blf", "argon", "nopw", b"\xff\xfe")}
    assert all(failed for _t, failed in spent.values()), spent
    times = {round(t, 9) for t, _f in spent.values()}
    assert len(times) == 1 and times.pop() >= 0.5, spent
    ok_time, failed = attempt("argon", b"secret")
    assert not failed and ok_time == 0.5


def test_failed_logins_per_address_across_connections(tmp_path, tls_files):
    """
    Limit 3, one failure forgotten per 4 s: failures over several
    connections (two per connection) soon make the address get BYE, then
    BYE even for the right password; another loopback address still logs
    in; once a failure is forgotten the right password works again.
    """
    server = start_server(tmp_path, tls_files, {"limits": {
        "failed_login_delay": 0.01, "max_failed_logins_per_address": 3,
        "failed_login_decay": 4.0}})
    try:
        answers = []
        c = None
        for n in range(6):
            if n % 2 == 0:
                if c is not None:
                    c.close()
                c = Client(server)
            out = c.command("f%d" % n, b'LOGIN "alice" "wrong"')
            answers.append(out)
            if b"BYE" in out:
                break
        c.close()
        assert b"* BYE Too many failed logins from your address" in answers[-1], answers
        assert len(answers) <= 5, answers
        c = Client(server)
        out = c.command("x1", b'LOGIN "%s" "%s"' % (server.user.encode(),
                                                     server.password.encode()))
        assert b"* BYE Too many failed logins from your address" in out, out
        c.close()
        # Another address (the IPv4 loopback has a whole /8) is not affected.
        import socket
        s = socket.create_connection((server.host, server.port), source_address=("127.0.0.2", 0))
        s.settimeout(10)
        data = b""
        s.sendall(b'a1 LOGIN "%s" "%s"\r\n' % (server.user.encode(), server.password.encode()))
        while b"a1 " not in data:
            data += s.recv(4096)
        assert b"a1 OK" in data, data
        s.close()
        time.sleep(5)  # a failure forgotten: one attempt allowed again
        c = Client(server)
        assert b"l1 OK" in c.login(), "login after decay"
        c.close()
    finally:
        server.daemon.stop()
