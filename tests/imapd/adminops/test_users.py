"""
imapd-admin pw, auth test and user (issue 16): hashes Dovecot verifies,
Dovecot's hashes verified, logins checked by the daemon's authenticator.
"""

import json
import os
import shutil
import subprocess

import pytest

from imapd.adminops.users import generated_schemes

from .helpers import admin, console, make_site

DOVEADM = "/usr/bin/doveadm"
VECTORS = "/work/shared/testdata/doveadm-pw-vectors.tsv"


def doveadm_verifies(tmp_path, hashed, password):
    """Whether Dovecot's doveadm pw -t accepts C{hashed} for C{password}."""
    conf = tmp_path / "empty.conf"
    conf.write_text("")
    run = subprocess.run([DOVEADM, "-c", str(conf), "pw", "-t", hashed, "-p", password],
                         capture_output=True, text=True, timeout=60)
    return run.returncode == 0 and "(verified)" in run.stdout


def accepted_schemes():
    from imapd.auth.schemes import _SCHEMES

    return sorted(_SCHEMES)


#: What the passwd-file accepts but pw will not make: too weak to create
#: (imapd.auth.schemes.hash_password); pw -t still checks such hashes.
NOT_MADE = {"DES-CRYPT"}


def test_pw_makes_every_accepted_scheme_but_des():
    """pw makes a hash of every scheme the passwd-file accepts, except DES-CRYPT."""
    assert set(accepted_schemes()) - set(generated_schemes()) == NOT_MADE


@pytest.mark.parametrize("scheme", accepted_schemes())
def test_pw_hash_verified_by_doveadm(tmp_path, scheme):
    """
    Every scheme the passwd-file accepts is printed as {SCHEME}hash that
    Dovecot 2.3's doveadm pw -t verifies (on a configuration file of its
    own), or, for one too weak to create, refused in one line.
    """
    config = make_site(tmp_path)
    if scheme in NOT_MADE:
        status, out, err = admin(config, "pw", "-s", scheme, "-p", "sécret 1")
        assert (status, out) == (2, "") and err.count("\n") == 1
        return
    status, out, err = admin(config, "pw", "-s", scheme, "-p", "sécret 1")
    assert (status, err) == (0, "")
    hashed = out.strip()
    assert hashed.startswith("{" + scheme + "}")
    assert doveadm_verifies(tmp_path, hashed, "sécret 1")
    assert not doveadm_verifies(tmp_path, hashed, "sécret 2")


def vectors():
    with open(VECTORS, encoding="utf-8") as f:
        return [line.rstrip("\n").split("\t") for line in f
                if line.strip() and not line.startswith("#")]


@pytest.mark.parametrize("scheme,password,hashed", vectors())
def test_pw_test_verifies_doveadm_hashes(tmp_path, scheme, password, hashed):
    """pw -t verifies every hash Dovecot 2.3.19's doveadm pw wrote, and refuses a wrong password."""
    config = make_site(tmp_path)
    status, out, _ = admin(config, "pw", "-t", hashed, "-p", password)
    assert (status, out) == (0, f"{hashed} (verified)\n")
    status, out, _ = admin(config, "pw", "-t", hashed, "-p", password + "x")
    assert status == 1 and out.endswith("(does not match)\n")


def test_pw_prompts_twice_without_echo(tmp_path, monkeypatch):
    """Without -p the password is asked twice through getpass; a mismatch is an error."""
    import getpass

    from imapd.auth.schemes import verify_password

    config = make_site(tmp_path)
    answers = iter(["one", "one"])
    prompts = []
    monkeypatch.setattr(getpass, "getpass", lambda prompt: prompts.append(prompt) or next(answers))
    status, out, _ = admin(config, "pw", "-s", "SSHA512")
    assert status == 0 and len(prompts) == 2
    assert verify_password("one", out.strip())
    answers = iter(["one", "two"])
    assert admin(config, "pw") == (2, "", "imapd-admin: the passwords do not match\n")


def test_pw_bad_scheme_one_line(tmp_path):
    """An unknown or only-verifiable scheme gives one line and status 2."""
    config = make_site(tmp_path)
    status, out, err = admin(config, "pw", "-s", "DES-CRYPT", "-p", "x")
    assert status == 2 and out == "" and err.count("\n") == 1
    assert err.startswith("imapd-admin: cannot make scheme 'DES-CRYPT'; use one of ")


def test_auth_test_through_daemon_authenticator(tmp_path):
    """auth test checks the password and prints the userdb fields; a wrong one says why."""
    config = make_site(tmp_path)
    status, out, _ = admin(config, "auth", "test", "alice", "pw-alice", "--json")
    row = json.loads(out)[0]
    assert status == 0 and row["result"] == "ok" and row["user"] == "alice"
    assert row["home"] == str(tmp_path / "home" / "alice")
    assert row["mail"] == "maildir:~/Maildir"
    assert row["mail_root"] == str(tmp_path / "home" / "alice" / "Maildir")
    assert admin(config, "auth", "test", "alice", "nope") == (
        1, "auth fail: alice: Authentication refused for 'alice': wrong password\n", "")
    status, out, _ = admin(config, "auth", "test", "nobody-here", "x")
    assert status == 1 and "unknown user" in out or "no such user" in out


def test_auth_test_refuses_below_first_valid_uid(tmp_path):
    """A right password of a user whose uid is below first_valid_uid fails, with the reason."""
    home = tmp_path / "home" / "daemonish"
    home.mkdir(parents=True)
    (tmp_path / "passwd").write_text(f"daemonish:{{PLAIN}}pw:2:2::{home}::\n")
    config = tmp_path / "imapd.toml"
    config.write_text(f'[auth]\npasswd_file = "passwd"\n[mail]\nindex_dir = "{tmp_path}/i"\n')
    status, out, _ = admin(config, "auth", "test", "daemonish", "pw")
    assert status == 1
    assert "uid 2 is below userdb.first_valid_uid 1000" in out
    status, _, err = admin(config, "user", "-u", "daemonish")
    assert status == 1 and "is not served: uid 2 is below" in err


def test_user_fields_and_all_users(tmp_path):
    """user prints uid, gid, home, mail location and quota; -A lists every passwd-file user."""
    config = make_site(tmp_path, extra='[quota]\nstorage = "10M"\nmessages = 500\n'
                                       '[quota.users]\nbob = { storage = "1G" }\n')
    status, out, _ = admin(config, "user", "-u", "alice")
    assert status == 0
    assert out.startswith(f"user=alice uid=- gid=- home={tmp_path}/home/alice "
                          f"mail=maildir:~/Maildir mail_root={tmp_path}/home/alice/Maildir "
                          f"quota_storage_kib=10240 quota_messages=500")
    status, out, _ = admin(config, "user", "-A", "--json")
    rows = json.loads(out)
    assert [r["user"] for r in rows] == ["alice", "bob"]
    assert rows[1]["quota_storage_kib"] == 1024 ** 2 and rows[1]["quota_messages"] == 500
    assert admin(config, "user", "-u", "zed") == (
        1, "", "imapd-admin: no user 'zed' in the user database\n")


SYSUSER = "imapdadm-t1"


@pytest.fixture
def system_user():
    """A real system user (uid >= 1000) for userdb.system, removed afterwards."""
    if os.geteuid() != 0 or shutil.which("useradd") is None:
        pytest.fail("this test creates a system user: run it as root with useradd")
    subprocess.run(["userdel", "-r", SYSUSER], capture_output=True)
    subprocess.run(["useradd", "-m", "-K", "UID_MIN=1000", SYSUSER], check=True)
    yield SYSUSER
    subprocess.run(["userdel", "-r", SYSUSER], capture_output=True)


def test_user_from_system_userdb(tmp_path, system_user):
    """With userdb.system the uid, gid and home are the system's; -A lists uid >= first_valid_uid only."""
    import pwd

    entry = pwd.getpwnam(system_user)
    (tmp_path / "passwd").write_text(f"{system_user}:{{PLAIN}}pw\n")
    config = tmp_path / "imapd.toml"
    config.write_text(f'[auth]\npasswd_file = "passwd"\n[userdb]\nsystem = true\n'
                      f'[mail]\nlocation = "maildir:~/Maildir"\nindex_dir = "{tmp_path}/i"\n')
    status, out, _ = admin(config, "user", "-u", system_user, "--json")
    row = json.loads(out)[0]
    assert (row["uid"], row["gid"], row["home"]) == (entry.pw_uid, entry.pw_gid, entry.pw_dir)
    status, out, _ = admin(config, "user", "-A", "--json")
    names = [r["user"] for r in json.loads(out)]
    assert system_user in names and "root" not in names and "daemon" not in names
    assert admin(config, "user", "-u", "daemon")[0] == 1
    # The store of a system user is made as that user (its worker's uid).
    status, out, err = admin(config, "mailbox", "create", "-u", system_user, "Work")
    assert status == 0, err
    maildir = os.path.join(entry.pw_dir, "Maildir", ".Work")
    assert os.stat(maildir).st_uid == entry.pw_uid
    assert os.geteuid() == 0


def test_console_script(tmp_path):
    """The installed imapd-admin script: pw, and one line without traceback on errors."""
    config = make_site(tmp_path)
    run = console(config, "pw", "-s", "SHA256-CRYPT", "-p", "x")
    assert run.returncode == 0 and run.stdout.startswith("{SHA256-CRYPT}$5$")
    run = console(config, "auth", "test", "alice", "pw-alice")
    assert run.returncode == 0 and run.stdout.startswith("auth succeeded: user=alice")
    run = console(tmp_path / "missing.toml", "user", "-u", "alice")
    assert run.returncode == 78 and "Traceback" not in run.stderr
    assert run.stderr.count("\n") == 1
    run = console(config, "pw", "--help")
    assert run.returncode == 0 and "examples:" in run.stdout and "imapd-admin pw -s ARGON2ID" in run.stdout


def test_user_shows_the_user_databases_quota(tmp_path):
    """The quota printed is the one a login gets: the user database's fields win over [quota]."""
    (tmp_path / "passwd").write_text(
        f"carol:{{PLAIN}}pw::::{tmp_path}/carol::userdb_mail=maildir:~/Maildir "
        "userdb_quota_storage=1024 userdb_quota_messages=50\n")
    config = tmp_path / "imapd.toml"
    config.write_text(f'[auth]\npasswd_file = "passwd"\n'
                      f'[mail]\nindex_dir = "{tmp_path}/i"\n')
    status, out, err = admin(config, "user", "-u", "carol", "--json")
    assert status == 0, err
    row = json.loads(out)[0]
    assert (row["quota_storage_kib"], row["quota_messages"]) == (1024, 50)
    assert admin(config, "mailbox", "create", "-u", "carol", "Work")[0] == 0
    status, out, err = admin(config, "quota", "get", "-u", "carol", "--json")
    assert status == 0, err
    row = json.loads(out)[0]
    assert (row["storage_limit_kib"], row["messages_limit"]) == (1024, 50)


def test_all_users_of_a_directory_is_refused(tmp_path):
    """-A with an LDAP user database says it cannot list it (not /etc/passwd's accounts)."""
    config = tmp_path / "imapd.toml"
    config.write_text('[auth]\npasswd_file = ""\npassdb = ["ldap"]\n'
                      '[ldap]\nuris = ["ldap://127.0.0.1:9"]\nbase = "dc=example,dc=org"\n'
                      f'[mail]\nindex_dir = "{tmp_path}/i"\n')
    status, out, err = admin(config, "user", "-A")
    assert (status, out) == (2, "")
    assert "cannot list" in err and err.count("\n") == 1
