"""
Tests for L{imapd.auth.build_authenticator}: which password check and
which user database each configuration gets, and the combinations that
stop the start with the option and the file named.
"""

from __future__ import annotations

import pytest

from conf import ConfigError, load_config
from imapd.auth import build_authenticator
from imapd.auth.authenticator import PasswdFileUserDB
from imapd.auth.checker import PasswdFileChecker
from imapd.auth.pam import PamChecker
from imapd.auth.userdb import SystemUserDB
from imapd.defaults import Effective
from tests.system_users import pam_service  # noqa: F401 - fixture


def setup(tmp_path, text: str, passwd: bool = True):
    path = tmp_path / "imapd.toml"
    if passwd:
        (tmp_path / "passwd").write_text("alice:{PLAIN}x::::/home/alice::\n")
    path.write_text(text)
    config = load_config(str(path))
    effective = Effective("h", None, None, config.auth.passwd_file, "maildir:~/Maildir",
                          str(tmp_path / "index"), True)
    return config, effective, str(path)


def build(config, effective):
    return build_authenticator(config, effective, pam_check=lambda *a: (False, "test"))


def test_passwd_file_only(tmp_path):
    config, effective, _ = setup(tmp_path, '[auth]\npasswd_file = "passwd"\n')
    auth = build(config, effective)
    assert isinstance(auth.checker, PasswdFileChecker)
    assert isinstance(auth.userdb, PasswdFileUserDB)
    assert auth.first_valid_uid == 1000


def test_passwd_file_passwords_system_users(tmp_path):
    config, effective, _ = setup(
        tmp_path, '[auth]\npasswd_file = "passwd"\n[userdb]\nsystem = true\nfirst_valid_uid = 2000\n')
    auth = build(config, effective)
    assert isinstance(auth.checker, PasswdFileChecker)
    assert isinstance(auth.userdb, SystemUserDB)
    assert auth.first_valid_uid == 2000


def test_pam_without_passwd_file_takes_system_users(tmp_path, pam_service):
    config, effective, _ = setup(tmp_path, f'[auth]\npam = "{pam_service}"\n', passwd=False)
    assert effective.passwd_file == ""
    auth = build(config, effective)
    assert isinstance(auth.checker, PamChecker)
    assert auth.checker.service == pam_service
    assert isinstance(auth.userdb, SystemUserDB)


def test_pam_with_passwd_file_users(tmp_path, pam_service):
    config, effective, _ = setup(
        tmp_path, f'[auth]\npam = "{pam_service}"\npasswd_file = "passwd"\n')
    auth = build(config, effective)
    assert isinstance(auth.checker, PamChecker)
    assert isinstance(auth.userdb, PasswdFileUserDB)


def test_real_libpam_loaded(tmp_path, pam_service):
    config, effective, _ = setup(tmp_path, f'[auth]\npam = "{pam_service}"\n', passwd=False)
    assert isinstance(build_authenticator(config, effective).checker, PamChecker)


def refused(tmp_path, text, passwd=True):
    config, effective, path = setup(tmp_path, text, passwd)
    with pytest.raises(ConfigError) as caught:
        build(config, effective)
    return caught.value, path


def test_missing_pam_service_file(tmp_path):
    error, path = refused(tmp_path, '[auth]\npam = "imapdt-no-such-service"\n', passwd=False)
    assert (error.source, error.option) == (path, "auth.pam")
    assert "no PAM service file /etc/pam.d/imapdt-no-such-service" in str(error)
    assert str(error).startswith(path)


def test_pam_service_that_is_a_path(tmp_path):
    error, _ = refused(tmp_path, '[auth]\npam = "../shadow"\n', passwd=False)
    assert error.option == "auth.pam"


def test_pam_system_and_passwd_file_leaves_the_file_unused(tmp_path, pam_service):
    error, path = refused(tmp_path, f'[auth]\npam = "{pam_service}"\npasswd_file = "passwd"\n'
                          '[userdb]\nsystem = true\n')
    assert (error.source, error.option) == (path, "auth.passwd_file")


def test_system_users_without_any_password_check(tmp_path):
    config, _, path = setup(tmp_path, '[userdb]\nsystem = true\n', passwd=False)
    # What prepare() gives the embedded default: its demo passwd-file.
    effective = Effective("h", None, None, str(tmp_path / "demo-passwd"), "maildir:/m/%u",
                          str(tmp_path / "index"), True)
    with pytest.raises(ConfigError) as caught:
        build(config, effective)
    assert (caught.value.source, caught.value.option) == (path, "userdb.system")


def test_pam_without_passwd_file_makes_no_demo_user(tmp_path, monkeypatch):
    """The embedded default's demo passwd-file is not made when PAM checks passwords."""
    from imapd.defaults import prepare

    monkeypatch.chdir(tmp_path)
    config = load_config(None, {"auth.pam": "imapd", "tls.enabled": False,
                                "listen": ["tcp:1143:interface=127.0.0.1"],
                                "mail.location": "maildir:~/Maildir"})
    effective = prepare(config)
    assert effective.passwd_file == ""
    assert not (tmp_path / "imapd-data" / "passwd").exists()
    assert not (tmp_path / "imapd-data" / "demo-password").exists()
