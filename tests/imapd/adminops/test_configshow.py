"""
imapd-admin config (issue 16): the effective configuration, non-default
options only unless -a, each with the file that set it.
"""

import json

from conf import load_config

from .helpers import admin


def test_config_shows_non_default_options_with_their_file(tmp_path):
    """Only the options whose value differs from the default, each naming the file."""
    (tmp_path / "passwd").write_text("alice:{PLAIN}x\n")
    config = tmp_path / "imapd.toml"
    # limits.max_line set to its default value: not shown (doveconf -n).
    config.write_text('listen = ["tcp:1143:interface=127.0.0.1"]\n'
                      '[auth]\npasswd_file = "passwd"\n'
                      '[quota]\nstorage = "2M"\n'
                      f'[limits]\nmax_line = {load_config(None).limits.max_line}\n')
    status, out, err = admin(config, "config")
    assert (status, err) == (0, "")
    assert out == (f"# imapd configuration: {config}\n"
                   f'listen = ["tcp:1143:interface=127.0.0.1"]  # {config}\n'
                   f"\n[auth]\n"
                   f'passwd_file = "{tmp_path}/passwd"  # {config}\n'
                   f"\n[quota]\n"
                   f"storage = 2048  # {config}\n")


def test_config_output_reads_back(tmp_path):
    """The text form is TOML the daemon loads to the same effective configuration."""
    (tmp_path / "passwd").write_text("alice:{PLAIN}x\n")
    config = tmp_path / "imapd.toml"
    config.write_text('[auth]\npasswd_file = "passwd"\nallow_plaintext = true\n'
                      '[quota]\nstorage = "1G"\nmessages = 10\n'
                      '[quota.users]\nbob = { storage = "5M" }\n'
                      '[mailboxes]\nauto_create = ["Archive"]\nspecial_use = { "Sent Items" = "sent" }\n'
                      '[cluster]\nexport_files = ["tsv:/tmp/x.tsv"]\n')
    status, out, _ = admin(config, "config")
    assert status == 0
    again = tmp_path / "again.toml"
    again.write_text(out)
    first, second = load_config(str(config)), load_config(str(again))
    for name in ("auth", "quota", "mailboxes", "cluster"):
        assert getattr(first, name) == getattr(second, name), name


def test_config_all_and_json(tmp_path):
    """-a lists every option; --json gives option, value, default and source."""
    from conf.schema import option_specs

    config = tmp_path / "imapd.toml"
    config.write_text('[storage]\nthreads = 7\n')
    status, out, _ = admin(config, "config", "-a", "--json")
    rows = json.loads(out)
    assert status == 0 and [r["option"] for r in rows] == [s.name for s in option_specs()]
    by_name = {r["option"]: r for r in rows}
    assert by_name["storage.threads"]["value"] == 7
    assert by_name["storage.threads"]["source"] == str(config)
    assert by_name["storage.threads"]["default"] != 7
    assert by_name["limits.max_line"]["source"] == "default"
    status, out, _ = admin(config, "config", "--json")
    assert [r["option"] for r in json.loads(out)] == ["storage.threads"]


def test_config_unusable_is_78_in_one_line(tmp_path):
    """A configuration that does not load: status 78 (EX_CONFIG), one line naming the option."""
    config = tmp_path / "imapd.toml"
    config.write_text('[storage]\nthreadz = 7\n')
    status, out, err = admin(config, "config")
    assert status == 78 and out == ""
    assert err == (f"imapd-admin: {config}: option 'storage.threadz': unknown option "
                   f"(did you mean 'storage.threads'?)\n")
