"""
End to end against a real directory: a private OpenLDAP (Debian's slapd on
its own slapd.conf, an MDB database in a temporary directory, loopback
ports, users loaded with ldapadd; L{tests.ldap_helpers}) and the real
daemon, in both server shapes (single process; master + login processes +
auth process + mail workers), with C{[auth] passdb = ["ldap"]} and no
passwd-file at all.

What a site expects of LDAP accounts (issue 19): logins by bind and by a
password attribute in several schemes, C{user_attrs} choosing the home and
the mail location, the filter keeping users out, a user name that tries
an LDAP injection matching nobody, a directory that goes away answering
C{NO [UNAVAILABLE]} (and the log naming it) and coming back, a second URI
taking over, and TLS (ldaps:// and StartTLS) checked against the site's
CA.
"""

from __future__ import annotations

import imaplib
import re
import shutil
import time

import pytest

from e2e_helpers import start_server
from imapd.auth.schemes import hash_password
from tests.ldap_helpers import (
    PEOPLE,
    READER_DN,
    READER_PASSWORD,
    Slapd,
    TestCA,
    ldif_user,
    needs_slapd,
)

SHAPES = {"single": True, "multi": False}

#: Only entries with employeeType=mail are mail users (a site's usual
#: way of keeping staff accounts or machines out).
FILTER = "(&(objectClass=posixAccount)(employeeType=mail)(uid=%u))"

#: name -> (password, stored userPassword scheme or a callable)
PASSWORDS = {
    "ssha": ("ssha secret", "SSHA"),
    "sha512": ("sha512 secret", "SHA512-CRYPT"),
    "plain": ("plain secret", "PLAIN"),
    "sha256": ("sha256 secret", "SHA256"),
}
#: A {CRYPT} value as OpenLDAP's own tools write it (crypt(3), $6$), and a
#: bare crypt(3) string without any scheme (Dovecot's default for LDAP).
CRYPT_USER, CRYPT_PASSWORD = "cryptu", "crypt secret"
BARE_USER, BARE_PASSWORD = "bareu", "bare secret"
#: A user whose mail location and home the directory gives.
PLACED_USER, PLACED_PASSWORD = "placed", "placed secret"
#: Outside the filter (employeeType=staff), correct password.
STAFF_USER, STAFF_PASSWORD = "staffu", "staff secret"
#: A user name that an unescaped "sol*" would match.
SOLO_USER, SOLO_PASSWORD = "solo", "solo secret"


def _crypt_value(password: str) -> str:
    # SHA512-CRYPT's data is a crypt(3) string: the same string under
    # {CRYPT} is what slappasswd -h {CRYPT} -c '$6$%.16s' writes.
    return "{CRYPT}" + hash_password(password, "SHA512-CRYPT").split("}", 1)[1]


def load_users(server: Slapd, root) -> None:
    entries = []
    uid = 20000
    for name, (password, scheme) in PASSWORDS.items():
        uid += 1
        entries.append(ldif_user(name, hash_password(password, scheme), uid))
    entries.append(ldif_user(CRYPT_USER, _crypt_value(CRYPT_PASSWORD), 20100))
    entries.append(ldif_user(BARE_USER, _crypt_value(BARE_PASSWORD)[len("{CRYPT}"):], 20101))
    entries.append(ldif_user(PLACED_USER, hash_password(PLACED_PASSWORD, "SSHA"), 20102,
                             home=f"{root}/homes/{PLACED_USER}",
                             location="maildir:~/LdapMail", quota="2M", quota_messages=30))
    entries.append(ldif_user(STAFF_USER, hash_password(STAFF_PASSWORD, "SSHA"), 20103,
                             employee_type="staff"))
    entries.append(ldif_user(SOLO_USER, hash_password(SOLO_PASSWORD, "SSHA"), 20104))
    server.add("\n".join(entries))


def start_directory(root, tls=None) -> Slapd:
    needs_slapd()
    server = Slapd(root, tls=tls).start()
    server.load_base()
    load_users(server, root)
    return server


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    return TestCA(tmp_path_factory.mktemp("ldap-ca"))


@pytest.fixture(scope="module")
def directory(tmp_path_factory, ca):
    """One slapd for the module (ldap:// and ldaps://, certificate by L{ca})."""
    root = tmp_path_factory.mktemp("ldap")
    server = start_directory(root / "slapd", tls=ca.issue("slapd"))
    yield server
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


def ldap_settings(uris, shape: str, root, **ldap) -> dict:
    (root / "reader.secret").write_text(READER_PASSWORD + "\n")
    section = {
        "uris": list(uris),
        "base": PEOPLE,
        "bind_dn": READER_DN,
        "bind_password_file": str(root / "reader.secret"),
        "pass_filter": FILTER,
        "user_filter": FILTER,
        "user_attrs": "homeDirectory=home,mailLocation=mail,mailQuota=quota_storage,"
                      "mailQuotaMessages=quota_messages",
        "timeout": 2.0,
    }
    section.update(ldap)
    return {
        "auth": {"passwd_file": "", "passdb": ["ldap"]},
        "ldap": section,
        "service": {"single_process": SHAPES[shape]},
    }


@pytest.fixture
def new_directory(tmp_path):
    """C{new_directory(name)}: a private slapd of the test's own, stopped after it."""
    started = []

    def start(name: str = "slapd") -> Slapd:
        started.append(start_directory(tmp_path / name))
        return started[-1]

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def new_imapd(tmp_path, tls_files):
    """C{new_imapd(settings, name)}: a daemon of the test's own, stopped after it."""
    started = []

    def start(settings: dict, name: str = "imapd"):
        root = tmp_path / name
        root.mkdir()
        started.append(start_server(root, tls_files, settings, name=name))
        return started[-1]

    yield start
    for server in started:
        server.daemon.stop()


def login(server, user: str, password: str):
    """C{(ok, text)} of a LOGIN over STARTTLS, the session logged out after."""
    imap = imaplib.IMAP4(server.host, server.port, timeout=30)
    try:
        imap.starttls(server.ssl_context())
        tag = imap._new_tag().decode()
        imap.send(f"{tag} LOGIN {_quoted(user)} {_quoted(password)}\r\n".encode())
        while True:
            line = imap.readline().decode("utf-8", "replace").rstrip("\r\n")
            if line.startswith(tag + " "):
                break
        ok = line.startswith(tag + " OK")
        if ok:
            imap.send(b"z LOGOUT\r\n")
        return ok, line[len(tag) + 1:]
    finally:
        imap.shutdown()


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def assert_logs_in(server, user, password):
    ok, text = login(server, user, password)
    assert ok, (user, text)


def assert_refused(server, user, password):
    ok, text = login(server, user, password)
    assert not ok and text.startswith("NO [AUTHENTICATIONFAILED]"), (user, text)


def assert_unavailable(server, user, password):
    ok, text = login(server, user, password)
    assert not ok and text.startswith("NO [UNAVAILABLE]"), (user, text)


def searches_for(slapd: Slapd, value: str) -> list[str]:
    """The SRCH lines of slapd's log whose filter holds C{value}."""
    return [line for line in slapd.log().splitlines()
            if " SRCH " in line and "filter=" in line and value in line]


def wait_for(predicate, seconds=10.0):
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


# -- logins by password attribute and by bind ------------------------------------


@pytest.fixture(scope="module", params=list(SHAPES))
def attr_server(request, tmp_path_factory, tls_files, directory):
    """The daemon checking {SCHEME} values of userPassword itself."""
    root = tmp_path_factory.mktemp(f"imapd-{request.param}")
    server = start_server(root, tls_files, ldap_settings([directory.uri], request.param, root),
                          name=f"imapd-{request.param}")
    yield server
    server.daemon.stop()


@pytest.mark.parametrize("user", [*PASSWORDS, CRYPT_USER, BARE_USER])
def test_password_attribute_in_each_scheme(attr_server, user):
    password = {CRYPT_USER: CRYPT_PASSWORD, BARE_USER: BARE_PASSWORD}.get(user) \
        or PASSWORDS[user][0]
    assert_logs_in(attr_server, user, password)
    assert_refused(attr_server, user, password + "x")


def test_wrong_password_is_refused_not_unavailable(attr_server):
    assert_refused(attr_server, "ssha", "sha512 secret")
    assert_refused(attr_server, "nobody-in-ldap", "ssha secret")
    log = attr_server.daemon.log()
    assert "Authentication refused for 'ssha': wrong password" in log
    assert "Authentication refused for 'nobody-in-ldap': not found in the LDAP directory" in log
    assert "ssha secret" not in log


def test_user_attrs_decide_home_and_mail_location(attr_server, directory):
    imap = imaplib.IMAP4(attr_server.host, attr_server.port, timeout=30)
    imap.starttls(attr_server.ssl_context())
    imap.login(PLACED_USER, PLACED_PASSWORD)
    subject = f"placed by ldap for {attr_server.daemon.name}".encode()
    message = b"From: a@example.org\r\nSubject: " + subject + b"\r\n\r\nhello\r\n"
    assert imap.append("INBOX", None, None, message)[0] == "OK"
    # The directory's quota attributes are the user's limits (RFC 9208).
    typ, data = imap.getquotaroot("INBOX")
    assert typ == "OK", data
    quota = b" ".join(d for part in data for d in (part if isinstance(part, list) else [part]))
    assert re.search(rb"STORAGE \d+ 2048", quota) and re.search(rb"MESSAGE \d+ 30", quota), data
    imap.logout()
    # homeDirectory is ~, mailLocation "maildir:~/LdapMail" the location.
    home = directory.root / "homes" / PLACED_USER
    files = [p for sub in ("new", "cur") for p in (home / "LdapMail" / sub).iterdir()]
    assert sum(b"Subject: " + subject in p.read_bytes() for p in files) == 1
    # Not in the configured [mail] location.
    assert not (attr_server.root / "mail" / PLACED_USER).exists()


def test_user_outside_the_filter_is_refused(attr_server, directory):
    assert_refused(attr_server, STAFF_USER, STAFF_PASSWORD)
    assert f"Authentication refused for {STAFF_USER!r}: not found" in attr_server.daemon.log()


def test_ldap_injection_matches_nobody(attr_server, directory):
    # Unescaped, "*)(uid=*" would make the filter match every entry and
    # "sol*" would find solo, whose password is given.
    assert_refused(attr_server, "*)(uid=*", SOLO_PASSWORD)
    assert_refused(attr_server, "sol*", SOLO_PASSWORD)
    assert_refused(attr_server, "solo)(uid=ssha", SOLO_PASSWORD)
    assert_logs_in(attr_server, SOLO_USER, SOLO_PASSWORD)
    # slapd received the values escaped (RFC 4515) and found nothing.
    log = directory.log()
    for escaped in (r"(uid=\2A\29\28uid=\2A)", r"(uid=sol\2A)", r"(uid=solo\29\28uid=ssha)"):
        lines = searches_for(directory, escaped)
        assert lines, (escaped, log[-3000:])
        for line in lines:
            conn_op = re.search(r"(conn=\d+ op=\d+) SRCH", line).group(1)
            assert re.search(re.escape(conn_op) + r" SEARCH RESULT .*nentries=0", log), line


@pytest.mark.parametrize("shape", list(SHAPES))
def test_login_by_bind(shape, tmp_path, new_imapd, directory):
    # auth_bind: slapd checks the password (here {SSHA} and {CRYPT}
    # values it verifies itself); the reader does not read userPassword.
    server = new_imapd(ldap_settings([directory.uri], shape, tmp_path, auth_bind=True,
                                     pass_attrs="uid=user"))
    assert_logs_in(server, "ssha", "ssha secret")
    assert_logs_in(server, CRYPT_USER, CRYPT_PASSWORD)
    assert_refused(server, "ssha", "wrong")
    assert_refused(server, "ssha", "")
    assert_refused(server, STAFF_USER, STAFF_PASSWORD)
    log = directory.log()
    assert f'BIND dn="uid=ssha,{PEOPLE}" method=128' in log
    assert f'BIND dn="uid={CRYPT_USER},{PEOPLE}" method=128' in log
    assert "Authentication refused for 'ssha': wrong password (bind as" in server.daemon.log()


# -- the directory going away ---------------------------------------------------


@pytest.mark.parametrize("shape", list(SHAPES))
def test_directory_down_is_unavailable_then_back(shape, tmp_path, new_directory, new_imapd):
    slapd = new_directory()
    server = new_imapd(ldap_settings([slapd.uri], shape, tmp_path))
    assert_logs_in(server, "ssha", "ssha secret")
    slapd.stop()
    # Not "wrong password": the directory did not answer.
    assert_unavailable(server, "ssha", "ssha secret")
    assert_unavailable(server, "ssha", "wrong password")
    log = server.daemon.log()
    assert f"LDAP server {slapd.uri} failed" in log
    # Not counted as failures, not delayed as one.
    assert "login failed" not in log.split("LDAP server")[-1]
    slapd.start()
    assert_logs_in(server, "ssha", "ssha secret")
    assert_refused(server, "ssha", "wrong password")


@pytest.mark.parametrize("shape", list(SHAPES))
def test_hung_directory_times_out_as_unavailable(shape, tmp_path, new_directory, new_imapd):
    slapd = new_directory()
    server = new_imapd(ldap_settings([slapd.uri], shape, tmp_path, timeout=1.0))
    assert_logs_in(server, "ssha", "ssha secret")
    slapd.pause()
    started = time.monotonic()
    assert_unavailable(server, "ssha", "ssha secret")
    assert time.monotonic() - started < 15
    assert f"LDAP server {slapd.uri} failed" in server.daemon.log()
    slapd.resume()
    assert_logs_in(server, "ssha", "ssha secret")


@pytest.mark.parametrize("shape", list(SHAPES))
def test_second_uri_takes_over(shape, tmp_path, new_directory, new_imapd):
    first, second = new_directory("first"), new_directory("second")
    server = new_imapd(ldap_settings([first.uri, second.uri], shape, tmp_path))
    assert_logs_in(server, "ssha", "ssha secret")
    assert searches_for(first, "(uid=ssha)") and not searches_for(second, "(uid=ssha)")
    first.stop()
    assert_logs_in(server, "plain", "plain secret")
    assert_refused(server, "plain", "wrong")
    assert searches_for(second, "(uid=plain)")
    assert f"LDAP server {first.uri} failed" in server.daemon.log()


# -- TLS --------------------------------------------------------------------------


@pytest.mark.parametrize("shape", list(SHAPES))
def test_ldaps_and_starttls_with_certificate_checks(shape, tmp_path, new_imapd, directory, ca):
    other_ca = TestCA(tmp_path / "other-ca", name="somebody else's CA")
    starttls_uri = f"ldap://localhost:{directory.port}"
    cases = {
        "ldaps": ([directory.tls_uri], {"tls_ca_cert_file": str(ca.cert_file)}),
        "starttls": ([starttls_uri], {"starttls": True, "tls_ca_cert_file": str(ca.cert_file)}),
        "ldaps-unknown-ca": ([directory.tls_uri],
                             {"tls_ca_cert_file": str(other_ca.cert_file)}),
        "starttls-unknown-ca": ([starttls_uri], {"starttls": True,
                                                 "tls_ca_cert_file": str(other_ca.cert_file)}),
    }
    for kind, (uris, options) in cases.items():
        server = new_imapd(ldap_settings(uris, shape, tmp_path, **options), name=f"imapd-{kind}")
        if "unknown" in kind:
            assert_unavailable(server, "ssha", "ssha secret")
            log = server.daemon.log()
            assert f"LDAP server {uris[0]} failed" in log
            assert "certificate verify failed" in log, log[-3000:]
        else:
            assert_logs_in(server, "ssha", "ssha secret")
            assert_refused(server, "ssha", "wrong")
        server.daemon.stop()


# -- the cache ----------------------------------------------------------------------


@pytest.mark.parametrize("shape", list(SHAPES))
def test_auth_cache_spares_the_directory(shape, tmp_path, new_directory, new_imapd):
    slapd = new_directory()
    settings = ldap_settings([slapd.uri], shape, tmp_path)
    settings["auth"].update({"cache_size": 100, "cache_ttl": 600.0,
                             "cache_negative_ttl": 600.0})
    server = new_imapd(settings)
    for _ in range(3):
        assert_logs_in(server, "ssha", "ssha secret")
        assert_refused(server, "plain", "wrong")
    # One search each: the repeated outcomes came from the cache.
    assert len(searches_for(slapd, "(uid=ssha)")) == 1
    assert len(searches_for(slapd, "(uid=plain)")) == 1
    # Another password is checked by the directory, not the cache.
    assert_logs_in(server, "plain", "plain secret")
    assert len(searches_for(slapd, "(uid=plain)")) == 2
    # With the directory down, a cached login still works; others are
    # unavailable.
    slapd.stop()
    assert_logs_in(server, "ssha", "ssha secret")
    assert_unavailable(server, "sha512", "sha512 secret")


def test_imapd_admin_shows_what_the_directory_returned(attr_server, directory):
    """
    imapd-admin user and auth test on the daemon's own configuration ask
    the same directory: the entry's DN, home, mail location and quota;
    a wrong password and an injection name are refused in one line.
    """
    import io
    import json

    from imapd.admin import main

    def admin(*argv):
        out, err = io.StringIO(), io.StringIO()
        status = main(["--config", str(attr_server.config), *argv], out, err)
        return status, out.getvalue(), err.getvalue()

    status, out, err = admin("user", "-u", PLACED_USER, "--json")
    assert status == 0, err
    [row] = json.loads(out)
    assert row["ldap_dn"] == f"uid={PLACED_USER},{PEOPLE}"
    assert row["home"] == str(directory.root / "homes" / PLACED_USER)
    assert row["mail"] == "maildir:~/LdapMail"
    assert (row["quota_storage_kib"], row["quota_messages"]) == (2048, 30)
    status, out, err = admin("auth", "test", PLACED_USER, PLACED_PASSWORD)
    assert status == 0 and out.startswith(f"auth succeeded: user={PLACED_USER}"), err
    assert f"ldap_dn=uid={PLACED_USER},{PEOPLE}" in out
    status, out, err = admin("auth", "test", PLACED_USER, "wrong")
    assert status == 1 and err.count("\n") <= 1
    assert admin("user", "-u", STAFF_USER)[0] == 1  # outside the filter
    assert admin("user", "-u", "*)(uid=*")[0] == 1
    status, out, err = admin("user", "-A")
    assert (status, out) == (2, "") and "cannot list" in err
