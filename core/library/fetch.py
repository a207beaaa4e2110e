"""Server-side page fetching, guarded against server-side request forgery (SSRF).

- http and https only; connect and total timeouts; a byte cap enforced while streaming;
  at most `max_redirects` redirects, each one checked again.
- The host is resolved once per hop and *every* address must be globally routable (no loopback,
  private, link-local incl. 169.254.169.254, CGNAT, unique-local, IPv4-mapped or 6to4 forms of
  those). The connection goes to the address that was checked, never to a fresh lookup, so
  DNS rebinding cannot slip through. RASHOMON_ALLOWED_INTERNAL_HOSTS opens named hosts/CIDRs.
"""

from __future__ import annotations

import codecs
import contextlib
import http.client
import ipaddress
import re
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from core.library.urls import InvalidURLError, normalize_url
from core.params import ParamError, parse_int
from core.storage.settings import load_settings

USER_AGENT = "Mozilla/5.0 (compatible; Rashomon/0.1; +https://github.com/rashomon)"
HTML_TYPES = ("text/html", "application/xhtml+xml")
TEXT_TYPES = ("text/plain",)
Resolver = Callable[[str, int], list[str]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class FetchError(Exception):
    """A fetch failed; `str()` is one sentence for the user. `kind` names the failure class."""

    def __init__(self, message: str, kind: str, status: int | None = None, final_url: str = "") -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status
        self.final_url = final_url


@dataclass(frozen=True)
class FetchLimits:
    connect_timeout: float = 5.0
    total_timeout: float = 20.0
    max_bytes: int = 10 * 1024 * 1024
    max_redirects: int = 5


@dataclass
class FetchResult:
    url: str
    final_url: str
    status: int
    content_type: str
    charset: str
    body: bytes
    text: str
    redirects: list[str] = field(default_factory=list)

    @property
    def is_html(self) -> bool:
        return self.content_type in HTML_TYPES


def system_resolver(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise FetchError(f"The host name '{host}' could not be resolved (DNS lookup failed).", "dns") from exc
    return list(dict.fromkeys(info[4][0] for info in infos))


def is_public_address(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        for embedded in (address.ipv4_mapped, address.sixtofour,
                         address.teredo[1] if address.teredo else None):
            if embedded is not None and not is_public_address(embedded):
                return False
    return (address.is_global and not address.is_multicast and not address.is_reserved
            and not address.is_unspecified and not address.is_loopback and not address.is_link_local)


class AddressPolicy:
    """Which resolved addresses a fetch may connect to."""

    def __init__(self, allowed: tuple[str, ...] | None = None) -> None:
        entries = load_settings().allowed_internal_hosts if allowed is None else allowed
        self.allowed_hosts: set[str] = set()
        self.allowed_networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for entry in entries:
            try:
                self.allowed_networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                self.allowed_hosts.add(entry.lower().rstrip("."))

    def check(self, host: str, address: str) -> None:
        ip = ipaddress.ip_address(address.split("%")[0])
        if is_public_address(ip):
            return
        if host.lower().rstrip(".") in self.allowed_hosts:
            return
        if any(ip in network for network in self.allowed_networks if network.version == ip.version):
            return
        raise FetchError(
            f"Refused to fetch {host}: it resolves to the internal address {ip}, which Rashomon does not "
            "reach (add it to RASHOMON_ALLOWED_INTERNAL_HOSTS to allow it).", "refused_address")


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to a pre-checked IP, with SNI and certificate checks against the real host name."""

    def __init__(self, address: str, port: int, server_hostname: str, **kwargs) -> None:
        super().__init__(address, port, **kwargs)
        self._server_hostname = server_hostname

    def connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self._server_hostname)


_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_\-:.]+)""", re.IGNORECASE)


def decode_body(body: bytes, header_charset: str | None, is_html: bool) -> tuple[str, str]:
    """Text and the charset used: the HTTP header, then a meta tag, then detection."""
    candidates = [header_charset] if header_charset else []
    if is_html:
        match = _META_CHARSET.search(body[:4096])
        if match:
            candidates.append(match.group(1).decode("ascii", "ignore"))
    for charset in candidates:
        try:
            if not codecs.lookup(charset)._is_text_encoding:  # "base64", "rot13": not a character set
                continue
            return body.decode(charset), charset.lower()
        except Exception:  # unknown or broken codec names (undefined, punycode on bad input): detect instead
            continue
    from charset_normalizer import from_bytes

    best = from_bytes(body).best()
    if best is not None:
        return str(best), best.encoding
    return body.decode("utf-8", errors="replace"), "utf-8"


def looks_binary(data: bytes) -> bool:
    """NUL bytes in the first 8 KB, outside UTF-16: an image, an archive or random bytes, not text."""
    head = data[:8192]
    return b"\x00" in head and not head.startswith((b"\xff\xfe", b"\xfe\xff"))


def decode_text_file(data: bytes) -> str:
    """A local text file's content, decoded as pages are (charset detection); ValueError for binary data."""
    if looks_binary(data):
        raise ValueError("it looks like a binary file, not text")
    if data and not data.startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            pass
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if best is None:
        raise ValueError("it looks like a binary file, not text (no text encoding fits it)")
    return str(best)


def _parse_content_type(value: str) -> tuple[str, str | None]:
    parts = [p.strip() for p in value.split(";")]
    charset = None
    for p in parts[1:]:
        if p.lower().startswith("charset="):
            charset = p.split("=", 1)[1].strip("\"' ") or None
    return parts[0].lower(), charset


def _describe_type(content_type: str) -> str:
    names = {"application/pdf": "a PDF document", "application/json": "JSON data", "application/zip": "a ZIP archive"}
    if content_type in names:
        return names[content_type]
    major = content_type.split("/")[0]
    return {"image": "an image", "video": "a video", "audio": "audio"}.get(major, "a file")


# The sample pages shipped with the app (static/samples, served by Streamlit's static serving at this path):
# a newcomer with no internet can snapshot them. They are read from disk, never fetched, and only these files:
# every other internal address is still refused.
SAMPLES_DIR = Path(__file__).resolve().parents[2] / "static" / "samples"
SAMPLES_PATH = "/app/static/samples/"
_SAMPLE_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,80}\.html")
_LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1", "[::1]")


def sample_pages() -> list[str]:
    """The shipped sample pages' file names."""
    return sorted(p.name for p in SAMPLES_DIR.glob("*.html") if _SAMPLE_NAME.fullmatch(p.name))


def sample_page(url: str) -> Path | None:
    """The file behind `url` when it is one of the app's own sample pages on a loopback address, else None."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if host not in _LOOPBACK_NAMES and not host.startswith("127."):
        return None
    if not parts.path.startswith(SAMPLES_PATH) or parts.query:
        return None
    name = parts.path[len(SAMPLES_PATH):]
    return SAMPLES_DIR / name if _SAMPLE_NAME.fullmatch(name) and name in sample_pages() else None


def fetch(url: str, limits: FetchLimits | None = None, *, resolver: Resolver | None = None,
          policy: AddressPolicy | None = None) -> FetchResult:
    """Fetch an HTML or plain-text page safely; raises FetchError with a one-sentence message."""
    if (sample := sample_page(url.strip())) is not None:
        body = sample.read_bytes()
        return FetchResult(url=url, final_url=url.strip(), status=200, content_type="text/html", charset="utf-8",
                           body=body, text=body.decode("utf-8"), redirects=[])
    limits = limits or FetchLimits()
    resolver = resolver or system_resolver
    policy = policy or AddressPolicy()
    current = url.strip()
    try:
        normalize_url(current)  # validates scheme and host
    except InvalidURLError as exc:
        raise FetchError(str(exc), "bad_url") from exc
    deadline = time.monotonic() + limits.total_timeout
    redirects: list[str] = []
    seen = {current}
    while True:
        response_status, headers, body = _fetch_once(current, limits, deadline, resolver, policy)
        if response_status in (301, 302, 303, 307, 308) and headers.get("location"):
            if len(redirects) >= limits.max_redirects:
                raise FetchError(f"Gave up after {limits.max_redirects} redirects (the page redirects too often).",
                                 "too_many_redirects", response_status, current)
            try:
                target = urljoin(current, headers["location"])
                normalize_url(target)
            except (InvalidURLError, ValueError) as exc:  # urljoin raises ValueError on e.g. http://[x]/
                raise FetchError(f"The page redirected to an unusable address ({headers['location'][:100]!r}).",
                                 "bad_redirect", response_status, current) from exc
            if target in seen:
                raise FetchError("The page redirects in a loop.", "redirect_loop", response_status, current)
            seen.add(target)
            redirects.append(target)
            current = target
            continue
        break
    if response_status >= 400:
        reason = http.client.responses.get(response_status, "error")
        raise FetchError(f"The server answered {response_status} {reason}.", "http_error", response_status, current)
    content_type, charset = _parse_content_type(headers.get("content-type", "text/html"))
    if content_type not in HTML_TYPES + TEXT_TYPES:
        raise FetchError(f"The link points to {_describe_type(content_type)} ({content_type}); only web pages "
                         "and plain text can be snapshotted.", "unsupported_type", response_status, current)
    body = _decoded(body, headers.get("content-encoding", ""), limits)
    if looks_binary(body):
        raise FetchError(f"The link's body is binary data, not text, although it is served as {content_type}.",
                         "not_text", response_status, current)
    text, used_charset = decode_body(body, charset, content_type in HTML_TYPES)
    return FetchResult(url=url, final_url=current, status=response_status, content_type=content_type,
                       charset=used_charset, body=body, text=text, redirects=redirects)


def _declared_length(value: str) -> int:
    """Content-Length as a number (0 when it is not one: "²", "-1", a 5,000-digit value; the read is bounded anyway)."""
    try:
        return parse_int(value, 0, 2**62)
    except ParamError:
        return 0


def _fetch_once(url: str, limits: FetchLimits, deadline: float, resolver: Resolver,
                policy: AddressPolicy) -> tuple[int, dict[str, str], bytes]:
    parts = urlsplit(url)
    host = (parts.hostname or "").rstrip(".")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = [host] if _is_ip(host) else resolver(host, port)
    except FetchError:
        raise
    except OSError as exc:
        raise FetchError(f"The host name '{host}' could not be resolved (DNS lookup failed).", "dns") from exc
    if not addresses:
        raise FetchError(f"The host name '{host}' could not be resolved (DNS lookup failed).", "dns")
    for address in addresses:  # every address must pass, or a round-robin could hand out the bad one
        policy.check(host, address)
    address = addresses[0]
    timeout = min(limits.connect_timeout, max(0.01, deadline - time.monotonic()))
    if parts.scheme == "https":
        connection: http.client.HTTPConnection = _PinnedHTTPSConnection(
            address, port, server_hostname=host, timeout=timeout, context=ssl.create_default_context())
    else:
        connection = http.client.HTTPConnection(address, port, timeout=timeout)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    watchdog: threading.Timer | None = None
    try:
        connection.putrequest("GET", path, skip_host=True, skip_accept_encoding=True)
        connection.putheader("Host", parts.netloc.rsplit("@", 1)[-1])
        connection.putheader("User-Agent", USER_AGENT)
        connection.putheader("Accept", "text/html,application/xhtml+xml,text/plain;q=0.9,*/*;q=0.5")
        connection.putheader("Accept-Encoding", "identity")
        connection.endheaders()
        # Keep our own reference: http.client drops connection.sock when the server will close
        # the connection (HTTP/1.0), while the response still reads from this socket.
        sock = connection.sock
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        # One wall-clock deadline for the status line, the headers and the body: a socket timeout only
        # bounds each read, and a server sending one byte a second never trips it. At the deadline the
        # socket is shut, which ends any read in progress.
        watchdog = threading.Timer(max(0.0, deadline - time.monotonic()), _shut, args=(sock,))
        watchdog.daemon = True
        watchdog.start()
        response = connection.getresponse()
        headers = {k.lower(): v for k, v in response.getheaders()}
        declared = headers.get("content-length", "")
        if _declared_length(declared) > limits.max_bytes:
            raise _too_large(limits)
        chunks, size = [], 0
        if response.status not in (301, 302, 303, 307, 308):
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise _timed_out(limits)
                with contextlib.suppress(OSError):  # once http.client closed its side, the first timeout stays
                    sock.settimeout(remaining)
                chunk = response.read1(64 * 1024)  # returns what has arrived, so the deadline is checked often
                if not chunk:
                    break
                size += len(chunk)
                if size > limits.max_bytes:
                    raise _too_large(limits)
                chunks.append(chunk)
        if time.monotonic() >= deadline:
            raise _timed_out(limits)
        return response.status, headers, b"".join(chunks)
    except TimeoutError as exc:
        raise _timed_out(limits) from exc
    except ssl.SSLError as exc:
        raise FetchError(f"The secure connection to {host} failed ({exc.reason or exc}).", "tls") from exc
    except (OSError, http.client.HTTPException) as exc:
        if time.monotonic() >= deadline - 0.05:  # the watchdog shut the socket
            raise _timed_out(limits) from exc
        raise _connection_failed(host, exc) from exc
    finally:
        if watchdog is not None:
            watchdog.cancel()
        connection.close()


def _decoded(body: bytes, encoding: str, limits: FetchLimits) -> bytes:
    """Undo a gzip or deflate Content-Encoding that a server sent although we asked for identity,
    with the byte cap applied to the decompressed size too (a small bomb cannot grow past it)."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise FetchError(f"The server compressed the page with '{encoding}', which Rashomon cannot read.",
                         "unsupported_encoding")
    wbits = 16 + zlib.MAX_WBITS if "gzip" in encoding else zlib.MAX_WBITS
    try:
        decompressor = zlib.decompressobj(wbits)
        out = decompressor.decompress(body, limits.max_bytes + 1)
    except zlib.error as exc:
        raise FetchError(f"The server's {encoding} data is corrupt.", "bad_encoding") from exc
    if len(out) > limits.max_bytes or decompressor.unconsumed_tail:
        raise _too_large(limits)
    return out


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        return False


def _connection_failed(host: str, exc: BaseException) -> FetchError:
    if isinstance(exc, ConnectionRefusedError):
        return FetchError(f"{host} refused the connection.", "connection")
    return FetchError(f"The connection to {host} failed ({type(exc).__name__}).", "connection")


def _too_large(limits: FetchLimits) -> FetchError:
    return FetchError(f"The page is larger than the {limits.max_bytes / 1_048_576:g} MB limit.", "too_large")


def _timed_out(limits: FetchLimits) -> FetchError:
    return FetchError(f"The server did not answer within {limits.total_timeout:g} seconds.", "timeout")
