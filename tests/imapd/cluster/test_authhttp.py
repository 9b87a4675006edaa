"""
The nginx auth_http service: headers as ngx_mail_auth_http_module sends
and reads them (URL-escaped credentials, Auth-Status/Server/Port,
Auth-Wait on failure and none after the last allowed attempt).
"""

import pytest
from twisted.cred.error import UnauthorizedLogin
from twisted.internet import defer, task
from twisted.web.test.requesthelper import DummyRequest

from imapd.auth.userdb import UserRecord
from imapd.cluster.authhttp import AuthHTTPResource
from imapd.cluster.owner import Directory
from imapd.cluster.table import HostsFile
from imapd.server import SessionLimits


class Passwords:
    """An authenticator over a dict, recording what it was asked."""

    def __init__(self, users):
        self.users = users
        self.asked = []

    def authenticate(self, user: bytes, password: bytes):
        self.asked.append((user, password))
        name = user.decode()
        if self.users.get(name) != password.decode():
            return defer.fail(UnauthorizedLogin("no"))
        return defer.succeed(UserRecord(name, None, None, None, {}))


@pytest.fixture
def directory(tmp_path):
    hosts = HostsFile(str(tmp_path / "hosts.json"), fsync=False)
    for address in ("127.0.0.2", "127.0.0.3", "127.0.0.4"):
        hosts.update(lambda t, a=address: t.add(a, port=10143))
    return Directory(hosts)


def request(resource, **headers):
    req = DummyRequest([b"auth"])
    for name, value in headers.items():
        req.requestHeaders.setRawHeaders(name.replace("_", "-"), [value])
    resource.render(req)
    assert req.finished
    return req.responseCode or 200, {
        k.decode(): v[0].decode() for k, v in req.responseHeaders.getAllRawHeaders()}


def make(directory, users=None, **kwargs):
    clock = task.Clock()
    kwargs.setdefault("runner", defer.maybeDeferred)
    return AuthHTTPResource(Passwords(users or {"alice": "pw 100%"}), directory,
                            clock=clock, **kwargs)


def test_success_names_the_owner(directory):
    """A good login answers OK with the owner's address and IMAP port."""
    code, headers = request(make(directory), Auth_Method="plain", Auth_User="alice",
                            Auth_Pass="pw%20100%25", Auth_Protocol="imap",
                            Auth_Login_Attempt="1", Client_IP="192.0.2.7")
    assert code == 200
    assert headers["Auth-Status"] == "OK"
    assert headers["Auth-Server"] == "127.0.0.3"  # CLUSTER.md: alice -> .3
    assert headers["Auth-Port"] == "10143"
    assert "Auth-Wait" not in headers


def test_credentials_are_url_unescaped(directory):
    """nginx escapes Auth-User/Auth-Pass; the checker gets the raw bytes."""
    resource = make(directory)
    request(resource, Auth_Method="login", Auth_User="alice", Auth_Pass="pw%20100%25")
    assert resource.authenticator.asked == [(b"alice", b"pw 100%")]


def test_failure_waits_then_closes(directory):
    """A wrong password: Auth-Wait; at the last allowed attempt no Auth-Wait."""
    resource = make(directory, wait=2, max_attempts=3)
    _, headers = request(resource, Auth_Method="plain", Auth_User="alice", Auth_Pass="no",
                         Auth_Login_Attempt="1")
    assert headers["Auth-Status"] == "[AUTHENTICATIONFAILED] Invalid login or password"
    assert headers["Auth-Wait"] == "2"
    assert "Auth-Server" not in headers
    _, headers = request(resource, Auth_Method="plain", Auth_User="alice", Auth_Pass="no",
                         Auth_Login_Attempt="3")
    assert "Auth-Wait" not in headers


@pytest.mark.parametrize("method", ["cram-md5", "apop", "external", "none", ""])
def test_methods_without_a_password_are_refused(directory, method):
    """Only plain and login carry a password we can check."""
    resource = make(directory)
    _, headers = request(resource, Auth_Method=method, Auth_User="alice", Auth_Salt="<1@x>")
    assert headers["Auth-Status"].startswith("[CANNOT]")
    assert resource.authenticator.asked == []


def test_no_host_up(directory):
    """Nobody up: a temporary failure with Auth-Wait, not a wrong-password one."""
    for a in ("127.0.0.2", "127.0.0.3", "127.0.0.4"):
        directory.hosts.update(lambda t, a=a: t.set_up(a, False))
    _, headers = request(make(directory), Auth_Method="plain", Auth_User="alice",
                         Auth_Pass="pw%20100%25")
    assert headers["Auth-Status"].startswith("[UNAVAILABLE]")
    assert headers["Auth-Wait"] == "3"


def test_shared_key(directory):
    """With auth_http_key set, a request without X-Auth-Key is refused unchecked."""
    resource = make(directory, key="s3cret")
    code, headers = request(resource, Auth_Method="plain", Auth_User="alice",
                            Auth_Pass="pw%20100%25")
    assert code == 403 and headers["Auth-Status"] != "OK"
    assert resource.authenticator.asked == []
    _, headers = request(resource, Auth_Method="plain", Auth_User="alice",
                         Auth_Pass="pw%20100%25", X_Auth_Key="s3cret")
    assert headers["Auth-Status"] == "OK"


def test_failures_counted_per_client_ip(directory):
    """The ledger counts Client-IP (the real client, not nginx) and then refuses."""
    limits = SessionLimits(max_failed_logins_per_address=2, failed_login_decay=60.0)
    resource = make(directory, limits=limits)
    for _ in range(2):
        request(resource, Auth_Method="plain", Auth_User="alice", Auth_Pass="x",
                Client_IP="192.0.2.9")
    _, headers = request(resource, Auth_Method="plain", Auth_User="alice",
                         Auth_Pass="pw%20100%25", Client_IP="192.0.2.9")
    assert headers["Auth-Status"] != "OK" and "Auth-Wait" not in headers
    assert len(resource.authenticator.asked) == 2
    # Another client is not affected.
    _, headers = request(resource, Auth_Method="plain", Auth_User="alice",
                         Auth_Pass="pw%20100%25", Client_IP="192.0.2.10")
    assert headers["Auth-Status"] == "OK"


def test_password_database_unavailable(directory):
    """
    The password database could not answer (LDAP down): [UNAVAILABLE] with
    Auth-Wait (nginx tries again), and the client's address is not counted.
    """
    from imapd.auth.errors import AuthUnavailable

    class Down(Passwords):
        def authenticate(self, user, password):
            self.asked.append((user, password))
            return defer.fail(AuthUnavailable("no LDAP server answered: ldap://l1: refused"))

    limits = SessionLimits(max_failed_logins_per_address=1, failed_login_decay=60.0)
    resource = AuthHTTPResource(Down({}), directory, clock=task.Clock(),
                                runner=defer.maybeDeferred, limits=limits)
    for _ in range(3):
        _, headers = request(resource, Auth_Method="plain", Auth_User="alice",
                             Auth_Pass="pw", Client_IP="192.0.2.9")
        assert headers["Auth-Status"].startswith("[UNAVAILABLE]")
        assert headers["Auth-Wait"] == "3"
    assert len(resource.authenticator.asked) == 3
