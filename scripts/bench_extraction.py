"""Extraction quality: trafilatura alone, newspaper3k alone, and Rashomon's combination.

Scores are bag-of-words precision, recall and F1 of the extracted body against a hand-written
gold text, for every `NAME.html` with a `NAME.gold.txt` in the folder (default: the test fixtures).

    python scripts/bench_extraction.py [FOLDER]
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

from core.library.extract import _newspaper, _trafilatura, extract_html


def words(text: str) -> Counter:
    return Counter(re.findall(r"\w+", text.lower()))


def scores(predicted: str, gold: str) -> tuple[float, float, float]:
    p, g = words(predicted), words(gold)
    overlap = sum((p & g).values())
    precision = overlap / max(1, sum(p.values()))
    recall = overlap / max(1, sum(g.values()))
    return precision, recall, (2 * precision * recall / (precision + recall) if precision + recall else 0.0)


def main() -> None:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parents[1] / "tests" / "fixtures" / "extraction"
    rows, totals = [], {"trafilatura": [], "newspaper3k": [], "rashomon": []}
    for page in sorted(folder.glob("*.html")):
        gold = page.with_name(page.stem + ".gold.txt").read_text(encoding="utf-8")
        html = page.read_text(encoding="utf-8", errors="replace")
        outputs = {"trafilatura": _trafilatura(html, None).get("text", ""),
                   "newspaper3k": _newspaper(html, None).get("text", ""),
                   "rashomon": extract_html(html).text}
        row = [page.stem]
        for name, text in outputs.items():
            f1 = scores(text, gold)
            totals[name].append(f1)
            row.append(f"{f1[2]:.3f}")
        row.append(extract_html(html).extractor)
        rows.append(row)
    print("| page | trafilatura F1 | newspaper3k F1 | Rashomon F1 | body taken from |")
    print("| --- | --- | --- | --- | --- |")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    means = {name: [sum(x[i] for x in v) / len(v) for i in range(3)] for name, v in totals.items()}
    print("| **mean (P / R / F1)** | " + " | ".join(f"{m[0]:.3f} / {m[1]:.3f} / **{m[2]:.3f}**" for m in means.values()) + " | |")


if __name__ == "__main__":
    main()
