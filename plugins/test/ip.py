"""Jinja tests for IP addresses and networks, on Python's ipaddress (no netaddr needed).

``'10.0.0.0/8' is algotrade.deploy.ip_network`` and
``'192.0.2.1' is algotrade.deploy.ip_address``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable


def ip_address(value: object) -> bool:
    """True for one IPv4 or IPv6 address written as text."""
    try:
        ipaddress.ip_address(str(value))
    except ValueError:
        return False
    return isinstance(value, str)


def ip_network(value: object) -> bool:
    """True for a network in CIDR notation (host bits zero), IPv4 or IPv6."""
    if not isinstance(value, str) or "/" not in value:
        return False
    try:
        ipaddress.ip_network(value, strict=True)
    except ValueError:
        return False
    return True


class TestModule:
    """Ansible's entry point for test plugins."""

    def tests(self) -> dict[str, Callable[[object], bool]]:
        return {"ip_address": ip_address, "ip_network": ip_network}
