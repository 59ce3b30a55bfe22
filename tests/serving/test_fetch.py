"""image_url downloads: scheme, address and redirect checks, size cap, timeout."""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from text_recognizer.serving.errors import BadURL, DownloadFailed, DownloadTooLarge, ForbiddenURL
from text_recognizer.serving.fetch import FetchLimits, address_refusal, fetch_image

from serving_helpers import image_server, png_bytes

PNG = png_bytes()
LOCAL = FetchLimits(max_bytes=2**20, timeout_s=5.0, allow_private=True)
STRICT = FetchLimits(max_bytes=2**20, timeout_s=5.0, allow_private=False)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with image_server(PNG) as url:
        yield url


@pytest.mark.parametrize(
    ("address", "refused_by_default", "refused_when_private_allowed"),
    [
        ("127.0.0.1", True, False),
        ("::1", True, False),
        ("10.1.2.3", True, False),
        ("172.16.0.1", True, False),
        ("192.168.1.1", True, False),
        ("fd00::1", True, False),
        ("169.254.169.254", True, True),  # cloud metadata: never
        ("fd00:ec2::254", True, True),  # AWS IPv6 metadata, inside the private fd00::/8: never
        ("fe80::1", True, True),
        ("224.0.0.1", True, True),
        ("0.0.0.0", True, True),
        ("240.0.0.1", True, True),
        ("100.64.0.1", True, True),  # carrier-grade NAT: not global
        ("::ffff:127.0.0.1", True, False),  # IPv4-mapped loopback
        ("::ffff:169.254.169.254", True, True),
        ("93.184.216.34", False, False),
        ("2606:4700::1111", False, False),
    ],
)
def test_address_refusal(address: str, refused_by_default: bool, refused_when_private_allowed: bool) -> None:
    ip = ipaddress.ip_address(address)
    assert (address_refusal(ip, allow_private=False) is not None) is refused_by_default
    assert (address_refusal(ip, allow_private=True) is not None) is refused_when_private_allowed


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/x.png",
        "http://localhost/x.png",
        "http://2130706433/x.png",  # 127.0.0.1 written as one number
        "http://[::1]/x.png",
        "http://10.0.0.1/x.png",
        "http://169.254.169.254/latest/meta-data/",
        "http://0.0.0.0/x.png",
    ],
)
def test_private_and_special_hosts_are_refused(url: str) -> None:
    with pytest.raises(ForbiddenURL, match="refused"):
        fetch_image(url, STRICT)


@pytest.mark.parametrize(
    "url", ["ftp://example.com/x.png", "file:///etc/passwd", "gopher://x/", "/relative.png", "http:///x.png"]
)
def test_only_http_urls_with_a_host(url: str) -> None:
    with pytest.raises(BadURL):
        fetch_image(url, STRICT)


def test_download_from_allowed_local_server(server: str) -> None:
    assert fetch_image(f"{server}/ok.png", LOCAL) == PNG


def test_loopback_server_refused_without_the_setting(server: str) -> None:
    with pytest.raises(ForbiddenURL, match="loopback"):
        fetch_image(f"{server}/ok.png", STRICT)


def test_redirect_followed_and_checked(server: str) -> None:
    assert fetch_image(f"{server}/redirect-ok", LOCAL) == PNG
    with pytest.raises(ForbiddenURL, match="link-local"):
        fetch_image(f"{server}/redirect-metadata", LOCAL)
    with pytest.raises(BadURL, match="http or https"):
        fetch_image(f"{server}/redirect-ftp", LOCAL)
    with pytest.raises(DownloadFailed, match="redirected more than"):
        fetch_image(f"{server}/loop", LOCAL)


def test_size_cap_declared_and_streamed(server: str) -> None:
    with pytest.raises(DownloadTooLarge, match="limit is"):
        fetch_image(f"{server}/big", LOCAL)
    with pytest.raises(DownloadTooLarge, match="more than"):
        fetch_image(f"{server}/big-chunked", LOCAL)


def test_timeout_and_http_errors(server: str) -> None:
    with pytest.raises(DownloadFailed, match="longer than"):
        fetch_image(f"{server}/slow", FetchLimits(max_bytes=2**20, timeout_s=0.5, allow_private=True))
    with pytest.raises(DownloadFailed, match="HTTP 404"):
        fetch_image(f"{server}/missing", LOCAL)


def test_unresolvable_host() -> None:
    with pytest.raises(DownloadFailed, match="does not resolve"):
        fetch_image("http://no-such-host.invalid/x.png", STRICT)


def test_a_slow_name_lookup_is_inside_the_download_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()

    def stuck_lookup(*args: object, **kwargs: object) -> list[object]:
        release.wait(10)  # a DNS server that does not answer
        raise socket.gaierror("no answer")

    monkeypatch.setattr(socket, "getaddrinfo", stuck_lookup)
    started = time.monotonic()
    with pytest.raises(DownloadFailed, match="did not resolve within"):
        fetch_image("http://slow-dns.example/x.png", FetchLimits(max_bytes=2**20, timeout_s=0.5))
    assert time.monotonic() - started < 2.0
    release.set()
