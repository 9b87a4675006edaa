"""LMTP's options: lmtp_listen, --lmtp-listen and [lmtp], checked at start."""

from __future__ import annotations

import pytest

from conf import ConfigError, load_config
from imapd.tap import Options


def test_command_line_lmtp_listen_is_repeatable(tmp_path, monkeypatch):
    """--lmtp-listen (twice) replaces the file's lmtp_listen."""
    monkeypatch.chdir(tmp_path)
    options = Options()
    options.parseOptions(["--lmtp-listen", "tcp:2424:interface=127.0.0.1",
                          "--lmtp-listen", f"unix:{tmp_path}/lmtp"])
    assert options.config.server.lmtp_listen == ("tcp:2424:interface=127.0.0.1",
                                                 f"unix:{tmp_path}/lmtp")


def test_defaults():
    """No LMTP unless asked for; the [lmtp] limits have their defaults."""
    config = load_config(None, {})
    assert config.server.lmtp_listen == ()
    assert (config.lmtp.max_recipients, config.lmtp.max_message_size,
            config.lmtp.recipient_delimiter) == (100, 0, "")


@pytest.mark.parametrize("value,message", [
    (["tls:24"], "listeners are plain"),
    (["tcp:notaport"], "tcp:notaport"),
])
def test_bad_listeners_are_refused(value, message):
    """A tls: or malformed LMTP endpoint stops the start with the option's name."""
    with pytest.raises(ConfigError) as info:
        load_config(None, {"lmtp_listen": value})
    assert "lmtp_listen" in str(info.value) and message in str(info.value)


def test_build_lmtp_factory_uses_the_configuration(tmp_path):
    """The factory's limits come from [lmtp], SIZE defaults to limits.max_literal."""
    from imapd.defaults import prepare_delivery
    from imapd.delivery.lmtp import build_lmtp_factory

    passwd = tmp_path / "passwd"
    passwd.write_text("alice:{PLAIN}pw::::::\n")
    config = load_config(None, {"auth.passwd_file": str(passwd),
                                "mail.location": f"maildir:{tmp_path}/mail/%u",
                                "mail.index_dir": str(tmp_path / "index"),
                                "lmtp.max_recipients": 7, "lmtp.recipient_delimiter": "+",
                                "limits.max_literal": 5000})
    factory = build_lmtp_factory(config, prepare_delivery(config), None, None)
    assert factory.settings.max_recipients == 7
    assert factory.settings.max_message_size == 5000
    assert factory.deliverer.resolve("alice+x@example.org").folder == "x"
