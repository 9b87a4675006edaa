"""
The [cluster] options: what start-up refuses, naming the option.
"""

import pytest

from conf import ConfigError, load_config


@pytest.mark.parametrize("overrides,option,message", [
    ({"cluster.socketmap_listen": ["tcp:10024:interface=127.0.0.1"]},
     "cluster.socketmap_listen", "needs 'cluster.hosts_file'"),
    ({"cluster.auth_http_listen": ["tcp:10080:interface=127.0.0.1"]},
     "cluster.auth_http_listen", "needs 'cluster.hosts_file'"),
    ({"cluster.auth_http_listen": ["tls:10080"]}, "cluster.auth_http_listen", "no TLS"),
    ({"cluster.username_hash": "%{invalid}"}, "cluster.username_hash", "unknown variable"),
    ({"cluster.export_files": ["postfix:/etc/x"]}, "cluster.export_files", "FORMAT:/absolute"),
    ({"cluster.export_files": ["tsv:relative"]}, "cluster.export_files", "FORMAT:/absolute"),
    ({"cluster.health_fall": 0}, "cluster.health_fall", "greater than 0"),
    ({"cluster.relay": True, "cluster.hosts_file": "/x"}, "cluster.relay",
     "needs 'cluster.node'"),
    ({"haproxy_trusted_networks": ["10.0.0.0/33"]}, "haproxy_trusted_networks",
     "is not a network"),
])
def test_refused(tmp_path, overrides, option, message):
    """Each unusable [cluster] setting stops start-up with the option's name."""
    with pytest.raises(ConfigError) as info:
        load_config(None, overrides)
    assert info.value.option == option
    assert message in info.value.reason


def test_accepted(tmp_path):
    """A complete cluster section loads; paths are made absolute."""
    config = load_config(None, {
        "cluster.hosts_file": "store/hosts.json",
        "cluster.socketmap_listen": ["tcp:10024:interface=127.0.0.1"],
        "cluster.auth_http_listen": ["unix:/run/imapd-auth"],
        "cluster.username_hash": "%Ln",
        "cluster.export_files": ["transport:/etc/postfix/imapd_transport"],
    })
    assert config.cluster.hosts_file.endswith("/store/hosts.json")
    assert config.cluster.hosts_file.startswith("/")
    assert config.cluster.username_hash == "%Ln"
