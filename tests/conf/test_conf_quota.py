"""
The [quota] and [mailboxes] sections: values, conversion into the
session context's policies, and start-up errors that name option and file.
"""

import textwrap

import pytest

from conf import ConfigError, load_config
from conf.schema import parse_size
from imapd.server import DEFAULT_SPECIAL_USE, QuotaLimits
from imapd.tap import _quota_policy


def write(tmp_path, text: str) -> str:
    path = tmp_path / "imapd.toml"
    path.write_text(textwrap.dedent(text))
    return str(path)


def error_of(path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(path, {})
    return info.value


@pytest.mark.parametrize("value, kib", [
    (0, 0), (2048, 2048), ("0", 0), ("512", 512), ("1K", 1), ("10M", 10240),
    ("1G", 1048576), ("1g", 1048576), ("2GiB", 2097152), ("3MB", 3072), ("1T", 1024 ** 3),
])
def test_parse_size(value, kib):
    """Storage limits are KiB (RFC 9208 section 5.1); binary units are accepted."""
    assert parse_size(value) == kib


@pytest.mark.parametrize("value", ["", "lots", "1.5G", "-1", "1Q", "G", -5, True, 1.5])
def test_parse_size_refuses(value):
    """Anything but a count of KiB or digits with a unit is refused, with the value named."""
    with pytest.raises(ValueError):
        parse_size(value)


def test_defaults(tmp_path, monkeypatch):
    """Nothing configured: no quota, Dovecot's special-use names, nothing auto-created."""
    monkeypatch.chdir(tmp_path)
    config = load_config(None, {})
    policy = _quota_policy(config.quota)
    assert policy.limits_for("anyone") == QuotaLimits(0, 0)
    assert config.mailboxes.special_use == DEFAULT_SPECIAL_USE
    assert config.mailboxes.auto_create == ()


def test_quota_from_file(tmp_path):
    """Global limits and per-user overrides; a resource left out keeps the global one."""
    path = write(tmp_path, """
        [quota]
        storage = "1G"
        messages = 100000
        [quota.users]
        alice = { storage = "10G" }
        bob = { storage = 0, messages = 0 }
        "carol@example.org" = { messages = 5 }
        """)
    policy = _quota_policy(load_config(path, {}).quota)
    assert policy.limits_for("dave") == QuotaLimits(1048576, 100000)
    assert policy.limits_for("alice") == QuotaLimits(10 * 1048576, 100000)
    assert policy.limits_for("bob") == QuotaLimits(0, 0)
    assert policy.limits_for("carol@example.org") == QuotaLimits(1048576, 5)


@pytest.mark.parametrize("text, option, words", [
    ('[quota]\nstorage = "lots"\n', "quota.storage", "'lots' is not a size"),
    ("[quota]\nmessages = -1\n", "quota.messages", "must not be negative"),
    ('[quota.users]\nalice = { storage = "x" }\n', "quota.users", "user 'alice': storage"),
    ("[quota.users]\nalice = { disk = 5 }\n", "quota.users", "unknown key 'disk'"),
    ("[quota.users]\nalice = 5\n", "quota.users", "user 'alice': must be a table"),
    ('[quota]\nstorrage = "1G"\n', "quota.storrage", "did you mean 'quota.storage'"),
    ('[mailboxes.special_use]\nSent = "\\\\Outbox"\n', "mailboxes.special_use",
     "mailbox 'Sent': unknown special-use attribute \"\\Outbox\""),
    ('[mailboxes.special_use]\nINBOX = "\\\\Sent"\n', "mailboxes.special_use",
     "'INBOX' cannot be a special-use mailbox name"),
    ('[mailboxes.special_use]\nSent = "\\\\Sent"\nsent = "\\\\Sent"\n', "mailboxes.special_use",
     "named twice"),
    ('[mailboxes]\nauto_create = "Sent"\n', "mailboxes.auto_create", "array of strings"),
    ('[mailboxes]\nauto_create = ["Sent", ""]\n', "mailboxes.auto_create",
     "cannot be a special-use mailbox name"),
    ('[mailboxes]\nauto_create = ["Mail/../Sent"]\n', "mailboxes.auto_create",
     "level starting with '.'"),
    ('[mailboxes]\nauto_create = ["Sent//x"]\n', "mailboxes.auto_create", "empty level"),
    ('[mailboxes.special_use]\n"Sent\\u0007" = "Sent"\n', "mailboxes.special_use",
     "control character"),
])
def test_errors_name_option_and_file(tmp_path, text, option, words):
    """A bad value stops start-up with the file, the option and the reason."""
    path = write(tmp_path, text)
    error = error_of(path)
    assert error.source == path and error.option == option
    assert words in str(error) and str(error).startswith(f"{path}: option '{option}': ")


def test_special_use_from_file(tmp_path):
    """Attributes with or without the backslash, any case, come out canonical."""
    path = write(tmp_path, """
        [mailboxes]
        auto_create = ["Sent Items", "Deleted Items"]
        [mailboxes.special_use]
        "Sent Items" = "\\\\Sent"
        "Deleted Items" = "trash"
        "All Mail" = "\\\\ALL"
        Starred = "Flagged"
        """)
    section = load_config(path, {}).mailboxes
    assert section.special_use == (
        ("Sent Items", "\\Sent"), ("Deleted Items", "\\Trash"),
        ("All Mail", "\\All"), ("Starred", "\\Flagged"),
    )
    assert section.auto_create == ("Sent Items", "Deleted Items")
