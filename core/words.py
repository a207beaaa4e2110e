"""The word layer: the units every method scores, agreement compares, faithfulness removes and edits change.

Chosen by script, span by span, with exact character offsets into the text:
- spaced scripts (Latin, Cyrillic, Greek, Hangul, ...): runs of word characters (keeping "don't" whole) and single
  punctuation marks, as before;
- Han text (Chinese, simplified or traditional): jieba's dictionary-and-HMM segmenter, on a character-for-character
  simplified copy (traditional characters segment as well as simplified, offsets unchanged);
- text with kana (Japanese): TinySegmenter, never the Chinese segmenter;
- `characters`: every non-space character on its own (for Han text, the finest unit).
`layer_for(text)` names what a text is split with (stored with every explanation and shown on the page).
"""

from __future__ import annotations

import importlib.metadata
import re
import threading
from functools import cache

WORD_PATTERN = re.compile(r"\w+(?:['’]\w+)*|[^\w\s]", re.UNICODE)
HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ebef"
KANA = "\u3040-\u30ff\u31f0-\u31ff\uff66-\uff9f"
HAN_RUN = re.compile(f"[{HAN}]+")
HAS_HAN = re.compile(f"[{HAN}]")
HAS_KANA = re.compile(f"[{KANA}]")
# A span the spaced-script pattern would keep whole although it holds Han or kana: split out and segmented.
CJK_RUN = re.compile(f"[{HAN}{KANA}]+")
GRANULARITIES = ("word", "characters")
SPACED = "whitespace and punctuation"
_lock = threading.Lock()


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def layer_for(text: str, granularity: str = "word") -> str:
    """What `text` is split with, as stored with every result: e.g. "jieba3k 0.35.1 (Han) + whitespace and
    punctuation"."""
    if granularity == "characters":
        return "characters"
    if HAS_KANA.search(text):
        return f"tinysegmenter {_version('tinysegmenter')} (Japanese) + {SPACED}"
    if HAS_HAN.search(text):
        return f"jieba3k {_version('jieba3k')} (Han) + {SPACED}"
    return SPACED


def keyed_text(text: str) -> str:
    """What stored results are keyed on: the text, and for text not split by whitespace and punctuation the word
    layer too (a result computed over another segmentation has other words: it must not be reused)."""
    layer = layer_for(text)
    return text if layer == SPACED else f"{text}\x00words: {layer}"


@cache
def _simplified() -> dict[int, str]:
    """Traditional -> simplified, character for character (snownlp's table, single characters only)."""
    try:
        from snownlp.normal.zh import zh2hans
    except ImportError:  # without snownlp, traditional text is segmented as it is
        return {}
    return {ord(k): v for k, v in zh2hans.items() if len(k) == 1 and len(v) == 1 and k != v}


@cache
def _jieba():
    import logging

    import jieba

    jieba.setLogLevel(logging.WARNING)  # its dictionary build prints to stderr otherwise
    with _lock:
        jieba.initialize()
    return jieba


@cache
def _tinysegmenter():
    import tinysegmenter

    return tinysegmenter.TinySegmenter()


def _han_words(run: str, offset: int) -> list[tuple[str, int, int]]:
    simplified = run.translate(_simplified())  # same length: offsets stay those of `run`
    words, start = [], 0
    for piece, _, _ in _jieba().tokenize(simplified):
        end = start + len(piece)
        words.append((run[start:end], offset + start, offset + end))
        start = end
    return words


def _japanese_words(run: str, offset: int) -> list[tuple[str, int, int]]:
    words, start = [], 0
    for piece in _tinysegmenter().tokenize(run):
        found = run.find(piece, start)
        if found < 0:  # the segmenter normalised something: fall back to characters for the rest
            return words + [(c, offset + i, offset + i + 1) for i, c in enumerate(run[start:], start) if not c.isspace()]
        words.append((piece, offset + found, offset + found + len(piece)))
        start = found + len(piece)
    return words


def split_words(text: str, granularity: str = "word") -> list[tuple[str, int, int]]:
    """Words of `text` with their character offsets [start, end), by the layer `layer_for(text)` names."""
    if granularity == "characters":
        return [(c, i, i + 1) for i, c in enumerate(text) if not c.isspace()]
    if granularity != "word":
        raise ValueError(f"Unknown granularity {granularity!r}; one of {', '.join(GRANULARITIES)}.")
    japanese = bool(HAS_KANA.search(text))
    words: list[tuple[str, int, int]] = []
    for match in WORD_PATTERN.finditer(text):
        token, start = match.group(), match.start()
        if not CJK_RUN.search(token):
            words.append((token, start, match.end()))
            continue
        # Mixed spans ("AI模型", "GPT-4の"): the Latin part stays whole, each CJK run is segmented.
        position = 0
        for run in CJK_RUN.finditer(token):
            if run.start() > position:
                words.append((token[position:run.start()], start + position, start + run.start()))
            segment = _japanese_words if japanese else _han_words
            words += segment(run.group(), start + run.start())
            position = run.end()
        if position < len(token):
            words.append((token[position:], start + position, match.end()))
    return words


def needs_segmenting(text: str) -> bool:
    """Whether words in `text` are not separated by spaces (Han or kana): what search must segment first."""
    return bool(HAS_HAN.search(text) or HAS_KANA.search(text))


def spaced(text: str) -> str:
    """`text` with its words separated by spaces where the script does not separate them (the rest unchanged), so
    that a full-text index's own tokenizer (FTS5's unicode61, PostgreSQL's parser) finds each word: both keep a run
    of Han characters as one token, which makes a word inside a sentence unfindable."""
    if not needs_segmenting(text):
        return text
    pieces, position = [], 0
    for _, start, end in split_words(text):
        gap = text[position:start]
        pieces.append(gap if gap else " ")
        pieces.append(text[start:end])
        position = end
    pieces.append(text[position:])
    return "".join(pieces).strip()


def for_search(text: str) -> str:
    """What a full-text index stores and a query is matched as: words spaced (`spaced`), traditional characters
    folded to simplified ones (so 訓練數據 finds 训练数据)."""
    return spaced(text.translate(_simplified())) if needs_segmenting(text) else text
