"""
Delivery asks the logins' user database (issue 15 with issue 14): the
passwd-file's uid and C{userdb_mail} fields, C{[userdb] system = true},
and C{first_valid_uid} (root and system accounts get no mail of ours,
with a log line saying why).
"""

from __future__ import annotations

import pytest
from twisted.logger import globalLogPublisher

from conf import load_config
from imapd.defaults import prepare_delivery
from imapd.delivery.core import Deliverer, Message, UnknownUser, delivery_lookup
from tests.delivery.delivery_helpers import make_deliverer, messages_of


@pytest.fixture
def logged():
    """The texts of the log events emitted during the test."""
    from twisted.logger import formatEvent

    texts: list[str] = []

    def observe(event):
        texts.append(formatEvent(event))
    globalLogPublisher.addObserver(observe)
    yield texts
    globalLogPublisher.removeObserver(observe)


def _passwd(tmp_path, lines: list[str]) -> str:
    path = tmp_path / "passwd"
    path.write_text("".join(line + "\n" for line in lines))
    return str(path)


@pytest.mark.parametrize("line,reason", [
    ("toor:{PLAIN}pw:0:0::/root::", "uid 0 (root) is never served"),
    ("bin2:{PLAIN}pw:2:2::/bin::", "uid 2 is below userdb.first_valid_uid 1000"),
])
def test_root_and_low_uids_are_unknown_users_with_a_log_line(tmp_path, location, logged,
                                                             line, reason):
    """A passwd-file user the logins refuse is refused mail too: 550 5.1.1, and the log says why."""
    name = line.split(":")[0]
    deliverer = make_deliverer(location, _passwd(tmp_path, [line]), tmp_path)
    with pytest.raises(UnknownUser) as info:
        deliverer.resolve(f"{name}@example.org")
    assert (info.value.code, info.value.status) == (550, "5.1.1")
    assert any(f"Delivery to '{name}@example.org' refused: {reason}" in text
               or f"Delivery to '{name}' refused: {reason}" in text for text in logged), logged
    # Nothing was made for the refused user.
    assert not (tmp_path / "mail").exists()


def test_userdb_mail_extra_field_is_the_users_own_location(tmp_path, store_kind, location):
    """A passwd-file userdb_mail field sends that user's mail where its logins find it."""
    own = f"{store_kind}:{tmp_path}/own/%u"
    passwd = _passwd(tmp_path, [f"carol:{{PLAIN}}pw::::{tmp_path}/home/carol::userdb_mail={own}",
                                "dave:{PLAIN}pw::::::"])
    deliverer = make_deliverer(location, passwd, tmp_path)
    for user in ("carol", "dave"):
        deliverer.deliver(deliverer.resolve(f"{user}@example.org"),
                          Message.from_bytes(f"Subject: to {user}\r\n\r\nhi\r\n".encode()))
    (stored,) = messages_of(own, "carol", tmp_path)
    assert b"Subject: to carol" in stored
    assert not (tmp_path / "mail" / "carol").exists()
    (stored,) = messages_of(location, "dave", tmp_path)
    assert b"Subject: to dave" in stored


def test_system_userdb_from_the_configuration(tmp_path, store_kind, logged):
    """
    [userdb] system = true: recipients are the system's accounts, root and
    uids below first_valid_uid refused; the record carries uid, gid and home.
    """
    import pwd

    passwd = _passwd(tmp_path, ["nobody:{PLAIN}pw::::::"])
    config = load_config(None, {"auth.passwd_file": passwd, "userdb.system": True,
                                "mail.location": f"{store_kind}:{tmp_path}/mail/%u",
                                "mail.index_dir": str(tmp_path / "index")})
    effective = prepare_delivery(config)
    deliverer = Deliverer(effective.mail_location, delivery_lookup(config, effective),
                          effective.index_dir)
    for name in ("root", "daemon"):
        with pytest.raises(UnknownUser):
            deliverer.resolve(name)
    assert any("Delivery to 'root' refused: uid 0 (root) is never served" in t for t in logged)
    assert any("Delivery to 'daemon' refused: uid 1 is below userdb.first_valid_uid 1000" in t
               for t in logged)
    nobody = pwd.getpwnam("nobody")
    recipient = deliverer.resolve("nobody@example.org")
    assert (recipient.user, recipient.record.uid, recipient.record.gid, recipient.home) == (
        "nobody", nobody.pw_uid, nobody.pw_gid, nobody.pw_dir)
    with pytest.raises(UnknownUser):
        deliverer.resolve("no-such-system-user-imapd")
