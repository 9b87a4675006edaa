"""LOGIN, AUTHENTICATE and STARTTLS (RFC 3501 section 6.2, RFC 4959, RFC 4616)."""

import base64


def test_login_ok_reports_capabilities(conv):
    """A good LOGIN answers OK with the post-login CAPABILITY code (RFC 3501 7.1)."""
    conv.script(
        """
        C: a1 LOGIN demo secret
        S: a1 OK [CAPABILITY IMAP4rev1 {{.*}}UIDPLUS MOVE{{.*}}] Logged in
        """
    )
    assert conv.proto.state == "auth"


def test_failed_login_is_delayed(conv):
    """A wrong password is answered only after the configured delay, with AUTHENTICATIONFAILED."""
    conv.send(b"a1 LOGIN demo wrong\r\n")
    assert conv.lines() == []
    conv.clock.advance(conv.context.limits.failed_login_delay)
    assert conv.lines() == ["a1 NO [AUTHENTICATIONFAILED] Authentication failed."]
    assert conv.proto.state == "nonauth"


def test_too_many_failed_logins_disconnect(conv):
    """After max_failed_logins failures the server says BYE and closes."""
    for i in range(conv.context.limits.max_failed_logins):
        conv.send(b"a%d LOGIN demo wrong\r\n" % i)
        conv.clock.advance(conv.context.limits.failed_login_delay)
    assert conv.lines()[-1] == "* BYE Too many failed logins"
    assert conv.transport.disconnecting


def test_starttls_discards_pipelined_plaintext(conv):
    """RFC 3501 6.2.1: commands pipelined after STARTTLS are dropped, not run."""
    conv.send(b"a1 STARTTLS\r\na2 LOGIN demo secret\r\n")
    assert conv.lines() == ["a1 OK Begin TLS negotiation now"]
    assert conv.transport.tls_started
    assert conv.proto.state == "nonauth"
    conv.script(
        """
        C: a3 CAPABILITY
        S: * CAPABILITY IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR ID ENABLE IDLE AUTH=PLAIN AUTH=LOGIN
        S: a3 OK CAPABILITY completed
        C: a4 STARTTLS
        S: a4 BAD TLS is already active
        """
    )


def test_literal_before_login_is_limited(conv):
    """Before login a literal above the small pre-auth limit is refused before it is read."""
    limit = conv.context.limits.max_literal_unauth
    lines = conv.transact(b"a1 LOGIN demo {%d}" % (limit + 1))
    assert lines[-1].startswith("a1 BAD [TOOBIG]") or lines[-1].startswith("a1 NO [TOOBIG]"), lines
    assert not any(l.startswith("+") for l in lines)


def test_authenticate_plain_with_initial_response(conv):
    """RFC 4959 SASL-IR: AUTHENTICATE PLAIN with the credentials on the command line."""
    ir = base64.b64encode(b"\0demo\0secret").decode()
    conv.script(
        f"""
        C: a1 AUTHENTICATE PLAIN {ir}
        S: a1 OK [CAPABILITY {{{{.*}}}}] Logged in
        """
    )


def test_authenticate_login_with_challenges(conv):
    """The LOGIN mechanism asks for user then password in base64 continuations."""
    conv.send(b"a1 AUTHENTICATE LOGIN\r\n")
    assert conv.lines() == ["+ " + base64.b64encode(b"Username:").decode()]
    conv.send(base64.b64encode(b"demo") + b"\r\n")
    assert conv.lines() == ["+ " + base64.b64encode(b"Password:").decode()]
    conv.send(base64.b64encode(b"secret") + b"\r\n")
    assert conv.lines()[-1].startswith("a1 OK [CAPABILITY")


def test_authenticate_cancel(conv):
    """RFC 3501 6.2.2: a '*' response cancels with BAD."""
    conv.send(b"a1 AUTHENTICATE PLAIN\r\n")
    # RFC 3501 continue-req is "+" SP base64: an empty challenge keeps the space.
    assert conv.transport.value() == b"+ \r\n"
    conv.output()
    conv.send(b"*\r\n")
    assert conv.lines()[-1].startswith("a1 BAD")
    assert conv.proto.state == "nonauth"


def test_login_failure_and_logout_are_logged_alike(conv):
    """
    One log line each for a failed login, a login and a logout, with user,
    remote address, session id, bytes in/out and duration, and never the
    password.
    """
    from twisted.logger import globalLogPublisher

    events = []
    globalLogPublisher.addObserver(events.append)
    try:
        conv.send(b"a1 LOGIN demo wrong-pw\r\n")
        conv.clock.advance(conv.context.limits.failed_login_delay)
        conv.ok("a2 LOGIN demo secret")
        conv.send(b"a3 LOGOUT\r\n")
        conv.proto.connectionLost(None)
    finally:
        globalLogPublisher.removeObserver(events.append)
    ours = [e for e in events if e.get("event") in ("login", "login failed", "logout")]
    assert [e["event"] for e in ours] == ["login failed", "login", "logout"]
    for e in ours:
        assert e["user"] == "demo" and e["remote"].startswith("127.0.0.1")
        assert e["session"] == conv.proto.session_id
        assert e["bytes_in"] > 0 and e["bytes_out"] > 0 and e["duration"] >= 0
    assert not any("wrong-pw" in repr(e) or "secret" in repr(e) for e in ours)


def test_password_database_unavailable_is_no_unavailable(conv):
    """
    A password database that cannot answer (the LDAP directory is down,
    imapd.auth.errors.AuthUnavailable) is RFC 5530 UNAVAILABLE, answered
    at once: not AUTHENTICATIONFAILED, not delayed, not counted against the
    session or the address, and the log line says why.
    """
    from twisted.cred.checkers import ICredentialsChecker
    from twisted.internet import defer
    from twisted.logger import globalLogPublisher
    from zope.interface import implementer

    from imapd.auth.errors import AuthUnavailable

    @implementer(ICredentialsChecker)
    class Down:
        credentialInterfaces = conv.context.portal.listCredentialsInterfaces()

        def requestAvatarId(self, credentials):
            return defer.fail(AuthUnavailable("no LDAP server answered: ldap://ldap1: refused"))

    portal = conv.context.portal
    saved = dict(portal.checkers)
    for iface in saved:
        portal.checkers[iface] = Down()
    events = []
    globalLogPublisher.addObserver(events.append)
    try:
        for i in range(conv.context.limits.max_failed_logins + 1):
            assert conv.transact(f"a{i} LOGIN demo secret") == [
                f"a{i} NO [UNAVAILABLE] Authentication is unavailable now; try again"]
    finally:
        globalLogPublisher.removeObserver(events.append)
        portal.checkers.update(saved)
    assert not conv.transport.disconnecting
    assert conv.proto._failed_logins == 0
    assert not conv.context.login_failures.blocked("127.0.0.1", conv.clock.seconds(), 1, 60)
    ours = [e for e in events if e.get("event") == "login unavailable"]
    assert ours and "ldap://ldap1" in ours[0]["reason"]
    # Once the directory answers again, the login works.
    conv.ok("b1 LOGIN demo secret")


def test_store_error_at_login_is_logged_without_paths(conv, mail_root):
    """
    Issue 16 item 2: the password is good but the mail store cannot be
    opened (here the user's mail root is a regular file).  The client
    gets C{NO [UNAVAILABLE]} without any server path; the log has one
    error line with the user, the session id and the store's reason.
    """
    from twisted.logger import LogLevel, capturedLogs, formatEvent

    (mail_root / "demo").write_text("not a directory")
    with capturedLogs() as events:
        lines = conv.transact("a1 LOGIN demo secret")
    assert lines == ["a1 NO [UNAVAILABLE] Your mail cannot be opened now; try again later"]
    assert str(mail_root) not in " ".join(lines)
    assert conv.proto.state == "nonauth"
    errors = [formatEvent(e) for e in events if e["log_level"] == LogLevel.error]
    assert len(errors) == 1, errors
    assert "user=demo" in errors[0] and f"session={conv.proto.session_id}" in errors[0]
    assert str(mail_root / "demo") in errors[0]


def test_created_mail_root_is_logged(conv, mail_root):
    """
    Issue 16 item 2: a missing mail root is created at the first login,
    and the log says so (a mistyped location or an unmounted share
    should not fill a disk silently).
    """
    from twisted.logger import capturedLogs, formatEvent

    with capturedLogs() as events:
        conv.ok("a1 LOGIN demo secret")
    created = [formatEvent(e) for e in events if "Created the mail root" in formatEvent(e)]
    assert created == [f"Created the mail root {mail_root / 'demo'} for user demo"]
    with capturedLogs() as events:
        conv.ok("a2 LOGOUT")
    assert not [e for e in events if "Created the mail root" in formatEvent(e)]
