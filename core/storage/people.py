"""Who is asking: the person every stored row records (`requested_by`), from the deployment's authentication.

One person per page run, CLI command or task: pages set it from Streamlit's login (`st.user`) or from a header an
authenticating reverse proxy sets (believed only when the request comes from one of the configured proxy
addresses), the CLI from `--user` or RASHOMON_USER, a worker from the task it runs. With no authentication
configured everyone is "local" (one person on a laptop). Rows made before people were recorded say "unknown".

Who asked is never part of what a result is keyed by: two people asking the same thing share one computation, and
the request log (`request_log`) says that both asked.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy import Engine

LOCAL = "local"
UNKNOWN = "unknown"  # rows stored before people were recorded
ANONYMOUS = "anonymous"  # authentication is configured, but this request did not come through it
MAX_NAME = 120
_NAME = re.compile(rf"[^\x00-\x1f\x7f]{{1,{MAX_NAME}}}")

_current: ContextVar[str] = ContextVar("rashomon_person", default=LOCAL)


def current_person() -> str:
    """The person this page run, command or task acts for."""
    return _current.get()


@contextmanager
def acting_as(person: str) -> Iterator[None]:
    token = _current.set(person)
    try:
        yield
    finally:
        _current.reset(token)


def set_person(person: str) -> None:
    """For a page run: the script thread acts for this person until the next run sets it again."""
    _current.set(person)


def clean_name(raw: str) -> str:
    """A person's name as stored: trimmed, normalised (NFC), 1-120 characters, no control characters."""
    name = unicodedata.normalize("NFC", str(raw)).strip()
    if not _NAME.fullmatch(name) or any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in name):
        raise ValueError(f"A user name must be 1 to {MAX_NAME} printable characters.")
    return name


@dataclass(frozen=True)
class Identity:
    person: str
    how: str  # a sentence: where the name came from
    believed: bool = True  # False: a header was sent from an address that is not a trusted proxy


def _trusted(address: str | None, proxies: tuple[str, ...]) -> bool:
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    for proxy in proxies:
        try:
            if ip in ipaddress.ip_network(proxy, strict=False):
                return True
        except ValueError:
            continue
    return False


def identify(headers: Mapping[str, str], client_address: str | None, *, header: str = "",
             proxies: tuple[str, ...] = (), login_name: str | None = None, login: bool = False) -> Identity:
    """Who a page request comes from: the OIDC login's name (`login`: a login is configured); else the proxy's
    header, believed only from a trusted proxy address; else "local" when no authentication is configured."""
    if login_name:
        return Identity(clean_name(login_name), "signed in (OpenID Connect)")
    if not header:
        return Identity(ANONYMOUS, "not signed in") if login else Identity(LOCAL, "no authentication configured")
    value = next((v for k, v in headers.items() if k.lower() == header.lower()), None)
    if not _trusted(client_address, proxies):
        return Identity(ANONYMOUS, f"not through the authenticating proxy (from {client_address or 'an unknown address'}"
                        f"{', its ' + header + ' header ignored' if value else ''})", believed=value is None)
    if not value:
        return Identity(ANONYMOUS, f"the proxy sent no {header} header")
    try:
        return Identity(clean_name(value), "signed in through the authenticating proxy")
    except ValueError:
        return Identity(ANONYMOUS, f"the proxy's {header} header is not a usable name")


def log_request(engine: Engine, kind: str, ref: str, *, shared: bool) -> None:
    """One line of the request log: the current person asked for `kind` (`ref`: what answered it)."""
    from core.storage.db import session_scope
    from core.storage.schema import RequestLog

    with session_scope(engine) as session:
        session.add(RequestLog(person=current_person(), kind=kind, ref=ref, shared=shared))


def request_log(engine: Engine, person: str = "", limit: int = 200) -> list[dict[str, object]]:
    """The newest requests first (of one person, if given)."""
    from sqlmodel import col, select

    from core.storage.db import session_scope
    from core.storage.schema import RequestLog

    with session_scope(engine) as session:
        statement = select(RequestLog).order_by(col(RequestLog.id).desc()).limit(limit)
        if person:
            statement = statement.where(RequestLog.person == person)
        return [{"person": r.person, "kind": r.kind, "ref": r.ref, "shared": r.shared,
                 "at": r.created_at.isoformat(timespec="seconds")} for r in session.exec(statement).all()]
