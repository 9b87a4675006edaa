"""
URLAUTH (RFC 4467) and URLAUTH=BINARY (RFC 5524): GENURLAUTH makes an
INTERNAL token from a key kept in the user's mail store, URLFETCH gives
the data (plain, BODY, BINARY, BODYPARTSTRUCTURE) of a URL that verifies
and NIL for one that does not, RESETKEY invalidates; on each store.
Expected tokens are recomputed here with Python's own hmac from the key
file, independently of the server's code.
"""

import hashlib
import hmac
import re

import pytest

QP = (b"From: a@example.org\r\nSubject: part\r\nMIME-Version: 1.0\r\n"
      b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
      b"--b\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nfirst part\r\n"
      b"--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
      b"AAECAw==\r\n--b--\r\n")


def _setup(authed):
    authed.append("a1", QP)
    line = authed.ok("s1 STATUS INBOX (UIDVALIDITY)")[0]
    return int(re.search(r"UIDVALIDITY (\d+)", line).group(1))


def _gen(conv, rump: str, tag="g1") -> str:
    lines = conv.ok(f'{tag} GENURLAUTH "{rump}" INTERNAL')
    m = re.fullmatch(r'\* GENURLAUTH "([^"]+)"', lines[0])
    assert m, lines
    return m.group(1)


def _key_file(mail_root, store_kind):
    home = mail_root / "demo"
    return home / ("imapd-urlauth-keys" if store_kind == "maildir" else ".imapd/urlauth-keys")


def test_advertised(authed):
    """Both capabilities once logged in."""
    caps = authed.ok("c1 CAPABILITY")[0].split()
    assert "URLAUTH" in caps and "URLAUTH=BINARY" in caps


def test_genurlauth_token_is_hmac_of_the_rump_under_the_stored_key(authed, mail_root, store_kind):
    """The token is 01 + HMAC-SHA1(mailbox key, rump URL); the key is in the store, mode 0600."""
    v = _setup(authed)
    rump = f"imap://demo@example.org/INBOX;UIDVALIDITY={v}/;UID=1/;SECTION=1;URLAUTH=anonymous"
    full = _gen(authed, rump)
    assert full.startswith(rump + ":INTERNAL:")
    path = _key_file(mail_root, store_kind)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    keys = dict(line.split("\t")[::-1] for line in path.read_text().splitlines())
    key = bytes.fromhex(keys["INBOX"])
    expected = b"\x01" + hmac.new(key, rump.encode(), hashlib.sha1).digest()
    assert full == rump + ":INTERNAL:" + expected.hex()
    # A second URL of the same mailbox uses the same key.
    assert _gen(authed, rump.replace("SECTION=1", "SECTION=2"), "g2").endswith(
        (b"\x01" + hmac.new(key, rump.replace("SECTION=1", "SECTION=2").encode(),
                            hashlib.sha1).digest()).hex())


def test_urlfetch_forms(authed, new_conv):
    """Plain, BODY, BINARY (base64 undone, NUL -> literal8) and BODYPARTSTRUCTURE, from another session."""
    v = _setup(authed)
    base = f"imap://demo@example.org/INBOX;UIDVALIDITY={v}/;UID=1"
    text = _gen(authed, base + "/;SECTION=1;URLAUTH=authuser", "g1")
    data = _gen(authed, base + "/;SECTION=2;URLAUTH=user+demo", "g2")
    other = new_conv()
    other.login()
    other.send(f'f1 URLFETCH "{text}" ("{data}" BINARY BODYPARTSTRUCTURE) ("{data}")\r\n'.encode())
    out = other.output()
    assert out == (
        f'* URLFETCH "{text}" {{10}}\r\nfirst part\r\n'.encode()
        + f'* URLFETCH "{data}" (BODYPARTSTRUCTURE ("application" "octet-stream" NIL NIL NIL '
          f'"base64" 8 NIL NIL NIL NIL) BINARY ~{{4}}\r\n'.encode() + b"\x00\x01\x02\x03)\r\n"
        + f'* URLFETCH "{data}" (BODY {{8}}\r\nAAECAw==)\r\n'.encode()
        + b"f1 OK URLFETCH completed\r\n"
    ), out


def test_urlfetch_nil_for_urls_that_do_not_verify(authed):
    """Bad token, rump only, submit+, user+other, wrong UIDVALIDITY, other owner: NIL each."""
    v = _setup(authed)
    base = f"imap://demo@example.org/INBOX;UIDVALIDITY={v}/;UID=1"
    good = _gen(authed, base + ";URLAUTH=anonymous")
    tampered = good[:-1] + ("0" if good[-1] != "0" else "1")
    submit = _gen(authed, base + ";URLAUTH=submit+demo", "g3")
    other_user = _gen(authed, base + ";URLAUTH=user+fred", "g4")
    wrong_v = good.replace(f"UIDVALIDITY={v}", f"UIDVALIDITY={v + 1}")
    bad = [tampered, base + ";URLAUTH=anonymous", submit, other_user, wrong_v,
           good.replace("demo@", "other@")]
    args = " ".join(f'"{u}"' for u in bad)
    lines = authed.ok(f"f1 URLFETCH {args}")
    assert lines[:-1] == [f'* URLFETCH "{u}" NIL' for u in bad]


def test_genurlauth_refusals(authed):
    """Another user's URL, a missing message, an expired EXPIRE, a mechanism we lack: NO."""
    v = _setup(authed)
    base = f"imap://demo@example.org/INBOX;UIDVALIDITY={v}/;UID=1"
    for rump, mech, why in [
        (base.replace("demo@", "fred@") + ";URLAUTH=anonymous", "INTERNAL", "own messages"),
        (base.replace("UID=1", "UID=9") + ";URLAUTH=anonymous", "INTERNAL", "No such message"),
        (base + ";EXPIRE=2001-01-01T00:00:00Z;URLAUTH=anonymous", "INTERNAL", "expired"),
        (base + ";URLAUTH=anonymous", "XSHA256", "Unsupported URLAUTH mechanism"),
        (base + "/;SECTION=7;URLAUTH=anonymous", "INTERNAL", "No such section"),
    ]:
        last = authed.transact(f'g1 GENURLAUTH "{rump}" {mech}')[-1]
        assert last.startswith("g1 NO ") and why in last, (rump, last)


def test_expire_in_the_future_works(authed):
    """A URL with a later EXPIRE fetches until then."""
    v = _setup(authed)
    url = _gen(authed, f"imap://demo@example.org/INBOX;UIDVALIDITY={v}/;UID=1/;SECTION=1"
                       ";EXPIRE=2999-01-01T00:00:00Z;URLAUTH=authuser")
    assert authed.ok(f'f1 URLFETCH "{url}"')[:2] == [f'* URLFETCH "{url}" {{10}}', "first part"]


def test_resetkey_invalidates(authed):
    """RESETKEY INBOX (URLMECH INTERNAL) and RESETKEY alone: old URLs give NIL, new ones work."""
    v = _setup(authed)
    rump = f"imap://demo@example.org/INBOX;UIDVALIDITY={v}/;UID=1/;SECTION=1;URLAUTH=authuser"
    old = _gen(authed, rump)
    assert authed.ok(f'f1 URLFETCH "{old}"')[1] == "first part"
    assert authed.ok("r1 RESETKEY INBOX INTERNAL") == ["r1 OK [URLMECH INTERNAL] RESETKEY completed"]
    assert authed.ok(f'f2 URLFETCH "{old}"')[0] == f'* URLFETCH "{old}" NIL'
    new = _gen(authed, rump, "g2")
    assert new != old and authed.ok(f'f3 URLFETCH "{new}"')[1] == "first part"
    authed.ok("r2 RESETKEY")
    assert authed.ok(f'f4 URLFETCH "{new}"')[0] == f'* URLFETCH "{new}" NIL'
    assert authed.transact("r3 RESETKEY Nowhere")[-1].startswith("r3 NO [NONEXISTENT]")
    assert authed.transact("r4 RESETKEY INBOX XFOO")[-1].startswith("r4 NO ")


def test_keys_are_shared_by_every_node(authed, server, tmp_path):
    """Keys are in the mail store: a server with another index directory verifies the URL."""
    from tests.imapd.conftest import Conversation

    v = _setup(authed)
    url = _gen(authed, f"imap://demo@example.org/INBOX;UIDVALIDITY={v}/;UID=1/;SECTION=1"
                       ";URLAUTH=authuser")
    server.portal.realm._index_dir = str(tmp_path / "index-node2")
    node2 = Conversation(server, server.reactor)
    node2.output()
    node2.login()
    assert node2.ok(f'f1 URLFETCH "{url}"')[1] == "first part"


def test_parser_errors(authed):
    """BODY with BINARY, an unknown parameter, no argument: BAD."""
    assert authed.transact('u1 URLFETCH ("x" BODY BINARY)')[-1].startswith("u1 BAD")
    assert authed.transact('u2 URLFETCH ("x" FOO)')[-1].startswith("u2 BAD")
    assert authed.transact("u3 GENURLAUTH")[-1].startswith("u3 BAD")


def test_expired_url_is_nil(authed, mail_root, store_kind):
    """A correctly signed URL whose EXPIRE has passed gives NIL (section 7.3)."""
    v = _setup(authed)
    _gen(authed, f"imap://demo@example.org/INBOX;UIDVALIDITY={v}/;UID=1;URLAUTH=anonymous")
    keys = dict(line.split("\t")[::-1]
                for line in _key_file(mail_root, store_kind).read_text().splitlines())
    rump = (f"imap://demo@example.org/INBOX;UIDVALIDITY={v}/;UID=1"
            ";EXPIRE=2001-01-01T00:00:00Z;URLAUTH=anonymous")
    token = b"\x01" + hmac.new(bytes.fromhex(keys["INBOX"]), rump.encode(), hashlib.sha1).digest()
    url = rump + ":INTERNAL:" + token.hex()
    assert authed.ok(f'f1 URLFETCH "{url}"')[0] == f'* URLFETCH "{url}" NIL'
    fresh = url.replace("2001-01-01", "2999-01-01")
    fresh_rump = rump.replace("2001-01-01", "2999-01-01")
    fresh = fresh_rump + ":INTERNAL:" + (b"\x01" + hmac.new(
        bytes.fromhex(keys["INBOX"]), fresh_rump.encode(), hashlib.sha1).digest()).hex()
    assert authed.ok(f'f2 URLFETCH "{fresh}"')[0] == f'* URLFETCH "{fresh}" {{{len(QP)}}}'


# -- URLs fetched by users other than the owner (RFC 4467 sections 3, 7.3) --

PEOPLE = {"alice": b"pa", "bob": b"pb", "carol": b"pc", "dave": b"pd", "submit": b"ps"}


@pytest.fixture
def people(mail_root, store_kind, tmp_path):
    """
    A server with users alice, bob, carol, dave (who never logs in) and
    submit, the configured submission server login; C{login(name)} gives
    a logged-in conversation.  The realm knows its users as the daemon's
    does from the passwd-file.
    """
    from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse
    from twisted.cred.portal import Portal
    from twisted.internet import task

    from imapd.account import MailRealm
    from imapd.server import ServerContext, SessionLimits
    from tests.imapd.conftest import Conversation

    def make(submit_user="submit"):
        checker = InMemoryUsernamePasswordDatabaseDontUse(**PEOPLE)
        realm = MailRealm(f"{store_kind}:{mail_root}/%u", home_for=lambda user: None,
                          index_dir=str(tmp_path / "index"), user_exists=PEOPLE.__contains__)
        context = ServerContext(portal=Portal(realm, [checker]), reactor=task.Clock(),
                                allow_plaintext_auth=True,
                                limits=SessionLimits(failed_login_delay=1.0),
                                urlauth_submit_user=submit_user)

        def login(name):
            c = Conversation(context, context.reactor)
            c.output()
            c.ok(f"l1 LOGIN {name} {PEOPLE[name].decode()}")
            return c

        return login

    return make


def _alice_url(alice, access, section="1"):
    v = _setup(alice)
    return _gen(alice, f"imap://alice@example.org/INBOX;UIDVALIDITY={v}/;UID=1"
                       f"/;SECTION={section};URLAUTH={access}")


def _fetch(conv, url):
    """The URLFETCH answer for C{url}: its data (str) or None for NIL."""
    lines = conv.ok(f'f1 URLFETCH "{url}"')
    if lines[0] == f'* URLFETCH "{url}" NIL':
        return None
    assert lines[0].startswith(f'* URLFETCH "{url}" {{'), lines
    return lines[1]


def test_user_access_is_for_that_user_until_resetkey(people):
    """user+bob: bob fetches alice's URL, carol and alice get NIL; alice's RESETKEY ends it."""
    login = people()
    alice = login("alice")
    url = _alice_url(alice, "user+bob")
    bob, carol = login("bob"), login("carol")
    assert _fetch(bob, url) == "first part"
    assert _fetch(carol, url) is None
    assert _fetch(alice, url) is None
    alice.ok("r1 RESETKEY INBOX")
    assert _fetch(bob, url) is None


def test_authuser_and_anonymous_for_any_logged_in_user(people, mail_root, store_kind):
    """authuser and anonymous URLs of alice: every other user fetches them, in every form."""
    login = people()
    alice = login("alice")
    authuser = _alice_url(alice, "authuser")
    anonymous = _gen(alice, authuser.split(";URLAUTH=")[0].replace("SECTION=1", "SECTION=2")
                     + ";URLAUTH=anonymous", "g2")
    for name in ("bob", "carol", "submit"):
        other = login(name)
        assert _fetch(other, authuser) == "first part", name
        other.send(f'f2 URLFETCH ("{anonymous}" BINARY)\r\n'.encode())
        assert other.output() == (f'* URLFETCH "{anonymous}" (BINARY ~{{4}}\r\n'.encode()
                                  + b"\x00\x01\x02\x03)\r\nf2 OK URLFETCH completed\r\n"), name
    # Reading alice's store wrote nothing into it for the readers.
    assert sorted(p.name for p in mail_root.iterdir()) == ["alice", "bob", "carol", "submit"]


def test_submit_access_only_for_the_configured_submit_user(people):
    """submit+alice: the configured submission login fetches it; alice, bob, and submit unconfigured: NIL."""
    login = people()
    alice = login("alice")
    url = _alice_url(alice, "submit+alice")
    assert _fetch(login("submit"), url) == "first part"
    assert _fetch(alice, url) is None
    assert _fetch(login("bob"), url) is None
    # submit+bob on alice's URL: the submission server fetches on bob's behalf.
    for_bob = _gen(alice, url.split(";URLAUTH=")[0] + ";URLAUTH=submit+bob", "g2")
    assert _fetch(login("submit"), for_bob) == "first part"
    assert _fetch(login("bob"), for_bob) is None
    # Without [urlauth] submit_user nobody is the submission server.
    assert _fetch(people(submit_user="")("submit"), url) is None


def test_forged_tokens_are_nil(people):
    """A changed token, or bob's own key's token with alice named as owner: NIL for bob."""
    login = people()
    alice, bob = login("alice"), login("bob")
    url = _alice_url(alice, "authuser")
    assert _fetch(bob, url) == "first part"
    tampered = url[:-1] + ("0" if url[-1] != "0" else "1")
    assert _fetch(bob, tampered) is None
    # bob signs a URL of his own message and claims it is alice's.
    v = _setup(bob)
    own = _gen(bob, f"imap://bob@example.org/INBOX;UIDVALIDITY={v}/;UID=1/;SECTION=1"
                    ";URLAUTH=authuser")
    assert _fetch(bob, own) == "first part"
    claimed = own.replace("imap://bob@", "imap://alice@")
    assert _fetch(bob, claimed) is None
    assert _fetch(login("carol"), claimed) is None


def test_missing_owner_mailbox_or_message_is_nil(people, mail_root):
    """An owner not in the user database, one who never logged in, a missing mailbox: NIL, nothing created."""
    login = people()
    alice, bob = login("alice"), login("bob")
    url = _alice_url(alice, "authuser")
    assert _fetch(bob, url) == "first part"
    for owner in ("nobody", "dave", "..%2Falice"):
        assert _fetch(bob, url.replace("imap://alice@", f"imap://{owner}@")) is None, owner
    assert not (mail_root / "dave").exists() and not (mail_root / "nobody").exists()
    for wrong in (url.replace("/INBOX;", "/Nowhere;"), url.replace(";UID=1/", ";UID=7/")):
        assert _fetch(bob, wrong) is None, wrong
