"""
LDAP as password and user database (L{imapd.auth.ldapdb},
L{imapd.auth.ldapconn}, L{imapd.auth.ldapsetup}), the chain of databases
and the authentication cache (L{imapd.auth.passdb}): the pure parts on
values, the directory parts against a private slapd (L{tests.ldap_helpers}),
the blocking calls made directly (the thread pool is the daemon's
business, tested end to end in tests/e2e/test_e2e_ldap.py).
"""

from __future__ import annotations

import time

import pytest
from twisted.cred.credentials import UsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet import defer

from conf import ConfigError, load_config
from imapd.auth import build_authenticator
from imapd.auth.errors import AuthUnavailable
from imapd.auth.ldapconn import RETRY_AFTER, Directory, DirectoryUnavailable, LDAPSettings
from imapd.auth.ldapdb import (
    LDAPPassdb,
    LDAPUserDB,
    escape_filter_value,
    expand_filter,
    parse_attr_map,
    record_from_entry,
)
from imapd.auth.passdb import AuthCache, ChainChecker, ChainUserDB
from imapd.auth.schemes import hash_password
from imapd.auth.userdb import UserRecord
from imapd.defaults import Effective
from tests.ldap_helpers import (  # noqa: F401 - fixture
    PEOPLE,
    READER_DN,
    READER_PASSWORD,
    Slapd,
    TestCA,
    ldif_user,
    needs_slapd,
    slapd,
)

FILTER = "(&(objectClass=posixAccount)(uid=%u))"
USER_ATTRS = (("homeDirectory", "home"), ("uidNumber", "uid"), ("gidNumber", "gid"),
              ("mailLocation", "mail"), ("mailQuota", "quota_storage"),
              ("mailQuotaMessages", "quota_messages"))


def now(d):
    """The result of an already fired Deferred (or raise its failure)."""
    results = []
    d.addBoth(results.append)
    assert results, "the Deferred has not fired"
    if hasattr(results[0], "raiseException"):
        results[0].raiseException()
    return results[0]


def run_now(f, *args):
    return defer.maybeDeferred(f, *args)


# -- filters and attribute maps ---------------------------------------------------


def test_escape_filter_value_rfc4515():
    assert escape_filter_value("*)(uid=*") == r"\2a\29\28uid=\2a"
    assert escape_filter_value("a\\b\0c") == r"a\5cb\00c"
    assert escape_filter_value("jörg@example.org") == "jörg@example.org"


def test_expand_filter_variables_are_escaped():
    template = "(&(uid=%n)(mailDomain=%d)(mail=%u)(x=%%)(y=%{user}))"
    assert expand_filter(template, "a*b@ex(ample)") == \
        r"(&(uid=a\2ab)(mailDomain=ex\28ample\29)(mail=a\2ab@ex\28ample\29)(x=%)" \
        r"(y=a\2ab@ex\28ample\29))"
    with pytest.raises(ValueError, match="unknown variable %x"):
        expand_filter("(uid=%x)", "a")


def test_parse_attr_map():
    assert parse_attr_map(" homeDirectory=home , mailLocation=mail,", ("home", "mail")) == \
        (("homeDirectory", "home"), ("mailLocation", "mail"))
    with pytest.raises(ValueError, match="unknown field 'shell'"):
        parse_attr_map("loginShell=shell", ("home",))
    with pytest.raises(ValueError, match="ATTRIBUTE=FIELD"):
        parse_attr_map("homeDirectory", ("home",))


def test_record_from_entry_maps_fields_and_skips_bad_values():
    entry = {"homedirectory": ["/home/ann"], "uidnumber": ["1234"], "gidnumber": ["x"],
             "maillocation": ["maildir:~/M"], "mailquota": ["2M"],
             "mailquotamessages": ["100"]}
    record = record_from_entry("ann", entry, USER_ATTRS, "uid=ann,o=x")
    assert record == UserRecord("ann", 1234, None, "/home/ann")
    assert record.extra == {"ldap_dn": "uid=ann,o=x", "userdb_mail": "maildir:~/M",
                            "userdb_quota_storage": "2048", "userdb_quota_messages": "100"}


@pytest.mark.parametrize("text, message", [
    ('[ldap]\nuser_filter = "uid=%u"\n', "ldap.user_filter.*no LDAP filter"),
    ('[ldap]\npass_filter = "(uid=%x)"\n', "ldap.pass_filter.*unknown variable %x"),
    ('[ldap]\nuser_attrs = "homeDirectory=house"\n', "ldap.user_attrs.*unknown field 'house'"),
    ('[auth]\npassdb = ["ldap", "nis"]\n', "auth.passdb.*unknown password database 'nis'"),
    ('[auth]\npassdb = ["ldap", "ldap"]\n', "auth.passdb.*twice"),
    ('[ldap]\nuris = ["http://ldap.example.org"]\n', "ldap.uris"),
])
def test_config_checks_filters_and_maps(tmp_path, text, message):
    path = tmp_path / "imapd.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(str(path))


def test_build_authenticator_needs_uris(tmp_path):
    path = tmp_path / "imapd.toml"
    path.write_text('[auth]\npassdb = ["ldap"]\n')
    config = load_config(str(path))
    effective = Effective("h", None, None, "", "maildir:~/M", str(tmp_path / "i"), True)
    with pytest.raises(ConfigError, match="ldap.uris.*is empty"):
        build_authenticator(config, effective)


# -- the chain and the cache ------------------------------------------------------


class _Checker:
    credentialInterfaces = ()

    def __init__(self, outcome):
        self.outcome = outcome
        self.calls = 0

    def requestAvatarId(self, credentials):
        self.calls += 1
        if isinstance(self.outcome, Exception):
            return defer.fail(self.outcome)
        return defer.succeed(self.outcome)


def test_chain_unavailable_is_not_a_refusal():
    down = _Checker(AuthUnavailable("ldap://a: refused"))
    no = _Checker(UnauthorizedLogin())
    creds = UsernamePassword(b"u", b"p")
    # A later database that refuses does not turn "down" into "wrong".
    with pytest.raises(AuthUnavailable):
        now(ChainChecker([down, no]).requestAvatarId(creds))
    with pytest.raises(AuthUnavailable):
        now(ChainChecker([no, down]).requestAvatarId(creds))
    # One that accepts wins.
    assert now(ChainChecker([down, _Checker(b"u")]).requestAvatarId(creds)) == b"u"
    with pytest.raises(UnauthorizedLogin):
        now(ChainChecker([no, no]).requestAvatarId(creds))


def test_chain_userdb():
    class DB:
        def __init__(self, result):
            self.result = result

        def lookup(self, name):
            if isinstance(self.result, Exception):
                raise self.result
            return self.result

    rec = UserRecord("u", None, None, "/h")
    assert ChainUserDB([DB(None), DB(rec)]).lookup("u") == rec
    assert ChainUserDB([DB(AuthUnavailable("x")), DB(rec)]).lookup("u") == rec
    with pytest.raises(AuthUnavailable):
        ChainUserDB([DB(AuthUnavailable("x")), DB(None)]).lookup("u")
    assert ChainUserDB([DB(None)]).lookup("u") is None


def test_auth_cache_ttls_and_size():
    clock = [0.0]
    cache = AuthCache(2, ttl=10, negative_ttl=5, clock=lambda: clock[0])
    rec = UserRecord("a", None, None, None)
    cache.put(b"a", b"pw", rec)
    cache.put(b"b", b"bad", None)
    assert cache.get(b"a", b"pw") == (True, rec)
    assert cache.get(b"a", b"other") == (False, None)
    assert cache.get(b"b", b"bad") == (True, None)
    clock[0] = 6
    assert cache.get(b"b", b"bad") == (False, None)  # negative ttl over
    assert cache.get(b"a", b"pw") == (True, rec)
    clock[0] = 11
    assert cache.get(b"a", b"pw") == (False, None)
    # At most two users: the least recently used goes.
    for name in (b"x", b"y", b"z"):
        cache.put(name, b"pw", rec)
    assert [cache.get(n, b"pw")[0] for n in (b"x", b"y", b"z")] == [False, True, True]


def test_authenticator_cache_keeps_outcomes_but_never_unavailable(tmp_path):
    from imapd.auth.authenticator import Authenticator

    rec = UserRecord("ann", None, None, "/h")
    checker = _Checker(rec)
    auth = Authenticator(checker, userdb=None, runner=run_now,
                         cache=AuthCache(10, 60, 60, clock=lambda: 0.0))
    assert now(auth.authenticate(b"ann", b"pw")) == rec
    assert now(auth.authenticate(b"ann", b"pw")) == rec
    assert checker.calls == 1
    checker.outcome = AuthUnavailable("down")
    with pytest.raises(AuthUnavailable):
        now(auth.authenticate(b"ann", b"other"))
    with pytest.raises(AuthUnavailable):
        now(auth.authenticate(b"ann", b"other"))
    assert checker.calls == 3  # not cached
    checker.outcome = UnauthorizedLogin()
    with pytest.raises(UnauthorizedLogin):
        now(auth.authenticate(b"ann", b"wrong"))
    with pytest.raises(UnauthorizedLogin):
        now(auth.authenticate(b"ann", b"wrong"))
    assert checker.calls == 4


# -- against slapd -----------------------------------------------------------------


def settings(server, **kw) -> LDAPSettings:
    values = dict(uris=(server.uri,), base=PEOPLE, bind_dn=READER_DN,
                  bind_password=READER_PASSWORD, timeout=2.0, pool_size=2)
    values.update(kw)
    return LDAPSettings(**values)


ANN_EXTRA = {"ldap_dn": f"uid=ann,{PEOPLE}", "userdb_mail": "maildir:~/Mail",
             "userdb_quota_storage": "1024", "userdb_quota_messages": "50"}


def add_ann(server) -> None:
    server.add(ldif_user("ann", hash_password("ann pw", "SSHA"), 10001, home="/srv/ann",
                         location="maildir:~/Mail", quota="1M", quota_messages=50))


def test_passdb_and_userdb_read_the_entry(slapd):
    add_ann(slapd)
    directory = Directory(settings(slapd))
    passdb = LDAPPassdb(directory, FILTER, False, (("uid", "user"), ("userPassword", "password")),
                        USER_ATTRS, run_now)
    record = now(passdb.requestAvatarId(UsernamePassword(b"ann", b"ann pw")))
    assert record == UserRecord("ann", 10001, 5000, "/srv/ann")
    assert record.extra == ANN_EXTRA
    with pytest.raises(UnauthorizedLogin):
        now(passdb.requestAvatarId(UsernamePassword(b"ann", b"wrong")))
    with pytest.raises(UnauthorizedLogin):
        now(passdb.requestAvatarId(UsernamePassword(b"*", b"ann pw")))
    found = LDAPUserDB(directory, FILTER, USER_ATTRS).lookup("ann")
    assert found == record and found.extra == ANN_EXTRA
    assert LDAPUserDB(directory, FILTER, USER_ATTRS).lookup("a*") is None
    # One connection, bound once as the reader, reused by every search.
    assert directory.opened == 1 and directory.searches == 5


def test_two_entries_for_one_name_refuse(slapd):
    add_ann(slapd)
    slapd.add(ldif_user("ann", hash_password("ann pw", "SSHA"), 10002, ou="other"))
    directory = Directory(settings(slapd, base="dc=example,dc=org"))
    passdb = LDAPPassdb(directory, FILTER, False, (("userPassword", "password"),), (), run_now)
    with pytest.raises(UnauthorizedLogin):
        now(passdb.requestAvatarId(UsernamePassword(b"ann", b"ann pw")))
    # Limited to ou=people by base, the one entry is found.
    passdb = LDAPPassdb(Directory(settings(slapd)), FILTER, False,
                        (("userPassword", "password"),), (), run_now)
    assert now(passdb.requestAvatarId(UsernamePassword(b"ann", b"ann pw"))).name == "ann"


def test_auth_bind_never_sends_an_empty_password(slapd):
    add_ann(slapd)
    directory = Directory(settings(slapd))
    dn = f"uid=ann,{PEOPLE}"
    assert directory.check_bind(dn, b"ann pw")
    assert not directory.check_bind(dn, b"nope")
    # RFC 4513 5.1.2: an empty password would be an unauthenticated bind,
    # which slapd answers with success.
    assert not directory.check_bind(dn, b"")
    assert directory.binds == 2
    # Password binds have their own connections: the reader's stay bound.
    assert len(LDAPUserDB(directory, FILTER, ()).lookup("ann").name) == 3


def test_failover_order_and_retry_after(slapd, tmp_path):
    add_ann(slapd)
    clock = [100.0]
    dead = "ldap://127.0.0.1:1"
    directory = Directory(settings(slapd, uris=(dead, slapd.uri)), clock=lambda: clock[0])
    assert directory.search("(uid=ann)", ("uid",))[0][0] == f"uid=ann,{PEOPLE}"
    opened = directory.opened
    assert opened == 2  # the dead one tried first
    directory.search("(uid=ann)", ("uid",))
    assert directory.opened == opened  # the dead one skipped, the pooled one reused
    clock[0] += RETRY_AFTER + 1
    directory.search("(uid=ann)", ("uid",))
    assert directory.opened == opened + 1  # tried again after RETRY_AFTER


def test_all_down_names_each_server_then_recovers(slapd):
    add_ann(slapd)
    other = Slapd(slapd.root.parent / "other")
    try:
        directory = Directory(settings(slapd, uris=(other.uri, slapd.uri)))
        directory.search("(uid=ann)", ("uid",))
        opened = directory.opened
        slapd.stop()
        # The one marked down is tried too, last, when the others fail.
        with pytest.raises(DirectoryUnavailable) as caught:
            directory.search("(uid=ann)", ("uid",))
        assert other.uri in str(caught.value) and slapd.uri in str(caught.value)
        assert str(caught.value).index(slapd.uri) < str(caught.value).index(other.uri)
        other.start()
        other.load_base()
        add_ann(other)
        # Every server failed within RETRY_AFTER: they are tried anyway.
        assert directory.search("(uid=ann)", ("uid",))
        # Opened: slapd afresh and other (failing), then other (answering).
        assert directory.opened == opened + 3
    finally:
        other.stop()


def test_hung_server_times_out(slapd):
    add_ann(slapd)
    directory = Directory(settings(slapd, timeout=1.0))
    directory.search("(uid=ann)", ("uid",))
    slapd.pause()
    try:
        started = time.monotonic()
        with pytest.raises(DirectoryUnavailable, match=slapd.uri):
            directory.search("(uid=ann)", ("uid",))
        # The pooled connection waits one timeout, the fresh one another.
        assert time.monotonic() - started < 6
    finally:
        slapd.resume()


def test_tls_checks_the_host_name(tmp_path):
    needs_slapd()
    ca = TestCA(tmp_path / "ca")
    server = Slapd(tmp_path / "slapd", tls=ca.issue("slapd", hosts=("ldap.example.test",),
                                                     addresses=()))
    server.start()
    try:
        server.load_base()
        add_ann(server)
        # The certificate is good (the CA is trusted) but names another host.
        directory = Directory(settings(server, uris=(f"ldaps://127.0.0.1:{server.tls_port}",),
                                       ca_file=str(ca.cert_file)))
        with pytest.raises(DirectoryUnavailable, match="ldaps://127.0.0.1"):
            directory.search("(uid=ann)", ("uid",))
        directory = Directory(settings(server, uris=(f"ldap://127.0.0.1:{server.port}",),
                                       starttls=True, ca_file=str(ca.cert_file)))
        with pytest.raises(DirectoryUnavailable, match="ldap://127.0.0.1"):
            directory.search("(uid=ann)", ("uid",))
    finally:
        server.stop()


def test_admin_view_inline_runner(slapd, tmp_path):
    """
    What C{imapd-admin auth test} and C{user} build (the daemon's
    build_authenticator with an inline runner): the LDAP check runs
    inline too, and the record carries what the directory returned.
    """
    add_ann(slapd)
    (tmp_path / "secret").write_text(READER_PASSWORD)
    path = tmp_path / "imapd.toml"
    path.write_text(f"""
[auth]
passdb = ["ldap"]
[ldap]
uris = ["{slapd.uri}"]
base = "{PEOPLE}"
bind_dn = "{READER_DN}"
bind_password_file = "{tmp_path / 'secret'}"
user_attrs = "{",".join(f"{a}={f}" for a, f in USER_ATTRS)}"
""")
    config = load_config(str(path))
    effective = Effective("h", None, None, "", "maildir:~/M", str(tmp_path / "i"), True)
    auth = build_authenticator(config, effective, runner=lambda f, *a: f(*a))
    record = now(auth.authenticate(b"ann", b"ann pw"))
    assert (record.name, record.uid, record.gid, record.home) == ("ann", 10001, 5000, "/srv/ann")
    assert record.extra == ANN_EXTRA
    looked_up = auth.userdb.lookup("ann")
    assert looked_up == record and looked_up.extra == ANN_EXTRA
    with pytest.raises(UnauthorizedLogin):
        now(auth.authenticate(b"ann", b"wrong"))
    # The quota the directory gives is the user's limit (KiB, messages).
    from imapd.server import QuotaPolicy

    limits = QuotaPolicy().limits_for("ann", record)
    assert (limits.storage, limits.messages) == (1024, 50)
