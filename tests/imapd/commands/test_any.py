"""CAPABILITY, NOOP, LOGOUT, ID and ENABLE (RFC 3501 section 6.1, RFC 2971, RFC 5161)."""


def test_capability_before_login(conv):
    """Before login we offer STARTTLS and AUTH= mechanisms, and the tagged OK follows."""
    conv.script(
        """
        C: a1 CAPABILITY
        S: * CAPABILITY IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR ID ENABLE IDLE STARTTLS AUTH=PLAIN AUTH=LOGIN
        S: a1 OK CAPABILITY completed
        """
    )


def test_logindisabled_without_tls(conv):
    """Without TLS and without allow-plaintext, LOGINDISABLED is advertised and LOGIN refused."""
    conv.context.allow_plaintext_auth = False
    conv.script(
        """
        C: a1 CAPABILITY
        S: * CAPABILITY IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR ID ENABLE IDLE STARTTLS LOGINDISABLED
        S: a1 OK CAPABILITY completed
        C: a2 LOGIN demo secret
        S: a2 NO [PRIVACYREQUIRED] Plaintext authentication is disabled; use STARTTLS first
        """
    )


def test_noop_and_logout(conv):
    """NOOP answers OK; LOGOUT sends BYE then the tagged OK and closes."""
    conv.script(
        """
        C: a1 NOOP
        S: a1 OK NOOP completed
        C: a2 LOGOUT
        S: * BYE Logging out
        S: a2 OK LOGOUT completed
        """
    )
    assert conv.transport.disconnecting


def test_id(conv):
    """RFC 2971: ID answers with our name whatever the client sent."""
    conv.script(
        """
        C: a1 ID ("name" "test-client")
        S: * ID ("name" "imapd" "vendor" "imapd developers")
        S: a1 OK ID completed
        """
    )


def test_enable_unknown_is_ignored(authed):
    """RFC 5161 3.1: unknown capabilities are ignored, ENABLED lists none."""
    authed.script(
        """
        C: a1 ENABLE FOO
        S: * ENABLED
        S: a1 OK ENABLE completed
        """
    )


def test_unknown_command_is_bad(conv):
    """A command we do not know gets BAD naming it, with the client's tag."""
    lines = conv.transact("a1 FROBNICATE")
    assert lines[-1].startswith("a1 BAD")


def test_state_checked_before_handler(conv):
    """SELECT before login is refused by the dispatcher with BAD."""
    lines = conv.transact("a1 SELECT INBOX")
    assert lines == ["a1 BAD SELECT is not allowed before authentication"]


def test_autologout(conv):
    """RFC 3501 5.4: an idle unauthenticated connection is closed with BYE."""
    conv.clock.advance(conv.context.limits.idle_timeout_unauth + 1)
    assert conv.lines() == ["* BYE Autologout; idle for too long"]
    assert conv.transport.disconnecting


def test_greeting_names_the_hostname(server):
    """
    Issue 16 item 3: the greeting carries the server's name (option
    hostname, --hostname), as Dovecot's login_greeting does; RFC 3501
    section 7.1.1 leaves the text free.  A name with control characters
    cannot break the line.
    """
    from tests.imapd.conftest import Conversation

    server.hostname = "mail.example.org"
    greeting = Conversation(server, server.reactor).lines()
    assert len(greeting) == 1
    assert greeting[0].startswith("* OK [CAPABILITY IMAP4rev1 ")
    assert greeting[0].endswith("] mail.example.org imapd ready.")
    server.hostname = "evil\r\n* BYE x"
    greeting = Conversation(server, server.reactor).lines()
    assert len(greeting) == 1 and greeting[0].endswith(" imapd ready.")
