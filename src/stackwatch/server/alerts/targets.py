"""Where an alert channel may connect: the address rules every channel kind shares.

Three classes of address:

* **never** — link-local and cloud metadata addresses (``169.254.0.0/16``, ``fe80::/10``, ``fd00:ec2::254``,
  ``100.100.100.200``), "this host" (``0.0.0.0/8``, ``::``), the same in any IPv6 form that embeds an IPv4 address
  (IPv4-mapped, IPv4-compatible, NAT64, 6to4, Teredo), and the well-known metadata host names. No setting opens
  them: a notification has nothing to say to an instance's credentials service.
* **private** — every other address that is not globally routable (loopback, RFC 1918, CGNAT, unique local,
  multicast, reserved): refused when ``STACKWATCH_ALERTS_ALLOW_PRIVATE_TARGETS`` is off.
* **public** — the rest.

:func:`check_target` applies the rules when a channel is saved, on every address the host resolves to now.
That is advice for the user, not the protection: a name can resolve elsewhere when a message is sent (DNS
rebinding). The protection is :mod:`.guard`, which applies :func:`verdict` to the address each connection is
actually made to.
"""

from __future__ import annotations

import enum
import ipaddress
import socket
from typing import Any

__all__ = [
    "METADATA_NAMES",
    "NEVER_NETWORKS",
    "Reach",
    "TargetRefused",
    "allows_private",
    "check_target",
    "is_metadata_name",
    "refusal",
    "resolve",
    "verdict",
]

_PRIVATE_SETTING = "STACKWATCH_ALERTS_ALLOW_PRIVATE_TARGETS is off"

NEVER_NETWORKS = tuple(
    ipaddress.ip_network(network)
    for network in (
        "0.0.0.0/8",  # "this host": connecting to 0.0.0.0 reaches the local machine
        "169.254.0.0/16",  # link-local: AWS, Azure, GCP, OpenStack, DigitalOcean, Oracle metadata at .169.254
        "100.100.100.200/32",  # Alibaba Cloud metadata
        "::/128",
        "fe80::/10",  # IPv6 link-local
        "fd00:ec2::254/128",  # AWS metadata over IPv6
    )
)

# Names of metadata services (they resolve to the addresses above inside their cloud, but a resolver may say
# otherwise, and the name alone says enough). Sub-domains of these are refused too.
METADATA_NAMES = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.azure.internal",
        "metadata.tencentyun.com",
        "metadata.platformequinix.com",
        "metadata.packet.net",
    }
)

# IPv6 prefixes that carry an IPv4 address in their last 32 bits.
_IPV4_IN_LAST_32 = tuple(
    ipaddress.ip_network(network)
    for network in (
        "::/96",  # IPv4-compatible (deprecated, still routed by some stacks)
        "::ffff:0:0/96",  # IPv4-mapped
        "::ffff:0:0:0/96",  # IPv4-translated
        "64:ff9b::/96",  # NAT64
        "64:ff9b:1::/48",  # local NAT64
    )
)


class Reach(enum.IntEnum):
    """How far a channel may go to an address; higher is stricter."""

    PUBLIC = 1
    PRIVATE = 2
    NEVER = 3


class TargetRefused(ValueError):
    """A target a channel may not connect to; the message says which address and why."""


def allows_private(settings: Any) -> bool:
    """Whether ``settings`` let channels reach private addresses (no settings: yes)."""
    return settings is None or bool(settings.alerts_allow_private_targets)


def _ipv4_reach(ip: ipaddress.IPv4Address) -> Reach:
    if any(ip in network for network in NEVER_NETWORKS):
        return Reach.NEVER
    return Reach.PUBLIC if ip.is_global and not ip.is_multicast else Reach.PRIVATE


def _embedded(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    found = [ipaddress.IPv4Address(ip.packed[-4:])] if any(ip in n for n in _IPV4_IN_LAST_32) else []
    if ip.sixtofour is not None:
        found.append(ip.sixtofour)
    if ip.teredo is not None:
        found.extend(ip.teredo)
    return found


def _ipv6_reach(ip: ipaddress.IPv6Address) -> Reach:
    if any(ip in network for network in NEVER_NETWORKS):
        return Reach.NEVER
    own = Reach.PUBLIC if ip.is_global and not ip.is_multicast else Reach.PRIVATE
    if ip == ipaddress.IPv6Address("::1"):
        return Reach.PRIVATE
    return max([own, *(_ipv4_reach(v4) for v4 in _embedded(ip))])


def verdict(address: str) -> Reach | None:
    """The class of an IP address literal (an IPv6 zone such as ``%eth0`` is ignored); ``None`` if not one."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return None
    return _ipv4_reach(ip) if isinstance(ip, ipaddress.IPv4Address) else _ipv6_reach(ip)


def is_metadata_name(host: str) -> bool:
    name = host.strip().rstrip(".").lower()
    return any(name == known or name.endswith(f".{known}") for known in METADATA_NAMES)


def refusal(reach: Reach, *, allow_private: bool) -> str | None:
    """Why an address of class ``reach`` is refused ("a private address (…)"); ``None`` when it is allowed."""
    if reach is Reach.NEVER:
        return "a link-local or cloud metadata address, which alert channels never reach"
    if reach is Reach.PRIVATE and not allow_private:
        return f"a private address ({_PRIVATE_SETTING})"
    return None


def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (``OSError`` when it does not). Numeric hosts in any spelling the
    system accepts (``2130706433``, ``0x7f.1``, ``0177.0.0.1``) come back as the address they mean."""
    return [str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


def check_target(host: str, port: int, *, allow_private: bool) -> None:
    """Refuse ``host`` (``TargetRefused``) if it is a metadata name or any address it resolves to is refused.

    Every address is checked: a name with a public and a private address could be answered with either. A name
    that does not resolve passes: it may resolve later, and then the connection guard checks it.
    """
    if is_metadata_name(host):
        raise TargetRefused(f"{host} is a cloud metadata name, which alert channels never reach")
    try:
        addresses = resolve(host, port)
    except (OSError, UnicodeError):
        return
    for address in addresses:
        reach = verdict(address)
        reason = refusal(Reach.PRIVATE if reach is None else reach, allow_private=allow_private)
        if reason is not None:
            said = f"{address} is" if address == host else f"{host} resolves to {address},"
            raise TargetRefused(f"{said} {reason}")
