"""Chinese: the model's build beside snownlp's naive Bayes, the segmenter's speed, and search over 10,000 snapshots.

    python scripts/bench_chinese_model.py [--build DIR] [--skip-peer] [--snapshots 10000]

1. Builds the Chinese model (`build-default --language zh` settings) into DIR (default: a temporary directory)
   and reports its build time, held-out accuracy and macro-F1.
2. The peer: snownlp's own naive-Bayes sentiment retrained with `sentiment.train` on exactly the same training rows,
   scored on the same held-out split; written to docs/chinese-peer.json, which the model card quotes.
3. The segmenter: words per second over the held-out reviews (jieba, after its dictionary is loaded).
4. Search over N generated snapshots (held-out and training reviews, 3-6 per page) on SQLite: recall of words taken
   from inside sentences (a jieba word not at a sentence start), with the segmented index and with the index as it
   was before (unsegmented FTS5 content), and the query latency.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path


def peer(train, heldout) -> dict:
    from sklearn.metrics import accuracy_score, f1_score
    from snownlp import sentiment

    with tempfile.TemporaryDirectory() as folder:
        neg, pos = Path(folder) / "neg.txt", Path(folder) / "pos.txt"
        neg.write_text("\n".join(train[train["label"] == 0]["text"]), encoding="utf-8")
        pos.write_text("\n".join(train[train["label"] == 1]["text"]), encoding="utf-8")
        started = time.perf_counter()
        sentiment.train(str(neg), str(pos))
        seconds = time.perf_counter() - started
    predicted = [int(sentiment.classify(text) >= 0.5) for text in heldout["text"]]
    truth = list(heldout["label"])
    return {"accuracy": accuracy_score(truth, predicted), "macro_f1": f1_score(truth, predicted, average="macro"),
            "train_seconds": seconds, "train_rows": len(train), "heldout_rows": len(heldout),
            "measured": date.today().isoformat()}


def search_bench(texts: list[str], pages: int, queries: int = 300) -> dict:
    from sqlalchemy import text as sql

    from core.library.snapshots import list_links
    from core.storage.db import make_engine, session_scope
    from core.storage.schema import Link, Snapshot
    from core.words import for_search, split_words

    rng = random.Random(7)
    folder = tempfile.mkdtemp()
    engine = make_engine(f"sqlite:///{folder}/search.db")
    bodies = ["\n".join(rng.sample(texts, rng.randint(3, 6))) for _ in range(pages)]
    started = time.perf_counter()
    with session_scope(engine) as session:
        for i, body in enumerate(bodies):
            link = Link(url=f"https://zh.example/{i}", normalized_url=f"https://zh.example/{i}", title=f"页面 {i}")
            session.add(link)
            session.flush()
            snapshot = Snapshot(link_id=link.id, title=link.title, text=body, search_text=for_search(body))
            session.add(snapshot)
            session.flush()
            session.execute(sql("INSERT INTO snapshot_fts(rowid, title, text) VALUES (:id, :t, :b)"),
                            {"id": snapshot.id, "t": link.title, "b": for_search(body)})
        # The index as it was before: the same texts, unsegmented, in a second FTS5 table.
        session.execute(sql("CREATE VIRTUAL TABLE old_fts USING fts5(text, tokenize='unicode61 remove_diacritics 2')"))
        for i, body in enumerate(bodies):
            session.execute(sql("INSERT INTO old_fts(rowid, text) VALUES (:id, :b)"), {"id": i + 1, "b": body})
    index_seconds = time.perf_counter() - started
    # Words from inside sentences: a jieba word of two or more characters that is not a sentence's first word.
    cases = []
    while len(cases) < queries:
        page = rng.randrange(pages)
        inner = [w for w, start, _ in split_words(bodies[page])[1:]
                 if len(w) >= 2 and w.isalnum() and bodies[page][start - 1] not in "\n。！？，"]
        if inner:
            cases.append((page + 1, rng.choice(inner)))
    found_new = found_old = 0
    latencies, index_latencies = [], []
    from core.library.snapshots import fts_query

    for link_id, word in cases:
        with session_scope(engine) as session:  # the index lookup alone, before the listing builds its rows
            started = time.perf_counter()
            session.execute(sql("SELECT rowid, rank FROM snapshot_fts WHERE snapshot_fts MATCH :q"),
                            {"q": fts_query(word)}).all()
            index_latencies.append(time.perf_counter() - started)
        started = time.perf_counter()
        hits = {v.id for v in list_links(engine, search=word)}
        latencies.append(time.perf_counter() - started)
        found_new += link_id in hits
        with session_scope(engine) as session:
            old = {r for (r,) in session.execute(sql("SELECT rowid FROM old_fts WHERE old_fts MATCH :q"),
                                                 {"q": f'"{word}"'}).all()}
        found_old += link_id in old
    latencies.sort()
    return {"pages": pages, "queries": len(cases), "recall_segmented": found_new / len(cases),
            "recall_before": found_old / len(cases), "median_ms": 1000 * statistics.median(latencies),
            "p95_ms": 1000 * latencies[int(0.95 * len(latencies)) - 1], "index_seconds": index_seconds,
            "index_median_ms": 1000 * statistics.median(index_latencies)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", help="where to build the model (default: a temporary directory)")
    parser.add_argument("--skip-build", action="store_true")
    parser.add_argument("--skip-peer", action="store_true")
    parser.add_argument("--snapshots", type=int, default=10_000)
    args = parser.parse_args()

    import torch

    from core.engine.chinese_model import ZH_DEFAULTS, build_chinese_model, load_zh_corpus
    from core.engine.default_model import split_corpus
    from core.words import _jieba, split_words

    torch.set_num_threads(2)
    train, heldout = split_corpus(load_zh_corpus(), ZH_DEFAULTS)
    if not args.skip_build:
        output = Path(args.build or tempfile.mkdtemp()) / "default-sentiment-zh"
        report = build_chinese_model(output, ZH_DEFAULTS)
        print(f"Chinese model: built in {report.total_seconds:.0f} s ({report.train_seconds:.0f} s training), held-out "
              f"accuracy {report.accuracy:.3f}, macro-F1 {report.macro_f1:.3f} ({len(heldout)} reviews) -> {output}")
    if not args.skip_peer:
        measured = peer(train, heldout)
        target = Path(__file__).resolve().parents[1] / "docs" / "chinese-peer.json"
        target.write_text(json.dumps(measured, indent=2))
        print(f"snownlp naive Bayes, retrained on the same {measured['train_rows']} rows: accuracy "
              f"{measured['accuracy']:.3f}, macro-F1 {measured['macro_f1']:.3f}, {measured['train_seconds']:.0f} s "
              f"training -> {target}")
    _jieba()
    texts = list(heldout["text"])
    started = time.perf_counter()
    words = sum(len(split_words(t)) for t in texts)
    seconds = time.perf_counter() - started
    print(f"segmenter: {words:,} words from {sum(map(len, texts)):,} characters in {seconds:.2f} s: "
          f"{words / seconds:,.0f} words/s")
    result = search_bench(texts + list(train["text"][:8000]), args.snapshots)
    print(f"search over {result['pages']:,} snapshots ({result['queries']} words from inside sentences): recall "
          f"{result['recall_segmented']:.3f} segmented vs {result['recall_before']:.3f} before; median "
          f"{result['median_ms']:.1f} ms, p95 {result['p95_ms']:.1f} ms per listing (the index lookup alone: median "
          f"{result['index_median_ms']:.1f} ms); indexing {result['index_seconds']:.0f} s")


if __name__ == "__main__":
    main()
