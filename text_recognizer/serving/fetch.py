"""Safe download of a user-supplied ``image_url`` (server-side request forgery defences).

* Only ``http`` and ``https``.
* The host is resolved once and every address checked; the connection then goes to that checked address (the
  ``Host`` header and TLS SNI keep the name), so a DNS answer cannot change between check and use.
* Loopback, private, link-local (cloud metadata), multicast, reserved and unspecified addresses are refused;
  ``allow_private`` admits private and loopback ones only, never the metadata address ``fd00:ec2::254``.
* Redirects are followed by hand, at most ``max_redirects``, each target checked like the first URL.
* The body is streamed with a byte cap, and the whole download (connecting, headers, body, every redirect)
  has one wall-clock deadline: a watchdog shuts the socket down when it passes, so a host that trickles
  headers or bytes costs at most ``timeout_s`` (httpx's own timeouts are per read). The name lookup is
  inside the same deadline (a slow DNS server answers ``422 download_failed`` in time).
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import httpx

from text_recognizer.serving.errors import BadURL, DownloadFailed, DownloadTooLarge, ForbiddenURL

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: Cloud metadata services outside the link-local ranges (AWS's IPv6 endpoint is in fd00::/8, a private range
#: that ``allow_private`` would otherwise admit): always refused.
METADATA_ADDRESSES = frozenset({ipaddress.ip_address("fd00:ec2::254")})
_REDIRECTS = {301, 302, 303, 307, 308}


@dataclass(frozen=True)
class FetchLimits:
    max_bytes: int
    timeout_s: float
    allow_private: bool = False
    max_redirects: int = 3


class Deadline:
    """One wall-clock deadline for a download: at ``seconds`` from now every socket opened under it is shut
    down, which ends any read blocked on it."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            _shutdown(sock)

    def trace(self, event: str, info: dict[str, Any]) -> None:
        """httpcore trace hook: remember each new TCP connection's socket."""
        if not event.endswith("connect_tcp.complete"):
            return
        sock = info.get("return_value").get_extra_info("socket")  # type: ignore[union-attr]
        if not isinstance(sock, socket.socket):
            return
        with self._lock:
            if not self.expired:
                self._sockets.append(sock)
                return
        _shutdown(sock)

    def error(self) -> DownloadFailed:
        return DownloadFailed(f"image_url took longer than {self.seconds:g} s")

    def cancel(self) -> None:
        self._timer.cancel()


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed
        sock.shutdown(socket.SHUT_RDWR)


def address_refusal(ip: IPAddress, allow_private: bool) -> str | None:
    """Why ``ip`` may not be fetched from, or None when it may."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return address_refusal(ip.ipv4_mapped, allow_private)
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_loopback:
        return None if allow_private else "a loopback address"
    if ip.is_reserved:
        return "a reserved address"
    if ip.is_private:
        return None if allow_private else "a private address"
    if not ip.is_global:
        return "a non-public address"
    return None


#: name lookups running at once: ``getaddrinfo`` cannot be interrupted, so a lookup past its download's
#: deadline is left to finish in one of these threads (the system resolver's own timeouts end it) while the
#: request answers; when all are taken, further lookups wait their turn within their own deadline.
RESOLVER_THREADS = 8
_resolver: ThreadPoolExecutor | None = None
_resolver_lock = threading.Lock()


def _lookup(host: str, port: int, timeout_s: float) -> list[Any]:
    """``socket.getaddrinfo`` that answers within ``timeout_s``.

    Raises:
        DownloadFailed: the lookup did not end in time.
        OSError: the lookup failed (``socket.gaierror``...).
    """
    global _resolver
    with _resolver_lock:
        if _resolver is None:
            _resolver = ThreadPoolExecutor(RESOLVER_THREADS, thread_name_prefix="resolve")
    future = _resolver.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    try:
        return future.result(timeout=max(0.0, timeout_s))
    except FutureTimeout as e:
        future.cancel()
        raise DownloadFailed(f"image_url host {host!r} did not resolve within {timeout_s:.1f} s") from e


def resolve_checked(host: str, port: int, allow_private: bool, timeout_s: float) -> IPAddress:
    """Resolve ``host`` within ``timeout_s`` and return its first address, after checking all of them.

    Raises:
        DownloadFailed: the name does not resolve, or not in time.
        ForbiddenURL: any address is refused (a name with one private address is refused whole).
    """
    try:
        infos = _lookup(host, port, timeout_s)
    except (socket.gaierror, UnicodeError, OSError) as e:
        raise DownloadFailed(f"image_url host {host!r} does not resolve ({e})") from e
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
    if not addresses:
        raise DownloadFailed(f"image_url host {host!r} has no address")
    for ip in addresses:
        reason = address_refusal(ip, allow_private)
        if reason:
            raise ForbiddenURL(f"image_url host {host!r} resolves to {ip}, {reason}; such URLs are refused")
    return addresses[0]


def _checked_url(url: str, allow_private: bool, deadline: Deadline) -> tuple[httpx.URL, IPAddress]:
    """Parse and check one URL (its name looked up within ``deadline``); returns it and the address to
    connect to."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as e:
        raise BadURL(f"image_url is not a valid URL ({e})") from e
    if parsed.scheme not in ("http", "https"):
        raise BadURL(f"image_url must be http or https, not {parsed.scheme or 'a relative URL'!r}")
    host = parsed.raw_host.decode("ascii")
    if not host:
        raise BadURL("image_url has no host")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    return parsed, resolve_checked(host.strip("[]"), port, allow_private, deadline.remaining())


def fetch_image(url: str, limits: FetchLimits, client: httpx.Client | None = None) -> bytes:
    """Download ``url`` within ``limits``.

    Returns:
        the response body, at most ``limits.max_bytes`` bytes.
    Raises:
        BadURL, ForbiddenURL, DownloadFailed, DownloadTooLarge (all :class:`ServingError`).
    """
    deadline = Deadline(limits.timeout_s)
    own = client is None
    http = client or httpx.Client(follow_redirects=False, trust_env=False)
    try:
        for _ in range(limits.max_redirects + 1):
            parsed, ip = _checked_url(url, limits.allow_private, deadline)
            if deadline.remaining() <= 0:
                raise deadline.error()
            location = _get(http, parsed, ip, limits, deadline)
            if isinstance(location, bytes):
                return location
            url = urljoin(str(parsed), location)
        raise DownloadFailed(f"image_url redirected more than {limits.max_redirects} times")
    finally:
        deadline.cancel()
        if own:
            http.close()


def _get(
    http: httpx.Client, parsed: httpx.URL, ip: IPAddress, limits: FetchLimits, deadline: Deadline
) -> bytes | str:
    """One request to the checked address: the body, or the redirect target."""
    host = parsed.raw_host.decode("ascii")
    target = parsed.copy_with(host=str(ip))
    host_header = host if parsed.port is None else f"{host}:{parsed.port}"
    timeout = httpx.Timeout(max(0.01, deadline.remaining()))
    extensions: dict[str, Any] = {"trace": deadline.trace}
    if parsed.scheme == "https":
        extensions["sni_hostname"] = host.strip("[]")
    request = http.build_request(
        "GET",
        target,
        headers={"Host": host_header, "Accept": "image/*"},
        timeout=timeout,
        extensions=extensions,
    )
    try:
        response = http.send(request, stream=True)
    except httpx.HTTPError as e:
        if deadline.expired or isinstance(e, httpx.TimeoutException):
            raise deadline.error() from e
        raise DownloadFailed(f"image_url could not be fetched ({type(e).__name__}: {e})") from e
    try:
        if response.status_code in _REDIRECTS:
            location = response.headers.get("location")
            if not location:
                raise DownloadFailed(f"image_url answered {response.status_code} without a Location")
            return location
        if response.status_code != 200:
            raise DownloadFailed(f"image_url answered HTTP {response.status_code}, expected 200")
        declared = response.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limits.max_bytes:
            raise DownloadTooLarge(f"image_url is {declared} bytes; the limit is {limits.max_bytes} bytes")
        return _read_capped(response, limits, deadline)
    finally:
        response.close()


def _read_capped(response: httpx.Response, limits: FetchLimits, deadline: Deadline) -> bytes:
    """The body, read as it arrives (each network read is checked against the cap and the deadline)."""
    chunks: list[bytes] = []
    size = 0
    try:
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > limits.max_bytes:
                raise DownloadTooLarge(f"image_url is more than {limits.max_bytes} bytes")
            if deadline.expired or deadline.remaining() <= 0:
                raise deadline.error()
            chunks.append(chunk)
    except httpx.HTTPError as e:
        if deadline.expired or isinstance(e, httpx.TimeoutException):
            raise deadline.error() from e
        raise DownloadFailed(f"image_url download failed ({type(e).__name__}: {e})") from e
    return b"".join(chunks)
