"""Where a webhook may be POSTed. An agent can name its own URL (a request's callback_url), so
the product never calls a loopback, link-local, private or otherwise non-public address on an
agent's word: only a host an admin allowed, in HITL_WEBHOOK_ALLOWED_HOSTS or by setting it as
the agent's own webhook URL. Checked when the URL arrives and again before every attempt,
because what a name resolves to can change in between."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Collection
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator

from .models import Agent

# The model field's length (ReviewRequest.callback_url).
MAX_URL_LENGTH = 2000
SCHEMES = ("http", "https")

_url_syntax = URLValidator(schemes=list(SCHEMES))


def allowed_hosts(agent: Agent) -> set[str]:
    """Hosts an admin allowed whatever their address: the setting's, and the host of the
    agent's own webhook URL (an admin set that)."""
    hosts = {host.lower() for host in settings.HITL_WEBHOOK_ALLOWED_HOSTS}
    own = _hostname(agent.webhook_url)
    if own:
        hosts.add(own)
    return hosts


def url_problem(
    url: str, allowed: Collection[str], setting: str = "HITL_WEBHOOK_ALLOWED_HOSTS"
) -> str | None:
    """Why the product must not POST to this URL, or None; `setting` is the one an admin
    allows a host in.

    A name that does not resolve (yet) is not refused here: its POST fails as a connection
    error, which the outbox retries, and each retry checks again."""
    if len(url) > MAX_URL_LENGTH:
        return f"The URL must be at most {MAX_URL_LENGTH} characters."
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme not in SCHEMES:
        return "The URL must start with http:// or https://."
    try:
        _url_syntax(url)
    except ValidationError:
        return "This is not a valid URL."
    host = _hostname(url)
    if not host:
        return "The URL must name a host."
    if host in allowed:
        return None
    for address in _addresses(host):
        if not address.is_global or address.is_multicast:
            return (
                f"{host} is a loopback, link-local, private or reserved address ({address}); "
                f"an admin must allow the host ({setting}) before it is called."
            )
    return None


def _hostname(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:  # a malformed IPv6 literal
        return ""


def _addresses(host: str) -> set[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """Every address the host stands for: itself when it is one, else what it resolves to."""
    try:
        return {_unmapped(ipaddress.ip_address(host))}
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return set()
    # A scope id (fe80::1%eth0) is not part of the address.
    return {_unmapped(ipaddress.ip_address(str(info[4][0]).split("%")[0])) for info in infos}


def _unmapped(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """::ffff:127.0.0.1 reaches 127.0.0.1: judge the IPv4 address it carries."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address
