"""Free text kept by a short key, so that an address names the text instead of carrying it.

A 20,000-word text made a 91,835-character Compare link, which chat tools and proxies cut. The key is the first
16 hex characters of the text's sha256: the same text always gets the same key (two people's links to one text
agree), and storing it twice is a no-op.
"""

from __future__ import annotations

import hashlib
import re

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from core.storage.schema import StoredText

KEY_LENGTH = 16
KEY_PATTERN = re.compile(rf"^[0-9a-f]{{{KEY_LENGTH}}}$")


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:KEY_LENGTH]


def remember_text(engine, text: str) -> str:
    """Store `text` (if it is not already) and return its key."""
    key = text_key(text)
    with Session(engine) as session:
        if session.get(StoredText, key) is not None:
            return key
        session.add(StoredText(key=key, text=text))
        try:
            session.commit()
        except IntegrityError:  # stored by someone else meanwhile: the same text under the same key
            session.rollback()
    return key


def recall_text(engine, key: str) -> str | None:
    """The text stored under `key`, or None (an unknown or malformed key)."""
    if not KEY_PATTERN.match(key or ""):
        return None
    with Session(engine) as session:
        row = session.get(StoredText, key)
        return row.text if row is not None else None
