"""
What the README and the example configuration tell a sysadmin (issue 16):
the mail location syntax of both drivers, examples that load.
"""

from __future__ import annotations

import os
import re

import pytest

from conf import load_config
from storage.location import parse_location

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
README = os.path.join(ROOT, "README.md")
EXAMPLE = os.path.join(ROOT, "conf", "imapd.example.toml")


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


@pytest.mark.parametrize("path", [README, EXAMPLE])
def test_mbox_is_not_to_come(path):
    """
    Issue 16 item 4: the mbox store exists, so neither document may say
    it is "to come" or "on its way".
    """
    text = _read(path)
    assert not re.search(r"mbox[^.]{0,20}(to come|on its way)", text)


@pytest.mark.parametrize("path", [README, EXAMPLE])
def test_mbox_location_syntax_documented(path):
    """
    Issue 16 item 4: both documents show an mbox location with the INBOX
    spool file, and every location they show parses for a user.
    """
    text = _read(path)
    locations = set(re.findall(r"'((?:maildir|mbox):[^'\s]+)'|`((?:maildir|mbox):[^`\s]+)`",
                               text))
    locations = {a or b for a, b in locations}
    assert any(loc.startswith("mbox:") and ":INBOX=" in loc for loc in locations), locations
    for location in locations:
        location = location.replace("<abs>", "/srv")  # the README's placeholder
        parsed = parse_location(location, "alice", "/home/alice")
        assert parsed.root.startswith("/")


def test_example_mbox_location_loads(tmp_path):
    """The documented mbox location is accepted as option mail.location."""
    path = tmp_path / "imapd.toml"
    path.write_text("[mail]\nlocation = 'mbox:~/mail:INBOX=/var/mail/%u'\n")
    assert load_config(str(path), {}).mail.location.startswith("mbox:")
