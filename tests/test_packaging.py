"""
Packaging: a regular `pip install` of the checkout gives a working
`twistd imapd`, with the plugin, every package and the example file.

To stay fast, the fresh venv gets only our package (`--no-deps`); a .pth
file lends it the dependencies of the venv running the tests, through a
directory of symlinks that leaves out any copy of imapd installed there (in
CI the checkout is installed in that venv too, plugin included, and it must
not stand in for the fresh install).  The build itself is isolated, as a
user's `pip install .` is.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: What our distribution puts at the top of site-packages.
OURS = {"imapd", "conf", "storage", "locking", "index"}
TWISTD = "from twisted.scripts.twistd import run; run()"


def _copy_checkout(dest: Path) -> Path:
    """The checkout without build leftovers, venvs or caches."""
    ignore = shutil.ignore_patterns(
        ".git", "build", "dist", "*.egg-info", "__pycache__", "*.pyc", ".venv",
        "venv", "imapd-data", "dropin.cache", ".pytest_cache",
    )
    shutil.copytree(REPO, dest, ignore=ignore)
    return dest


def _lend_dependencies(dest: Path) -> Path:
    """
    Mirror the running venv's site-packages in C{dest} with symlinks, minus
    our packages and our twistd plugin.
    """
    lender = Path(sysconfig.get_paths()["purelib"])
    dest.mkdir()
    for entry in lender.iterdir():
        name = entry.name
        if name in OURS or name.startswith("imapd-") or name.endswith(".pth"):
            continue
        if name == "twisted":
            (dest / "twisted").mkdir()
            for sub in entry.iterdir():
                if sub.name != "plugins":
                    (dest / "twisted" / sub.name).symlink_to(sub)
            (dest / "twisted" / "plugins").mkdir()
            for plugin in (entry / "plugins").iterdir():
                if plugin.name not in ("imapd_plugin.py", "dropin.cache", "__pycache__"):
                    (dest / "twisted" / "plugins" / plugin.name).symlink_to(plugin)
        else:
            (dest / name).symlink_to(entry)
    return dest


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A fresh venv with the checkout pip-installed: (python, site-packages)."""
    root = tmp_path_factory.mktemp("packaging")
    source = _copy_checkout(root / "src")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(
        subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True, capture_output=True, text=True,
        ).stdout.strip()
    )
    # Dependencies (and pip itself) from the venv running the tests.
    deps = _lend_dependencies(root / "deps")
    (site / "zz_test_deps.pth").write_text(f"{deps}\n")
    result = subprocess.run(
        [python, "-m", "pip", "install", "--no-deps", "--disable-pip-version-check",
         "--quiet", str(source)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return python, site, root


def _clean_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    return env


def test_files_installed(installed):
    """Packages, the plugin (no __init__.py beside it) and the example are installed."""
    _, site, _ = installed
    for path in ("imapd/tap.py", "imapd/server.py", "conf/schema.py", "conf/imapd.example.toml",
                 "storage/__init__.py", "locking/__init__.py", "index",
                 "twisted/plugins/imapd_plugin.py"):
        assert (site / path).exists(), path
    assert not (site / "twisted" / "plugins" / "__init__.py").exists()
    assert not (site / "twisted" / "__init__.py").exists()
    assert not (site / "tests").exists()


def test_installed_code_is_used(installed):
    """Run outside the checkout, the venv imports its installed copy, plugin included."""
    python, site, root = installed
    out = subprocess.run(
        [python, "-c", "import imapd.tap, conf, twisted.plugins.imapd_plugin as p; "
                       "print(imapd.tap.__file__); print(conf.__file__); print(p.__file__)"],
        cwd=root, env=_clean_env(), check=True, capture_output=True, text=True,
    ).stdout.split()
    assert all(path.startswith(str(site)) for path in out), out


def test_twistd_imapd_help(installed):
    """twistd imapd --help from the fresh install lists our options."""
    python, _, root = installed
    result = subprocess.run(
        [python, "-c", TWISTD, "imapd", "--help"],
        cwd=root, env=_clean_env(), capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    for option in ("--config", "--listen", "--tls-cert", "--passwd-file", "--mail-location",
                   "--data-dir", "--allow-plaintext-auth"):
        assert option in result.stdout
    example = subprocess.run(
        [python, "-c", TWISTD, "imapd", "--example-config"],
        cwd=root, env=_clean_env(), capture_output=True, text=True, timeout=60,
    )
    assert example.returncode == 0 and "[limits]" in example.stdout


def test_imapd_deliver_script_installed(installed):
    """The install puts the LDA's console script beside the venv's python; it runs."""
    python, _, root = installed
    script = python.parent / "imapd-deliver"
    assert script.exists()
    result = subprocess.run([str(script), "--help"], cwd=root, env=_clean_env(),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "-d USER" in result.stdout
    assert subprocess.run([str(script)], cwd=root, env=_clean_env(), capture_output=True,
                          timeout=60).returncode == 64


def test_unwritable_plugin_cache_only_warns(installed):
    """
    When Twisted can't rewrite dropin.cache (read-only site-packages), it
    logs a warning and still finds the plugin.  Running as root, we make the
    write fail by putting a directory where the cache file goes.
    """
    python, site, root = installed
    cache = site / "twisted" / "plugins" / "dropin.cache"
    if cache.exists():
        cache.unlink()
    cache.mkdir()
    try:
        script = (
            "from twisted.logger import globalLogPublisher, formatEvent\n"
            "events = []\n"
            "globalLogPublisher.addObserver(lambda e: events.append(formatEvent(e)))\n"
            "from twisted.plugin import IPlugin, getPlugins\n"
            "from twisted.application.service import IServiceMaker\n"
            "names = [p.tapname for p in getPlugins(IServiceMaker)]\n"
            "assert 'imapd' in names, names\n"
            "print('\\n'.join(events))\n"
        )
        result = subprocess.run(
            [python, "-c", script], cwd=root, env=_clean_env(),
            capture_output=True, text=True, timeout=60,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"Unable to write to plugin cache {cache}" in result.stdout
        help_run = subprocess.run(
            [python, "-c", TWISTD, "imapd", "--help"],
            cwd=root, env=_clean_env(), capture_output=True, text=True, timeout=60,
        )
        assert help_run.returncode == 0 and "--listen" in help_run.stdout
    finally:
        cache.rmdir()


def test_imapd_admin_console_script(installed):
    """pip installs the imapd-admin command (setup.cfg console_scripts)."""
    python, _, root = installed
    script = Path(python).parent / "imapd-admin"
    assert script.exists()
    result = subprocess.run([str(script), "cluster", "--help"], cwd=root, env=_clean_env(),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    for command in ("add", "down", "up", "remove", "owner", "map", "flush", "export"):
        assert command in result.stdout
    # Issue 16's areas: a hash Dovecot's format, a usage error in one line.
    result = subprocess.run([str(script), "pw", "-s", "SSHA256", "-p", "x"], cwd=root,
                            env=_clean_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.startswith("{SSHA256}"), result.stderr
    result = subprocess.run([str(script), "mailbox", "status"], cwd=root, env=_clean_env(),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "one of the arguments -u/--user -A/--all-users" in result.stderr


def test_twistd_files_ignored_in_a_checkout():
    """
    Issue 16 item 9: the README's run command leaves twistd.pid (and,
    daemonized, twistd.log) in the working directory; a checkout ignores
    them, and the README says so.
    """
    root = os.path.join(os.path.dirname(__file__), "..")
    result = subprocess.run(["git", "check-ignore", "twistd.pid", "twistd.log", "twistd.log.1"],
                            cwd=root, capture_output=True, text=True)
    assert result.stdout.split() == ["twistd.pid", "twistd.log", "twistd.log.1"]
    with open(os.path.join(root, "README.md"), encoding="utf-8") as f:
        assert "`--pidfile=`" in f.read()
