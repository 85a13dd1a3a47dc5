import asyncio
import ipaddress
import socket
from typing import Any

import pytest

from rcsgate.webhooks import url_policy
from rcsgate.webhooks.url_policy import (
    CallbackUrlError,
    address_problem,
    check_callback_url,
    is_public_address,
    parse_ip_host,
    resolve_and_check,
)

ACCEPTED = [
    "https://example.com/hooks/rcs",
    "http://example.com",
    "HTTPS://Example.COM:8443/x?y=1#frag",
    "https://user:pass@example.com/hook",
    "https://example.com./trailing-dot",
    "https://sub-domain.example.co.uk/a/b",
    "https://bücher.example/hook",
    "http://93.184.216.34/hook",
    "http://8.8.8.8:8080/",
    "https://[2606:4700:4700::1111]/hook",
    "https://[2606:4700:4700::1111]:8443/hook",
    "http://[::ffff:8.8.8.8]/",  # mapped public IPv4
    "http://[64:ff9b::808:808]/",  # NAT64 of a public IPv4 (IPv6-only deployments)
    "http://0x08080808/",  # legacy spelling of a public address
    "http://134744072/",  # 8.8.8.8 as one decimal number
]

# (url, fragment of the error message)
REFUSED_PRIVATE = [
    ("http://127.0.0.1/", "loopback"),
    ("http://127.1/", "loopback"),
    ("http://127.0.1/", "loopback"),
    ("http://0x7f.0.0.1/", "loopback"),
    ("http://0x7F000001/", "loopback"),
    ("http://0177.0.0.1/", "loopback"),
    ("http://017700000001/", "loopback"),
    ("http://2130706433/", "loopback"),
    ("http://127.0.0.1./", "loopback"),
    ("http://[::1]/", "loopback"),
    ("http://[::ffff:127.0.0.1]/", "IPv4-mapped loopback"),
    ("http://[::ffff:7f00:1]/", "IPv4-mapped loopback"),
    ("http://[::ffff:10.0.0.1]/", "IPv4-mapped private"),
    ("http://[64:ff9b::7f00:1]/", "NAT64-embedded loopback"),
    ("http://[2002:a00:1::]/", "6to4-embedded private"),
    ("http://10.0.0.1/", "private"),
    ("http://10.1/", "private"),
    ("http://172.16.5.4:8080/", "private"),
    ("http://192.168.1.1/", "private"),
    ("http://[fc00::1]/", "private"),
    ("http://[fd12:3456::1]/", "private"),
    ("http://[fec0::1]/", "site-local"),
    ("http://224.0.0.1/", "multicast"),
    ("http://[ff02::1]/", "multicast"),
    ("http://240.0.0.1/", "reserved"),
    ("http://255.255.255.255/", "reserved"),
    ("http://0.0.0.0/", "unspecified"),
    ("http://0/", "unspecified"),
    ("http://[::]/", "unspecified"),
    ("http://100.64.0.1/", "not globally routable"),
    ("http://192.0.2.10/", "private"),  # documentation range
    ("http://localhost/", "local name"),
    ("http://LOCALHOST:8000/", "local name"),
    ("http://localhost./", "local name"),
    ("http://api.localhost/", "local name"),
    ("http://printer.local/", "local name"),
    ("http://db.internal/", "local name"),
    ("http://router.home.arpa/", "local name"),
    ("http://redis:6379/", "local name"),  # single-label container/search-domain names
]

# Link-local and cloud metadata destinations: refused whatever allow_private says, in every spelling.
NEVER_ALLOWED = [
    ("http://169.254.169.254/latest/meta-data", "link-local"),
    ("http://169.254.43518/", "link-local"),  # 169.254.169.254, short form
    ("http://2852039166/", "link-local"),  # 169.254.169.254 as one decimal number
    ("http://0xa9fea9fe/", "link-local"),
    ("http://0251.0376.0251.0376/", "link-local"),  # octal
    ("http://0xa9.0xfe.0xa9.0xfe/", "link-local"),
    ("http://169.254.0.1:8080/", "link-local"),
    ("http://[::ffff:169.254.169.254]/", "link-local"),
    ("http://[::ffff:a9fe:a9fe]/", "link-local"),
    ("http://[64:ff9b::a9fe:a9fe]/", "link-local"),
    ("http://[2002:a9fe:a9fe::]/", "link-local"),
    ("http://[fe80::1]/", "link-local"),
    ("http://[fe80::1%25eth0]/", "link-local"),
    ("http://[fd00:ec2::254]/", "private|cloud metadata"),
    ("http://100.100.100.200/", "not globally routable|cloud metadata"),
    ("http://168.63.129.16/", "cloud metadata"),
    ("http://metadata.google.internal/computeMetadata/v1/", "cloud metadata"),
    ("http://METADATA.google.internal./", "cloud metadata"),
    ("http://metadata/", "cloud metadata"),
    ("http://instance-data.ec2.internal/", "cloud metadata"),
]

# Refused whatever allow_private says.
MALFORMED = [
    ("", "http:// or https://"),
    ("example.com/hook", "http:// or https://"),
    ("ftp://example.com/", "http:// or https://"),
    ("file:///etc/passwd", "http:// or https://"),
    ("javascript:alert(1)", "http:// or https://"),
    ("https://", "no host"),
    ("https:///path", "no host"),
    ("https://user@/path", "no host"),
    ("https://example.com:0/", "port"),
    ("https://example.com:99999/", "malformed"),
    ("https://example.com:abc/", "malformed"),
    ("https://[::1/", "malformed"),
    ("https://[zz]/", "malformed"),
    ("https://[::1]x/", "malformed host"),
    ("https://exa mple.com/", "whitespace"),
    (" https://example.com/", "whitespace"),
    ("https://example.com/\n", "whitespace"),
    ("https://exam\tple.com/", "whitespace"),
    ("https://example.com\x00.evil/", "whitespace or control"),
    ("https://example.com\\@127.0.0.1/", "malformed host"),
    ("https://ex%41mple.com/", "not a valid host name"),
    ("https://exa_mple..com/", "not a valid host name"),
    ("https://-example.com/", "not a valid host name"),
    ("https://" + "a" * 64 + ".com/", "not a valid host name"),
    ("http://1.2.3.4.5/", "not a valid IPv4"),
    ("http://256.1.1.1/", "not a valid IPv4"),
    ("http://1.2.3.256/", "not a valid IPv4"),
    ("http://4294967296/", "not a valid IPv4"),
    ("http://08.0.0.1/", "not a valid IPv4"),
    ("http://example.123/", "not a valid IPv4"),
    ("https://example.com/" + "a" * 2048, "longer than 2048"),
]


@pytest.mark.parametrize("url", ACCEPTED)
@pytest.mark.parametrize("allow_private", [False, True])
def test_accepted(url: str, allow_private: bool) -> None:
    check_callback_url(url, allow_private=allow_private)


@pytest.mark.parametrize(("url", "reason"), REFUSED_PRIVATE)
def test_refused_unless_private_allowed(url: str, reason: str) -> None:
    with pytest.raises(CallbackUrlError, match=reason):
        check_callback_url(url, allow_private=False)
    check_callback_url(url, allow_private=True)


@pytest.mark.parametrize(("url", "reason"), NEVER_ALLOWED)
@pytest.mark.parametrize("allow_private", [False, True])
def test_link_local_and_metadata_refused_even_when_private_allowed(
    url: str, reason: str, allow_private: bool
) -> None:
    with pytest.raises(CallbackUrlError, match=reason):
        check_callback_url(url, allow_private=allow_private)


@pytest.mark.parametrize(("url", "reason"), MALFORMED)
@pytest.mark.parametrize("allow_private", [False, True])
def test_malformed_always_refused(url: str, reason: str, allow_private: bool) -> None:
    with pytest.raises(CallbackUrlError, match=reason):
        check_callback_url(url, allow_private=allow_private)


def test_error_is_a_value_error_and_does_not_leak_credentials() -> None:
    with pytest.raises(ValueError) as info:
        check_callback_url("http://admin:s3cret@127.0.0.1/", allow_private=False)
    assert "s3cret" not in str(info.value)


def test_length_limit_boundary() -> None:
    base = "https://example.com/"
    check_callback_url(base + "a" * (2048 - len(base)), allow_private=False)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0x7f.0.0.1", "127.0.0.1"),
        ("0X7F.0x0.0.01", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0x", "0.0.0.0"),
        ("1.2.3.4.", "1.2.3.4"),
        ("[::1]", "::1"),
        ("::ffff:1.2.3.4", "::ffff:102:304"),
        ("example.com", None),
        ("0x7f.example", None),
        ("1.2.3.com", None),
        ("123abc", None),
    ],
)
def test_parse_ip_host(host: str, expected: str | None) -> None:
    ip = parse_ip_host(host)
    assert (None if ip is None else str(ip)) == expected


def test_parse_ip_host_does_not_treat_unicode_digits_as_numbers() -> None:
    # str.isdigit() accepts Arabic-Indic digits; an IPv4 parser must not.
    assert parse_ip_host("١٢٧") is None
    with pytest.raises(CallbackUrlError):
        parse_ip_host("١٢٧.0.0.1")


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2606:4700::1", True),
        ("::ffff:8.8.8.8", True),
        ("64:ff9b::808:808", True),
        ("64:ff9b:1::1", False),
        ("::127.0.0.1", False),
        ("2001:db8::1", False),
        ("198.18.0.1", False),
        ("127.0.0.1", False),
    ],
)
def test_is_public_address(address: str, public: bool) -> None:
    ip = ipaddress.ip_address(address)
    assert is_public_address(ip) is public
    assert (address_problem(ip) is None) is public


def _fake_getaddrinfo(monkeypatch: pytest.MonkeyPatch, answers: dict[str, list[str]]) -> list[str]:
    calls: list[str] = []

    async def getaddrinfo(self: Any, host: str, port: int, **kwargs: Any) -> list[Any]:
        calls.append(host)
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        out = []
        for a in answers[host]:
            family = socket.AF_INET6 if ":" in a else socket.AF_INET
            sockaddr = (a, port, 0, 0) if family == socket.AF_INET6 else (a, port)
            out.append((family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", sockaddr))
        return out

    monkeypatch.setattr(asyncio.BaseEventLoop, "getaddrinfo", getaddrinfo)
    return calls


def test_resolve_and_check_public(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _fake_getaddrinfo(monkeypatch, {"hooks.example.com": ["93.184.216.34", "2606:2800:220:1::1"]})
    asyncio.run(resolve_and_check("hooks.example.com", 443, allow_private=False))
    assert calls == ["hooks.example.com"]


@pytest.mark.parametrize(
    "answers",
    [
        ["127.0.0.1"],
        ["93.184.216.34", "10.0.0.5"],  # any private address poisons the answer
        ["2606:2800:220:1::1", "::1"],
        ["::ffff:169.254.169.254"],
        ["fe80::1%eth0"],
    ],
)
def test_resolve_and_check_refuses_private_answers(
    monkeypatch: pytest.MonkeyPatch, answers: list[str]
) -> None:
    _fake_getaddrinfo(monkeypatch, {"rebind.example.com": answers})
    with pytest.raises(CallbackUrlError, match=r"rebind\.example\.com"):
        asyncio.run(resolve_and_check("rebind.example.com", 443, allow_private=False))


def test_resolve_and_check_allow_private_refuses_only_link_local(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = {
        "rebind.example.com": ["127.0.0.1", "10.0.0.1"],
        "localhost": ["127.0.0.1"],
        "imds.example.com": ["10.0.0.1", "169.254.169.254"],
        "imds6.example.com": ["fe80::1%eth0"],
    }
    calls = _fake_getaddrinfo(monkeypatch, answers)
    asyncio.run(resolve_and_check("rebind.example.com", 443, allow_private=True))
    asyncio.run(resolve_and_check("localhost", 80, allow_private=True))
    asyncio.run(resolve_and_check("127.0.0.1", 80, allow_private=True))
    for host in ("imds.example.com", "imds6.example.com"):
        with pytest.raises(CallbackUrlError, match="link-local"):
            asyncio.run(resolve_and_check(host, 80, allow_private=True))
    with pytest.raises(CallbackUrlError, match="link-local"):
        asyncio.run(resolve_and_check("169.254.169.254", 80, allow_private=True))
    assert calls == ["rebind.example.com", "localhost", "imds.example.com", "imds6.example.com"]


@pytest.mark.parametrize(
    ("address", "never"),
    [
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("::ffff:169.254.169.254", "IPv4-embedded link-local"),
        ("fd00:ec2::254", "cloud metadata"),
        ("127.0.0.1", None),
        ("10.0.0.1", None),
        ("::1", None),
        ("8.8.8.8", None),
    ],
)
def test_never_allowed(address: str, never: str | None) -> None:
    assert url_policy.never_allowed(ipaddress.ip_address(address)) == never


def test_resolve_and_check_ip_literals_need_no_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _fake_getaddrinfo(monkeypatch, {})
    asyncio.run(resolve_and_check("8.8.8.8", 80, allow_private=False))
    asyncio.run(resolve_and_check("[2606:4700::1]", 80, allow_private=False))
    for host in ("127.0.0.1", "0x7f.1", "[::1]", "::ffff:10.0.0.1"):
        with pytest.raises(CallbackUrlError):
            asyncio.run(resolve_and_check(host, 80, allow_private=False))
    assert calls == []


def test_resolve_and_check_refuses_local_names_without_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _fake_getaddrinfo(monkeypatch, {})
    with pytest.raises(CallbackUrlError, match="local name"):
        asyncio.run(resolve_and_check("localhost", 80, allow_private=False))
    assert calls == []


def test_resolve_and_check_resolution_failure_is_oserror(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_getaddrinfo(monkeypatch, {})
    with pytest.raises(OSError) as info:
        asyncio.run(resolve_and_check("nxdomain.example.com", 443, allow_private=False))
    assert not isinstance(info.value, CallbackUrlError)


def test_module_exports() -> None:
    assert set(url_policy.__all__) >= {"CallbackUrlError", "check_callback_url", "resolve_and_check"}
