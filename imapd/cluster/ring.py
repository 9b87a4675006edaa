# -*- test-case-name: tests.imapd.cluster.test_ring -*-
"""
The ring of Dovecot 2.3's director (C{src/director/mail-host.c}).

Every host that is up contributes C{vhost_count} points (its weight,
default 100): point i is the first four bytes, big-endian, of
MD5("<ip>-<i>"), where <ip> is the textual address (never a host name).
Points are sorted by hash, then by the host's address bytes (the order
every director agrees on when two points collide).  A user belongs to
the first point whose hash is >= the user's hash, wrapping to the first
point.  Down hosts are not on the ring.
"""

from __future__ import annotations

import bisect
import ipaddress
from typing import Iterable, Optional

from imapd.cluster.hashing import hash32

__all__ = ["DEFAULT_VHOST_COUNT", "MAX_VHOST_COUNT", "Ring", "canonical_address",
           "address_sort_key", "host_points"]

#: Dovecot's VHOST_MULTIPLIER: points of a host whose weight is not set.
DEFAULT_VHOST_COUNT = 100
#: Dovecot refuses larger vhost counts (doveadm director add).
MAX_VHOST_COUNT = 1000


def canonical_address(text: str) -> str:
    """
    The textual form Dovecot hashes (C{net_ip2addr}: inet_ntop's), e.g.
    C{"127.0.0.2"}, C{"2001:db8::1"}.

    @raises ValueError: C{text} is not an IP address.
    """
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        raise ValueError(f"{text!r} is not an IP address (the ring hashes addresses, "
                         f"not host names)") from None


def address_sort_key(address: str) -> tuple[int, bytes]:
    """Dovecot's C{net_ip_cmp}: family first (IPv4 before IPv6), then bytes."""
    ip = ipaddress.ip_address(address)
    return (ip.version, ip.packed)


def host_points(address: str, vhost_count: int) -> list[int]:
    """The ring points of one host."""
    prefix = address.encode("ascii")
    return [hash32(prefix + b"-%d" % i) for i in range(vhost_count)]


class Ring:
    """
    The ring of the hosts that are up.

    @param hosts: (address, vhost_count) of every host that is up;
        addresses in L{canonical_address} form.
    """

    def __init__(self, hosts: Iterable[tuple[str, int]]) -> None:
        points = []
        for address, count in hosts:
            key = address_sort_key(address)
            points.extend((h, key, address) for h in host_points(address, count))
        points.sort()
        self._hashes = [p[0] for p in points]
        self._owners = [p[2] for p in points]

    def __len__(self) -> int:
        return len(self._hashes)

    def points(self) -> list[tuple[int, str]]:
        """(hash, address) of every point, in ring order."""
        return list(zip(self._hashes, self._owners))

    def lookup(self, hash_: int) -> Optional[str]:
        """The address owning C{hash_}, or None on an empty ring."""
        if not self._hashes:
            return None
        i = bisect.bisect_left(self._hashes, hash_)
        if i == len(self._hashes):
            i = 0
        return self._owners[i]
