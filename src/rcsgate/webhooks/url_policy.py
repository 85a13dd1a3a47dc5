"""Callback URL safety: keep customer-supplied webhook URLs from reaching internal services (SSRF).

Two checks, because neither is sufficient alone:

* :func:`check_callback_url` runs when a URL is stored and before each delivery. It needs no
  network and refuses URLs whose host is a non-public IP literal or a well-known local name.
* at delivery time, every address a name resolves to is checked before connecting to one of
  them (webhooks/http_client.py, which connects to exactly the address it checked;
  :func:`resolve_and_check` is the same check for callers that connect by name), so a name that
  was public when registered but now points inside (DNS rebinding) is caught.

``allow_private`` opens loopback, private and local-name destinations for development setups that
deliver to localhost (``RCSGATE_WEBHOOKS_ALLOW_PRIVATE``; ``make run`` sets it). It never opens
link-local addresses (169.254.0.0/16, fe80::/10: the cloud metadata service at 169.254.169.254 above
all) nor the other cloud metadata endpoints (:data:`METADATA_ADDRESSES`, :data:`METADATA_NAMES`):
no development setup delivers webhooks there, and an attacker's first target is exactly there.

The API applies :func:`check_callback_url` when it accepts a URL (a request's ``callback_url``, an
account's callback URL), so a URL that could never be called is refused with a 422 rather than
accepted and dropped at send time; names are not resolved then, only at delivery.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from urllib.parse import urlsplit

__all__ = [
    "MAX_URL_LENGTH",
    "CallbackUrlError",
    "address_problem",
    "check_callback_url",
    "destination_problem",
    "is_public_address",
    "never_allowed",
    "parse_ip_host",
    "resolve_and_check",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_URL_LENGTH = 2048

# Names that resolve (or may resolve, via mDNS / split-horizon DNS) to the local machine or
# network. RFC 6761 (localhost, local), RFC 8375 (home.arpa), ICANN's reserved .internal.
_LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain"})
_LOCAL_SUFFIXES = (".localhost", ".local", ".localdomain", ".internal", ".home.arpa")

_NAT64_WKP = ipaddress.IPv6Network("64:ff9b::/96")

# Cloud metadata endpoints outside the link-local range: AWS's IPv6 one (a unique local address),
# Alibaba Cloud's (carrier-grade NAT space) and Azure's WireServer (a public address that is only
# reachable, and answered by the platform, from inside Azure).
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("fd00:ec2::254", "100.100.100.200", "168.63.129.16")
)
# Names of metadata services (GCP's; AWS's instance-data): refused even when local names are allowed.
METADATA_NAMES = frozenset(
    {"metadata", "metadata.google.internal", "metadata.goog", "instance-data", "instance-data.ec2.internal"}
)

_DEC_RE = re.compile(r"[0-9]+")
_OCT_RE = re.compile(r"0[0-7]*")
_HEX_RE = re.compile(r"0[xX][0-9a-fA-F]*")
_LABEL_RE = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
# Authority host part: bracketed IPv6 (optionally with port) or anything without brackets.
_BRACKETED_RE = re.compile(r"\[[^\[\]]*\](?::[0-9]*)?")


class CallbackUrlError(ValueError):
    """The callback URL is malformed or points somewhere webhooks must not be sent."""


def address_problem(ip: IPAddress) -> str | None:
    """Why ``ip`` is not a public unicast destination, or ``None`` if it is one."""
    if isinstance(ip, ipaddress.IPv6Address):
        # Embedded IPv4 addresses are judged by the IPv4 they actually reach; otherwise the
        # stdlib calls every mapped/NAT64 address "reserved", which would break delivery from
        # IPv6-only hosts using DNS64 and, on older Pythons, pass ::ffff:127.0.0.1 as public.
        mapped = ip.ipv4_mapped
        if mapped is not None:
            problem = address_problem(mapped)
            return None if problem is None else f"IPv4-mapped {problem}"
        if ip in _NAT64_WKP:
            problem = address_problem(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
            return None if problem is None else f"NAT64-embedded {problem}"
        if ip.sixtofour is not None:
            problem = address_problem(ip.sixtofour)
            if problem is not None:
                return f"6to4-embedded {problem}"
        if ip.is_site_local:
            return "site-local"
    # Order matters only for the message: the most specific category wins.
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if ip.is_reserved:
        return "reserved"
    if ip.is_private:
        return "private"
    if not ip.is_global:
        # e.g. 100.64.0.0/10 (carrier-grade NAT), which is neither "private" nor "reserved".
        return "not globally routable"
    return None


def never_allowed(ip: IPAddress) -> str | None:
    """Why ``ip`` is refused even when private destinations are allowed (link-local or a cloud
    metadata address, in any IPv6 embedding of an IPv4 one), or ``None``."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in _NAT64_WKP:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None and (problem := never_allowed(embedded)) is not None:
            return f"IPv4-embedded {problem}"
    if ip in METADATA_ADDRESSES:
        return "cloud metadata"
    if ip.is_link_local:
        return "link-local"
    return None


def destination_problem(ip: IPAddress, *, allow_private: bool) -> str | None:
    """Why webhooks must not go to ``ip`` under the policy, or ``None``: :func:`address_problem`, or
    with ``allow_private`` only :func:`never_allowed`."""
    if allow_private:
        return never_allowed(ip)
    return address_problem(ip) or never_allowed(ip)


def is_public_address(ip: IPAddress) -> bool:
    """True if ``ip`` is a globally routable unicast address."""
    return address_problem(ip) is None


def _parse_ipv4_number(part: str) -> int | None:
    if _HEX_RE.fullmatch(part):
        return int(part[2:] or "0", 16)
    if len(part) > 1 and _OCT_RE.fullmatch(part):
        return int(part[1:], 8)
    if _DEC_RE.fullmatch(part) and not (len(part) > 1 and part.startswith("0")):
        return int(part)
    return None


def _ends_in_number(part: str) -> bool:
    return bool(_DEC_RE.fullmatch(part) or _HEX_RE.fullmatch(part))


def parse_ip_host(host: str) -> IPAddress | None:
    """Interpret a URL host as an IP address the way browsers and ``inet_aton`` do.

    Returns ``None`` for a domain name. Besides canonical forms this understands the legacy
    IPv4 spellings (``127.1``, ``0x7f.0.0.1``, ``0177.0.0.1``, ``2130706433``) that
    ``ipaddress`` rejects but resolvers happily connect to; it follows the WHATWG URL
    standard's IPv4 parser. Raises :class:`CallbackUrlError` for a host that looks numeric
    but is not a valid address (such hosts can never be legitimate DNS names).
    """
    candidate = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if ":" in candidate:
        try:
            return ipaddress.IPv6Address(candidate)
        except ValueError:
            raise CallbackUrlError(f"callback URL host {host!r} is not a valid IPv6 address") from None
    parts = candidate.split(".")
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()
    if not _ends_in_number(parts[-1]):
        return None
    numbers = [_parse_ipv4_number(part) for part in parts]
    if len(parts) > 4 or any(n is None for n in numbers):
        raise CallbackUrlError(f"callback URL host {host!r} is not a valid IPv4 address")
    values = [n for n in numbers if n is not None]
    if any(n > 255 for n in values[:-1]) or values[-1] >= 256 ** (5 - len(values)):
        raise CallbackUrlError(f"callback URL host {host!r} is not a valid IPv4 address")
    address = values[-1]
    for index, n in enumerate(values[:-1]):
        address += n * 256 ** (3 - index)
    return ipaddress.IPv4Address(address)


def _classify_host(host: str) -> IPAddress | str:
    """Validate ``host`` syntactically; return its IP for literals, else its IDNA ASCII name."""
    ip = parse_ip_host(host)
    if ip is not None:
        return ip
    name = host.lower().removesuffix(".")
    try:
        # Resolvers see the IDNA (punycode) form; validate that, not the Unicode spelling.
        ascii_name = name.encode("idna").decode("ascii")
    except UnicodeError:
        raise CallbackUrlError(f"callback URL host {host!r} is not a valid host name") from None
    labels = ascii_name.split(".")
    if len(ascii_name) > 253 or not all(_LABEL_RE.fullmatch(label) for label in labels):
        raise CallbackUrlError(f"callback URL host {host!r} is not a valid host name")
    return ascii_name


def _check_host(host: str, *, allow_private: bool) -> IPAddress | str:
    classified = _classify_host(host)
    if not isinstance(classified, str):
        ip = classified
        problem = destination_problem(ip, allow_private=allow_private)
        if problem is not None:
            shown = str(ip) if str(ip) == host else f"{host!r} ({ip})"
            raise CallbackUrlError(
                f"callback URL host {shown} is a {problem} address; "
                + (
                    "webhooks are never sent there"
                    if allow_private
                    else "webhooks are only sent to public addresses"
                )
            )
        return ip
    name = classified
    if name in METADATA_NAMES:
        raise CallbackUrlError(
            f"callback URL host {host!r} is a cloud metadata service; webhooks are never sent there"
        )
    if allow_private:
        return name
    # Single-label names ("redis", "metadata") only resolve through search domains or container
    # DNS, i.e. to internal services; every public host name has at least one dot.
    if name in _LOCAL_NAMES or name.endswith(_LOCAL_SUFFIXES) or "." not in name:
        raise CallbackUrlError(
            f"callback URL host {host!r} is a local name; webhooks are only sent to public hosts"
        )
    return name


def check_callback_url(url: str, *, allow_private: bool) -> None:
    """Raise :class:`CallbackUrlError` unless ``url`` is an acceptable webhook destination.

    Requires ``http``/``https``, a valid host and port, at most 2048 characters, and no
    whitespace or control characters. Unless ``allow_private``, refuses hosts that are
    non-public IP literals (in any spelling) or local names such as ``localhost``; whatever
    ``allow_private`` says, refuses link-local and cloud metadata hosts. Resolves nothing.
    """
    if len(url) > MAX_URL_LENGTH:
        raise CallbackUrlError(f"callback URL is longer than {MAX_URL_LENGTH} characters")
    # urlsplit silently strips tabs/newlines and leading control characters, so the URL it
    # judges could differ from the one stored and later sent; refuse such input outright.
    if not url.isprintable() or any(ch.isspace() for ch in url):
        raise CallbackUrlError("callback URL must not contain whitespace or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise CallbackUrlError(f"callback URL is malformed: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise CallbackUrlError("callback URL must start with http:// or https://")
    host = parts.hostname
    if not host:
        raise CallbackUrlError("callback URL has no host")
    authority_host = parts.netloc.rpartition("@")[2]
    # Parsers disagree about backslashes and stray brackets (WHATWG treats "\" as "/"), which
    # is the classic way to make a checker and the HTTP client see different hosts.
    if "\\" in parts.netloc or (
        ("[" in authority_host or "]" in authority_host) and not _BRACKETED_RE.fullmatch(authority_host)
    ):
        raise CallbackUrlError("callback URL has a malformed host")
    if port == 0:
        raise CallbackUrlError("callback URL port must be between 1 and 65535")
    if authority_host.startswith("[") and ":" not in host:
        raise CallbackUrlError("callback URL host in brackets must be an IPv6 address")
    # allow_private waives only the public-destination rule: malformed hosts, link-local and metadata
    # hosts are still refused.
    _check_host(host, allow_private=allow_private)


async def resolve_and_check(host: str, port: int, *, allow_private: bool) -> None:
    """Resolve ``host`` now and raise :class:`CallbackUrlError` if any address is not public.

    Refusing when *any* address is private (not just the first) matters because the HTTP
    client may try them all. Resolution failures propagate as :class:`OSError`
    (``socket.gaierror``): they are transient network problems, not policy violations.
    IP literals are checked without DNS. With ``allow_private`` only link-local and metadata
    addresses are refused (:func:`never_allowed`).
    """
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not isinstance(_check_host(bare, allow_private=allow_private), str):
        return
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(bare, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    if not infos:
        raise OSError(f"no addresses found for {bare!r}")
    for _family, _type, _proto, _canonname, sockaddr in infos:
        address = str(sockaddr[0])
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            raise CallbackUrlError(
                f"callback URL host {bare!r} resolved to unusable address {address!r}"
            ) from None
        problem = destination_problem(ip, allow_private=allow_private)
        if problem is not None:
            raise CallbackUrlError(
                f"callback URL host {bare!r} resolves to {ip}, a {problem} address; "
                + (
                    "webhooks are never sent there"
                    if allow_private
                    else "webhooks are only sent to public addresses"
                )
            )
