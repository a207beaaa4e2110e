"""Altair chart specs shared by the pages (no Streamlit here): each function takes core results, returns a chart."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict

import altair as alt
import numpy as np
import pandas as pd

from core.analyses import agreement
from core.analyses.attention_checks import HeadImportance
from core.analyses.attention_views import AttentionView
from core.analyses.checks import RandomisationResult
from core.analyses.corpus.aggregate import AgreementRow, EditAgreementRow, LeaderboardRow
from core.analyses.edit_checks import EditAgreement
from core.analyses.evaluation import Evaluation
from core.analyses.faithfulness import RANDOM_NAME
from core.analyses.known_answer import Score
from core.analyses.reports import Comparison, ComparisonReport
from core.analyses.token_view import TokenView
from core.analyses.training_data.attribute import DataAgreement
from core.analyses.training_data.retraining import LdsResult

MATRIX_CELL = (64, 40)  # px per agreement-matrix cell (width, height): room for a two-decimal value


def cost(rows: Sequence[dict]) -> alt.Chart:
    frame = pd.DataFrame(rows)
    return alt.Chart(frame).mark_bar().encode(
        x=alt.X("seconds when computed:Q"),
        y=alt.Y("step:N", sort="-x", title=None, axis=alt.Axis(labelLimit=0, labelOverlap=False)),
        tooltip=["step", alt.Tooltip("seconds when computed:Q", format=".3f"), "forward passes when computed",
                 "forward passes now"]).properties(height=28 * len(frame) + 40)


def agreement_matrix(comparison: Comparison, metric_name: str, k: int) -> alt.LayerChart:
    metric = agreement.METRICS[metric_name]
    matrix = agreement.agreement_matrix(comparison.explanations, metric_name, k)
    return _matrix(comparison.methods, matrix, agreement.cluster_order(matrix), metric.title, metric.range)


def data_agreement(result: DataAgreement, measure: str) -> alt.LayerChart:
    """Training-data methods against each other: top-k proponent overlap or rank correlation."""
    matrix = np.array(result.overlap if measure == "overlap" else result.rank, dtype=float)
    title = f"top-{result.k} overlap" if measure == "overlap" else "Spearman over the union"
    return _matrix(result.methods, matrix, list(range(len(result.methods))), title,
                   (0.0, 1.0) if measure == "overlap" else (-1.0, 1.0))


def _matrix(methods: Sequence[str], matrix: np.ndarray, order: Sequence[int], title: str,
            domain: tuple[float, float]) -> alt.LayerChart:
    names = [methods[i] for i in order]
    cells = pd.DataFrame([{"a": methods[i], "b": methods[j],
                           "value": None if pd.isna(matrix[i, j]) else float(matrix[i, j])}
                          for i in order for j in order])
    # Cells large enough for their value; full method names on both axes.
    base = alt.Chart(cells).encode(
        x=alt.X("a:N", sort=names, title=None,
                axis=alt.Axis(labelLimit=0, labelAngle=-35, labelFontSize=12, labelOverlap=False)),
        y=alt.Y("b:N", sort=names, title=None, axis=alt.Axis(labelLimit=0, labelFontSize=12, labelOverlap=False)))
    heat = base.mark_rect().encode(color=alt.Color("value:Q", scale=alt.Scale(scheme="viridis", domain=list(domain)),
                                                   title=title, legend=alt.Legend(orient="right", titleLimit=0)),
                                   tooltip=["a", "b", alt.Tooltip("value:Q", format=".3f")])
    midpoint = (domain[0] + domain[1]) / 2
    labels = base.mark_text(fontSize=13, fontWeight="bold").encode(
        text=alt.Text("value:Q", format=".2f"),
        color=alt.condition(alt.datum.value > midpoint, alt.value("black"), alt.value("white")))
    # Step sizing: every cell has the same size whatever the number of methods, so values always fit.
    return (heat + labels).properties(width=alt.Step(MATRIX_CELL[0]), height=alt.Step(MATRIX_CELL[1]))


FAITHFULNESS_CURVE_HELP = {
    "deletion": "One panel per method: p(target) as its highest-ranked words are removed, left to right. A faithful "
                "ranking falls faster than random (its line below the grey band, the lowest to highest of the random "
                "rankings; the dashed line is their mean). Hover a point for its values.",
    "insertion": "One panel per method: p(target) as its highest-ranked words are revealed, the rest erased. A "
                 "faithful ranking rises faster than random (its line above the grey band, the lowest to highest of "
                 "the random rankings; the dashed line is their mean). Hover a point for its values.",
}


def faithfulness_frame(report: ComparisonReport, curve: str) -> pd.DataFrame:
    """One row per method and curve point: its p(target) beside the random rankings' mean, lowest and highest."""
    random_row = next((f for f in report.faithfulness if f.method == RANDOM_NAME), None)
    random_curve = getattr(random_row, curve) if random_row is not None else []
    band = getattr(random_row, f"{curve}_band") if random_row is not None else []
    rows = []
    for f in report.faithfulness:
        if f.method == RANDOM_NAME:
            continue
        for i, (x, y) in enumerate(getattr(f, curve)):
            mean = random_curve[i][1] if i < len(random_curve) else None
            low, high = band[i] if i < len(band) else (mean, mean)
            rows.append({"method": f.method, "fraction": x, "p(target)": y, "random mean": mean,
                         "random lowest": low, "random highest": high})
    return pd.DataFrame(rows)


def faithfulness_curve(report: ComparisonReport, curve: str, columns: int = 4) -> alt.FacetChart:
    """Deletion or insertion curves as small multiples: each method in its own panel, against the random band.
    The y axis fits the values (shared by the panels, so they compare), not a fixed 0-1 that flattens them."""
    frame = faithfulness_frame(report, curve)
    moved = "removed" if curve == "deletion" else "revealed"
    x = alt.X("fraction:Q", title=f"fraction of words {moved}", axis=alt.Axis(format="%"))
    y_scale = alt.Scale(zero=False, nice=True)
    base = alt.Chart().encode(x=x)
    band = base.mark_area(color="#bbbbbb", opacity=0.5).encode(
        y=alt.Y("random lowest:Q", title="p(target)", scale=y_scale), y2="random highest:Q")
    random_mean = base.mark_line(color="#777777", strokeDash=[4, 3]).encode(y=alt.Y("random mean:Q", scale=y_scale))
    line = base.mark_line(point=True).encode(
        y=alt.Y("p(target):Q", title="p(target)", scale=y_scale),
        color=alt.Color("method:N", legend=None),
        tooltip=["method:N", alt.Tooltip("fraction:Q", format=".0%", title=f"words {moved}"),
                 alt.Tooltip("p(target):Q", format=".3f"), alt.Tooltip("random mean:Q", format=".3f"),
                 alt.Tooltip("random lowest:Q", format=".3f"), alt.Tooltip("random highest:Q", format=".3f")])
    return alt.layer(band, random_mean, line, data=frame).properties(width=170, height=120).facet(
        facet=alt.Facet("method:N", title=None, header=alt.Header(labelFontSize=12, labelLimit=0)),
        columns=columns, title=f"{curve.title()} curves, one panel per method (grey band: random rankings)")


def corpus_agreement(rows: Sequence[AgreementRow], metric: str, title: str) -> alt.Chart | None:
    frame = pd.DataFrame([r.__dict__ for r in rows if r.metric == metric])
    if frame.empty:
        return None
    # One row per pair, its full name written on the axis (no label dropped or cut), so no legend is needed.
    return alt.Chart(frame).mark_boxplot(extent="min-max", size=14).encode(
        x=alt.X("value:Q", title=title),
        y=alt.Y("pair:N", title=None, axis=alt.Axis(labelLimit=0, labelOverlap=False, labelFontSize=12)),
        color=alt.Color("pair:N", legend=None), tooltip=["pair"]).properties(height=26 * frame["pair"].nunique() + 20)


def leaderboard(rows: Sequence[LeaderboardRow]) -> alt.LayerChart:
    frame = pd.DataFrame([r.__dict__ for r in rows])
    points = alt.Chart(frame).mark_point(filled=True, size=80).encode(
        x=alt.X("comprehensiveness:Q", title="mean comprehensiveness AOPC (95% bootstrap interval)"),
        y=alt.Y("method:N", sort="-x", title=None), tooltip=list(frame.columns))
    errors = alt.Chart(frame).mark_rule().encode(x="comp_low:Q", x2="comp_high:Q", y=alt.Y("method:N", sort="-x"))
    return errors + points


def known_answer(scores: Sequence[Score], random: Score) -> alt.LayerChart:
    """Recall@1 of the planted word per method, with its 95% bootstrap interval, beside the random ranking's."""
    frame = pd.DataFrame([{"method": s.method, "recall@1": s.recall_at_1, "low": s.recall_at_1_interval[0],
                           "high": s.recall_at_1_interval[1], "mean rank": round(s.mean_rank, 2)} for s in scores])
    y = alt.Y("method:N", sort="-x", title=None)
    points = alt.Chart(frame).mark_point(filled=True, size=80).encode(
        x=alt.X("recall@1:Q", title="share of flipped inputs where the method ranks the planted word first",
                scale=alt.Scale(domain=[0, 1])), y=y, tooltip=list(frame.columns))
    errors = alt.Chart(frame).mark_rule().encode(x="low:Q", x2="high:Q", y=y)
    chance = alt.Chart(pd.DataFrame({"random": [random.recall_at_1]})).mark_rule(strokeDash=[4, 4]).encode(
        x="random:Q", tooltip=[alt.Tooltip("random:Q", title="random ranking (exact)", format=".3f")])
    return errors + points + chance


def randomisation(result: RandomisationResult) -> alt.Chart:
    frame = pd.DataFrame([{"stage": i, "randomised": s.name, "method": m, "Spearman": v}
                          for i, s in enumerate(result.stages) for m, v in s.similarity.items()])
    return alt.Chart(frame).mark_line(point=True).encode(
        x=alt.X("stage:O", title="randomised so far (cumulative)", axis=alt.Axis(
            labelExpr=f"{[s.name for s in result.stages]}[datum.value]", labelAngle=-30)),
        y=alt.Y("Spearman:Q", scale=alt.Scale(domain=[-1, 1]), title="Spearman with trained model"),
        color="method:N", tooltip=["randomised", "method", alt.Tooltip("Spearman:Q", format=".3f")])


def spec(chart: alt.TopLevelMixin) -> dict:
    """The Vega-Lite spec of a chart. A 128-token input has ~10,000 attention cells, past Altair's
    5,000-row guard; they go in the spec's datasets (Streamlit sends its own way, with no guard)."""
    with alt.data_transformers.disable_max_rows():
        return chart.to_dict()


def _token_table(tokens: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame({"position": np.arange(len(tokens)), "token": list(tokens)})


def _token_axis(tokens: Sequence[str], title: str | None = None) -> alt.Axis:
    """An axis over token positions whose labels are the tokens themselves, every one shown."""
    return alt.Axis(labelExpr=f"{json.dumps(list(tokens))}[datum.value]", labelOverlap=False, labelLimit=0,
                    labelFontSize=11, title=title)


def attention_grid(view: AttentionView, query: int = 0) -> alt.Chart:
    """Every layer and head in one heatmap: a row per (layer, head), the query token's attention to every
    token along it, layers separated by a gap in the labels (L0 H0 ... L5 H11)."""
    view.check(0, 0, query)
    layers, heads, seq = view.weights.shape[0], view.weights.shape[1], view.weights.shape[-1]
    row = view.weights[:, :, query, :]  # (layers, heads, keys)
    frame = pd.DataFrame({"row": np.repeat(np.arange(layers * heads), seq),
                          "layer": np.repeat(np.arange(layers), heads * seq),
                          "head": np.tile(np.repeat(np.arange(heads), seq), layers),
                          "position": np.tile(np.arange(seq), layers * heads),
                          "weight": row.reshape(-1).round(3)})
    return alt.Chart(frame).transform_lookup(  # token names once, joined by position (not 10,000 copies)
        lookup="position", from_=alt.LookupData(_token_table(view.tokens), "position", ["token"]),
    ).mark_rect().encode(
        x=alt.X("position:O", axis=_token_axis(view.tokens, f"attention from '{view.tokens[query]}' (position {query}) to"),
                scale=alt.Scale(paddingInner=0)),
        y=alt.Y("row:O", scale=alt.Scale(paddingInner=0), axis=alt.Axis(
            title="layer, head", labelExpr=f"'L' + floor(datum.value / {heads}) + ' H' + datum.value % {heads}",
            labelFontSize=9, labelOverlap=False)),
        color=alt.Color("weight:Q", scale=alt.Scale(scheme="blues", domain=[0, 1]), title="attention"),
        tooltip=["layer:O", "head:O", "token:N", alt.Tooltip("weight:Q", format=".3f")],
    ).properties(width=alt.Step(13), height=alt.Step(10))


def head_view(view: AttentionView, layer: int, head: int, min_weight: float = 0.02) -> alt.LayerChart:
    """bertviz's head view in Altair: tokens on both sides, a line from each token to each token it
    attends, opacity = weight (weights under `min_weight` are left out so the strong ones stand out)."""
    view.check(layer, head, 0)
    weights = view.weights[layer, head]
    queries, keys = np.nonzero(weights >= min_weight)
    lines = pd.DataFrame({"from": queries, "to": keys, "weight": weights[queries, keys].round(3)})
    labels = pd.DataFrame({"position": np.arange(len(view.tokens)), "token": list(view.tokens)})
    y_scale = alt.Scale(domain=[-0.5, len(view.tokens) - 0.5], reverse=True, nice=False)
    y = alt.Y("from:Q", scale=y_scale, axis=None)
    tokens = _token_table(view.tokens)
    rules = alt.Chart(lines).transform_lookup(
        lookup="from", from_=alt.LookupData(tokens, "position", ["token"]), as_=["from token"],
    ).transform_lookup(
        lookup="to", from_=alt.LookupData(tokens, "position", ["token"]), as_=["to token"],
    ).mark_rule(color="#1f5fa8").encode(
        x=alt.datum(0.0, axis=None, scale=alt.Scale(domain=[-0.45, 1.45])), x2=alt.datum(1.0), y=y, y2="to:Q",
        opacity=alt.Opacity("weight:Q", scale=alt.Scale(domain=[0, 1], range=[0.05, 1]), legend=None),
        strokeWidth=alt.value(1.5), tooltip=["from token:N", "to token:N", alt.Tooltip("weight:Q", format=".3f")])
    left = alt.Chart(labels).mark_text(align="right", dx=-4, fontSize=11).encode(
        x=alt.datum(0.0), y=alt.Y("position:Q", scale=y_scale, axis=None), text="token:N")
    right = alt.Chart(labels).mark_text(align="left", dx=4, fontSize=11).encode(
        x=alt.datum(1.0), y=alt.Y("position:Q", scale=y_scale, axis=None), text="token:N")
    return (rules + left + right).properties(width=360, height=14 * len(view.tokens) + 20,
                                             title=f"Layer {layer}, head {head}: who attends to whom")


def head_importance(result: HeadImportance) -> alt.LayerChart:
    """Layer x head grid of the change in p(target) when each head is silenced, each value written in its cell."""
    effects = result.array
    frame = pd.DataFrame([{"layer": layer, "head": head, "change": float(effects[layer, head]),
                           "flipped": result.flipped[layer][head]}
                          for layer in range(effects.shape[0]) for head in range(effects.shape[1])])
    bound = max(1e-6, float(np.abs(effects).max()))
    base = alt.Chart(frame).encode(x=alt.X("head:O", title="head"), y=alt.Y("layer:O", title="layer"))
    cells = base.mark_rect().encode(
        color=alt.Color("change:Q", scale=alt.Scale(scheme="redblue", domain=[-bound, bound], reverse=True),
                        title=f"p({result.target}) change"),
        tooltip=["layer", "head", alt.Tooltip("change:Q", format="+.4f"), "flipped"])
    values = base.mark_text(fontSize=10).encode(
        text=alt.Text("change:Q", format="+.3f"),
        color=alt.condition(f"abs(datum.change) > {bound / 2}", alt.value("white"), alt.value("black")))
    return (cells + values).properties(width=alt.Step(48), height=alt.Step(26))


def edit_agreement(rows: Sequence[EditAgreement]) -> alt.LayerChart:
    """Per method, the share of flipping edits that touch its top-k words (bars, value written at the end),
    with the random ranking's share as a labelled rule."""
    frame = pd.DataFrame([{"method": r.method, "share": r.share} for r in rows])
    order = list(frame.sort_values("share", ascending=False)["method"])
    base = alt.Chart(frame).encode(
        x=alt.X("share:Q", scale=alt.Scale(domain=[0, 1.12]), title="share of counterfactuals touching its top-k",
                axis=alt.Axis(values=[0, 0.25, 0.5, 0.75, 1.0], format=".2f")),
        y=alt.Y("method:N", sort=order, title=None, axis=alt.Axis(labelLimit=0, labelOverlap=False)))
    bars = base.mark_bar(color="#4c78a8") + base.mark_text(align="left", dx=4, fontSize=12).encode(
        text=alt.Text("share:Q", format=".2f"))
    chance = rows[0].random_share if rows else 0.0
    rule = alt.Chart(pd.DataFrame([{"share": chance, "label": f"random ranking {chance:.2f}"}]))
    reference = rule.mark_rule(color="#e45756", strokeDash=[4, 3]).encode(x="share:Q") + rule.mark_text(
        align="left", dx=4, dy=-6, color="#e45756", fontSize=12, baseline="bottom", y=0).encode(x="share:Q", text="label:N")
    return (bars + reference).properties(height=alt.Step(26))


def corpus_edit_agreement(rows: Sequence[EditAgreementRow]) -> alt.LayerChart:
    """Per method over a corpus: mean share of flipping edits touching its top-k (point, value written, 95%
    interval), and the random ranking's mean share on the same edits (red tick)."""
    frame = pd.DataFrame([asdict(r) for r in rows])
    order = list(frame.sort_values("lift", ascending=False)["method"])
    y = alt.Y("method:N", sort=order, title=None, axis=alt.Axis(labelLimit=0, labelOverlap=False))
    base = alt.Chart(frame)
    errors = base.mark_rule().encode(x=alt.X("share_low:Q", scale=alt.Scale(domain=[0, 1]),
                                             title="share of counterfactuals touching its top-k (95% interval)"),
                                     x2="share_high:Q", y=y)
    points = base.mark_point(filled=True, size=80).encode(x="share:Q", y=y)
    values = base.mark_text(align="left", dx=8, dy=-8, fontSize=12).encode(x="share:Q", y=y,
                                                                          text=alt.Text("share:Q", format=".2f"))
    chance = base.mark_tick(color="#e45756", thickness=2, size=18).encode(x="random_share:Q", y=y)
    return (errors + points + values + chance).properties(height=alt.Step(30))


def confusion_matrix(result: Evaluation) -> alt.LayerChart:
    """Gold labels down, predictions across, every count written in its cell; a click selects a cell."""
    cells = pd.DataFrame([{"gold": g, "predicted": p, "inputs": result.confusion[i][j]}
                          for i, g in enumerate(result.labels) for j, p in enumerate(result.labels)])
    pick = alt.selection_point(fields=["gold", "predicted"], name="cell")
    base = alt.Chart(cells).encode(
        x=alt.X("predicted:N", sort=result.labels, title="predicted", axis=alt.Axis(labelAngle=0, labelLimit=0)),
        y=alt.Y("gold:N", sort=result.labels, title="gold label", axis=alt.Axis(labelLimit=0)))
    heat = base.mark_rect(stroke="#333").encode(
        color=alt.Color("inputs:Q", scale=alt.Scale(scheme="blues"), legend=None),
        strokeWidth=alt.condition(pick, alt.value(2), alt.value(0))).add_params(pick)
    midpoint = max(max(row) for row in result.confusion) / 2
    labels = base.mark_text(fontSize=14, fontWeight="bold").encode(
        text="inputs:Q", color=alt.condition(alt.datum.inputs > midpoint, alt.value("white"), alt.value("black")))
    return (heat + labels).properties(width=alt.Step(90), height=alt.Step(48))


def reliability(result: Evaluation) -> alt.LayerChart:
    """Accuracy against mean confidence per bin (bars, inputs written), with the diagonal of perfect calibration."""
    frame = pd.DataFrame([{"bin": f"{b.low:.1f}-{b.high:.1f}", "middle": (b.low + b.high) / 2,
                           "accuracy": b.accuracy, "confidence": b.confidence, "inputs": b.inputs}
                          for b in result.reliability if b.inputs])
    bars = alt.Chart(frame).mark_bar(width=18, color="#4c78a8").encode(
        x=alt.X("middle:Q", scale=alt.Scale(domain=[0, 1]), title="confidence (bin middle)"),
        y=alt.Y("accuracy:Q", scale=alt.Scale(domain=[0, 1.1]), title="accuracy in the bin"))
    counts = alt.Chart(frame).mark_text(dy=-8, fontSize=11).encode(x="middle:Q", y="accuracy:Q", text="inputs:Q")
    diagonal = alt.Chart(pd.DataFrame({"x": [0, 1], "y": [0, 1]})).mark_line(color="#e45756", strokeDash=[4, 3]).encode(
        x="x:Q", y="y:Q")
    return (bars + counts + diagonal).properties(height=260)


def datamodeling(result: LdsResult) -> alt.LayerChart:
    """Each method's linear datamodeling score with its 95% interval (when there are several inputs), 0 marked."""
    frame = pd.DataFrame([{"method": m.method, "LDS": m.lds, "low": m.low, "high": m.high} for m in result.methods])
    order = frame.sort_values("LDS", ascending=False)["method"].tolist()
    y = alt.Y("method:N", sort=order, title=None, axis=alt.Axis(labelLimit=0, labelFontSize=12))
    bars = alt.Chart(frame).mark_bar().encode(x=alt.X("LDS:Q", scale=alt.Scale(domain=[-1, 1])), y=y,
                                              tooltip=["method", alt.Tooltip("LDS:Q", format=".3f")])
    values = alt.Chart(frame).mark_text(align="left", dx=4, fontSize=12).encode(
        x=alt.value(310), y=y, text=alt.Text("LDS:Q", format="+.3f"))
    rules = alt.Chart(frame.dropna(subset=["low"])).mark_rule(strokeWidth=2, color="black").encode(x="low:Q", x2="high:Q", y=y)
    zero = alt.Chart(pd.DataFrame({"x": [0.0]})).mark_rule(strokeDash=[4, 3], color="gray").encode(x="x:Q")
    return (bars + rules + zero + values).properties(width=300, height=alt.Step(28))


def token_view(view: TokenView) -> alt.Chart:
    """Generated tokens (rows) by prompt words (columns): each cell the method's score of that word for that token's
    log-probability; diverging colours centred on zero, the value in the tooltip."""
    cells = pd.DataFrame([{"token": f"{t + 1}. {token.split(' ', 2)[-1]}", "order": t, "word": f"{w + 1}. {word}",
                           "position": w, "score": float(score)}
                          for t, (token, row) in enumerate(zip(view.tokens, view.scores, strict=True))
                          for w, (word, score) in enumerate(zip(view.words, row, strict=True))])
    bound = float(np.abs(cells["score"]).max()) or 1.0
    return alt.Chart(cells).mark_rect().encode(
        x=alt.X("word:N", sort=alt.SortField("position"), title="prompt word", axis=alt.Axis(labelAngle=-45)),
        y=alt.Y("token:N", sort=alt.SortField("order"), title="generated token"),
        color=alt.Color("score:Q", scale=alt.Scale(scheme="redblue", domain=[-bound, bound], reverse=True),
                        title=view.method),
        tooltip=["token", "word", alt.Tooltip("score:Q", format="+.3f")],
    ).properties(width=max(240, 28 * len(view.words)), height=max(80, 24 * len(view.tokens)))
