"""
C{imapd-deliver} for users of an LDAP directory (C{[auth] passdb =
["ldap"]}, no passwd-file): the directory's C{user_filter} finds the
user and its C{user_attrs} give the home and the mail location, as at
login; a directory that does not answer is a temporary failure (exit 75,
the MTA keeps the mail), a user it does not know is 67.
"""

from __future__ import annotations

from imapd.auth.schemes import hash_password
from tests.delivery.test_lda import lda
from tests.ldap_helpers import PEOPLE, ldif_user, slapd  # noqa: F401 - fixture

MESSAGE = b"From: a@example.net\nSubject: to an LDAP user\n\nbody\n"


def test_lda_delivers_where_the_directory_says(slapd, tmp_path):  # noqa: F811
    home = tmp_path / "homes" / "ann"
    slapd.add(ldif_user("ann", hash_password("pw", "SSHA"), 10001, home=str(home),
                        location="maildir:~/FromLdap"))
    config = tmp_path / "imapd.toml"
    config.write_text(f"""
data_dir = "{tmp_path}/data"
[auth]
passdb = ["ldap"]
[ldap]
uris = ["{slapd.uri}"]
base = "{PEOPLE}"
user_attrs = "homeDirectory=home,mailLocation=mail"
timeout = 2.0
[mail]
location = "maildir:{tmp_path}/mail/%u"
index_dir = "{tmp_path}/index"
""")
    result = lda("-c", str(config), "-d", "ann", stdin=MESSAGE)
    assert result.returncode == 0, result.stderr
    files = list((home / "FromLdap" / "new").iterdir())
    assert len(files) == 1 and b"Subject: to an LDAP user" in files[0].read_bytes()
    assert not (tmp_path / "mail" / "ann").exists()
    result = lda("-c", str(config), "-d", "nobody", stdin=MESSAGE)
    assert result.returncode == 67, result.stderr
    slapd.stop()
    result = lda("-c", str(config), "-d", "ann", stdin=MESSAGE)
    assert result.returncode == 75, result.stderr
    assert f"user database unavailable: no LDAP server answered: {slapd.uri}" in \
        result.stderr.decode()
