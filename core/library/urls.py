"""URL normalisation: one canonical form per page, so the same link is never stored twice."""

from __future__ import annotations

from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

TRACKING_PARAMETERS = frozenset({
    "fbclid", "gclid", "dclid", "gbraid", "wbraid", "msclkid", "yclid", "mc_cid", "mc_eid", "igshid",
    "_ga", "_gl", "ref_src", "spm", "mkt_tok", "oly_anon_id", "oly_enc_id", "vero_id", "__s",
})
DEFAULT_PORTS = {"http": 80, "https": 443}


class InvalidURLError(ValueError):
    pass


def is_tracking_parameter(name: str) -> bool:
    lowered = name.lower()
    return lowered.startswith("utm_") or lowered in TRACKING_PARAMETERS


def normalize_url(url: str) -> str:
    """Lower-case scheme and host, drop the default port, the fragment and tracking parameters,
    sort the remaining query. Only http and https are accepted."""
    url = url.strip()
    if not url:
        raise InvalidURLError("The link is empty.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidURLError(f"'{url}' is not a valid web address ({exc}).") from exc
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        if not parts.scheme:
            raise InvalidURLError(f"'{url}' is not a web address: it should start with http:// or https://.")
        raise InvalidURLError(f"Only http and https links can be snapshotted, not '{parts.scheme}:'.")
    host = (parts.hostname or "").lower().rstrip(".")
    if not host:
        raise InvalidURLError(f"'{url}' has no host name.")
    try:
        host = host.encode("idna").decode("ascii") if not host.isascii() else host
    except UnicodeError as exc:
        raise InvalidURLError(f"'{url}' has an invalid host name.") from exc
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    # Credentials in a link are dropped: Rashomon never sends them, and stored they would leak.
    netloc = host if port in (None, DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    path = quote(unquote(parts.path or "/"), safe="/:@!$&'()*+,;=-._~%")
    query = sorted(
        (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not is_tracking_parameter(k)
    )
    return urlunsplit((scheme, netloc, path, urlencode(query, doseq=True), ""))


def has_credentials(url: str) -> bool:
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return False
    return bool(parts.username or parts.password)


def without_credentials(url: str) -> str:
    """The link as typed, minus any `user:password@` part (which is never sent, and must not be stored)."""
    url = url.strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if not (parts.username or parts.password):
        return url
    return urlunsplit((parts.scheme, parts.netloc.rsplit("@", 1)[-1], parts.path, parts.query, parts.fragment))
