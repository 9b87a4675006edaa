# -*- test-case-name: tests.imapd.cluster.test_service -*-
"""
The cluster's network services in the daemon: the Postfix socketmap
server (C{[cluster] socketmap_listen}) and the nginx auth_http service
(C{[cluster] auth_http_listen}), sharing one L{Directory} whose
placements are written to the shared store once a second when they
changed (L{PlacementFlushService}).
"""

from __future__ import annotations

from twisted.application import strports
from twisted.internet import threads
from twisted.logger import Logger

from imapd.cluster.periodic import Periodic

__all__ = ["PlacementFlushService", "add_cluster_services", "add_cluster_work",
           "build_authenticator", "cluster_listener_factories", "cluster_wanted",
           "health_checker"]

log = Logger(namespace="imapd.cluster")


class PlacementFlushService(Periodic):
    """Writes this node's placement records when they changed (in a thread)."""

    failure_message = "cannot write placements"

    def __init__(self, placements, interval: float = 1.0, clock=None) -> None:
        super().__init__(interval, clock)
        self.placements = placements

    def work(self):
        return threads.deferToThread(self.placements.flush)

    def stopService(self) -> None:
        super().stopService()
        try:
            self.placements.flush()
        except OSError as e:
            log.error("cannot write placements at shutdown: {e}", e=e)


def _check_node(directory, node: str) -> None:
    """Say at start when C{[cluster] node} names no host of the table."""
    from imapd.cluster.table import TableError

    try:
        known = directory.hosts.table().get(node) is not None
    except TableError as e:
        log.warn("Cannot read the host table: {e}", e=e)
        return
    if not known:
        log.warn("cluster.node {node!r} is not a host of the table {path}: no user is "
                 "placed here until it is added (imapd-admin cluster add)", node=node,
                 path=directory.hosts.path)


def session_check_interval(user_expire: float) -> float:
    """
    How often a node checks its users' placements: often enough that a
    flush or move ends sessions within seconds, and at least three times
    per C{user_expire} so refreshed placements never lapse.
    """
    return max(0.5, min(2.0, user_expire / 3))


def health_checker(section, hosts):
    """The L{HealthChecker} of a C{[cluster]} section."""
    from imapd.cluster.health import HealthChecker

    login = None
    if section.health_login:
        user, _, password = section.health_login.partition(":")
        login = (user, password)
    return HealthChecker(hosts, section.health_interval, section.health_timeout,
                         section.health_fall, section.health_rise, login,
                         proxy_header=section.health_proxy_protocol)


def build_authenticator(config, passwd_file: str):
    """
    The password check for auth_http: the daemon's own
    (L{imapd.auth.build_authenticator}: passwd-file or PAM passwords, the
    user database and C{first_valid_uid}), so nginx's lookup refuses
    exactly whom LOGIN refuses.
    """
    from types import SimpleNamespace

    from imapd.auth import build_authenticator as configured

    # Of the prepared defaults the builder reads only the passwd-file.
    return configured(config, SimpleNamespace(passwd_file=passwd_file))


def cluster_wanted(section, portal=None) -> bool:
    """Whether C{[cluster]} asks this daemon for any service or work."""
    tracking = bool(section.hosts_file and section.node and portal is not None)
    checking = bool(section.hosts_file and section.health_interval > 0)
    return bool(section.socketmap_listen or section.auth_http_listen or tracking or checking)


def cluster_listener_factories(config, passwd_file: str, directory) -> list:
    """
    The factory of each cluster listener, as (option, description,
    factory): the Postfix socketmap (C{socketmap_listen}) and nginx
    auth_http (C{auth_http_listen}), both answering from C{directory}.
    The single process listens itself; the multi-process master binds
    them and the services process adopts them (L{imapd.process.services}).
    """
    from imapd.cluster.authhttp import AuthHTTPResource, auth_http_site
    from imapd.cluster.socketmap import SocketmapFactory

    section = config.cluster
    result = []
    for description in section.socketmap_listen:
        result.append(("socketmap_listen", description,
                       SocketmapFactory(directory, section.recipient_delimiter)))
    if section.auth_http_listen:
        resource = AuthHTTPResource(build_authenticator(config, passwd_file), directory,
                                    key=section.auth_http_key, wait=section.auth_http_wait,
                                    max_attempts=section.auth_http_max_attempts,
                                    limits=config.limits)
        site = auth_http_site(resource)
        for description in section.auth_http_listen:
            result.append(("auth_http_listen", description, site))
    return result


def add_cluster_work(config, parent, portal=None):
    """
    Add to C{parent} what C{[cluster]} asks besides listening: writing
    placements, health checks of the hosts and, on a node named in the
    host table (C{[cluster] node}) with a C{portal}, keeping its users
    with sessions placed here (L{imapd.cluster.sessions}).

    @return: the L{Directory} the listeners answer from, or None when
        C{[cluster]} asks for nothing.
    """
    from imapd.cluster.owner import directory_from_config

    section = config.cluster
    if not cluster_wanted(section, portal):
        return None
    tracking = bool(section.hosts_file and section.node and portal is not None)
    checking = bool(section.hosts_file and section.health_interval > 0)
    directory = directory_from_config(section)
    PlacementFlushService(directory.placements).setServiceParent(parent)
    if checking:
        from imapd.cluster.exports import write_export_files

        checker = health_checker(section, directory.hosts)
        checker.on_change = lambda: write_export_files(config, directory)
        checker.setServiceParent(parent)
        log.info("Health checks of the hosts every {n:g}s", n=section.health_interval)
    if tracking:
        from imapd.cluster.sessions import NodeSessionsService, SessionTracker, TrackingRealm

        tracker = SessionTracker()
        if section.relay:
            from imapd.cluster.relay import RelayingRealm

            portal.realm = RelayingRealm(portal.realm, directory, section.node)
            log.info("Logins of users owned by other nodes are relayed to them")
        portal.realm = TrackingRealm(portal.realm, tracker, directory)
        NodeSessionsService(directory, tracker, section.node,
                            session_check_interval(section.user_expire)).setServiceParent(parent)
        log.info("Cluster node {node}: users with sessions here stay placed here, and "
                 "their sessions end when they are moved away", node=section.node)
        _check_node(directory, section.node)
    return directory


def log_cluster_listener(option: str, description: str) -> None:
    what = "Postfix socketmap" if option == "socketmap_listen" else "nginx auth_http"
    log.info("{what} on {description}", what=what, description=description)


def add_cluster_services(config, passwd_file: str, parent, portal=None) -> bool:
    """
    Add the configured cluster listeners and work (L{add_cluster_work})
    to C{parent}, listening here (the single process).

    @return: whether anything was added.
    """
    from conf.endpoints import twisted_description

    directory = add_cluster_work(config, parent, portal)
    if directory is None:
        return False
    for option, description, factory in cluster_listener_factories(config, passwd_file,
                                                                    directory):
        strports.service(twisted_description(description), factory).setServiceParent(parent)
        log_cluster_listener(option, description)
    return True
