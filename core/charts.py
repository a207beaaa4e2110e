"""Altair chart specs shared by the pages (no Streamlit here): each function takes core results, returns a chart."""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import pandas as pd

from core import agreement
from core.checks import RandomisationResult
from core.compare import normalised_rows
from core.corpus.aggregate import AgreementRow, LeaderboardRow
from core.reports import Comparison, ComparisonReport


def prediction(probabilities: dict[str, float]) -> alt.Chart:
    frame = pd.DataFrame({"label": list(probabilities), "probability": list(probabilities.values())})
    return (alt.Chart(frame).mark_bar(size=18)
            .encode(x=alt.X("probability:Q", scale=alt.Scale(domain=[0, 1])), y=alt.Y("label:N", title=None),
                    tooltip=["label", alt.Tooltip("probability:Q", format=".3f")])
            .properties(height=30 * len(probabilities) + 30))


def heatmap_records(comparison: Comparison) -> pd.DataFrame:
    """One row per (method, word): raw and row-normalised score, for the side-by-side heatmap."""
    normalised = normalised_rows(comparison)
    return pd.DataFrame([{"method": e.method, "position": i, "word": word, "score": e.scores[i],
                          "normalised": float(normalised[row, i]), "signed": e.signed}
                         for row, e in enumerate(comparison.explanations) for i, word in enumerate(e.words)])


def side_by_side(comparison: Comparison) -> alt.VConcatChart:
    """Signed methods on a red-blue scale, unsigned ones on greens, words aligned in columns."""
    frame = heatmap_records(comparison)
    n_words = len(comparison.words)
    x_axis = alt.X("position:O", title=None, axis=alt.Axis(
        labelExpr=f"{[w[:14] for w in comparison.words]}[datum.value]", labelAngle=-60))
    tooltip = ["method", "word", "position", alt.Tooltip("score:Q", format=".4f"),
               alt.Tooltip("normalised:Q", format=".2f")]
    width = max(400, min(18 * n_words, 6000))
    charts = []
    for signed, scheme, domain, title in ((True, "redblue", [-1, 1], "signed (row-normalised)"),
                                          (False, "greens", [0, 1], "unsigned (row-normalised)")):
        rows = frame[frame["signed"] == signed]
        if rows.empty:
            continue
        order = [e.method for e in comparison.explanations if e.signed == signed]
        charts.append(alt.Chart(rows).mark_rect().encode(
            x=x_axis, y=alt.Y("method:N", sort=order, title=None),
            color=alt.Color("normalised:Q", scale=alt.Scale(scheme=scheme, domain=domain, reverse=signed),
                            title=title), tooltip=tooltip).properties(width=width))
    return alt.vconcat(*charts).resolve_scale(color="independent")


def cost(rows: Sequence[dict]) -> alt.Chart:
    frame = pd.DataFrame(rows)
    return alt.Chart(frame).mark_bar().encode(
        x=alt.X("seconds when computed:Q"), y=alt.Y("step:N", sort="-x", title=None),
        tooltip=["step", alt.Tooltip("seconds when computed:Q", format=".3f"), "forward passes when computed",
                 "forward passes now"]).properties(height=28 * len(frame) + 40)


def agreement_matrix(comparison: Comparison, metric_name: str, k: int) -> alt.LayerChart:
    metric = agreement.METRICS[metric_name]
    matrix = agreement.agreement_matrix(comparison.explanations, metric_name, k)
    order = agreement.cluster_order(matrix)
    names = [comparison.methods[i] for i in order]
    cells = pd.DataFrame([{"a": comparison.methods[i], "b": comparison.methods[j],
                           "value": None if pd.isna(matrix[i, j]) else float(matrix[i, j])}
                          for i in order for j in order])
    base = alt.Chart(cells).encode(x=alt.X("a:N", sort=names, title=None), y=alt.Y("b:N", sort=names, title=None))
    heat = base.mark_rect().encode(color=alt.Color("value:Q", scale=alt.Scale(scheme="viridis", domain=list(metric.range)),
                                                   title=metric.title),
                                   tooltip=["a", "b", alt.Tooltip("value:Q", format=".3f")])
    labels = base.mark_text(fontSize=11).encode(text=alt.Text("value:Q", format=".2f"), color=alt.value("white"))
    return (heat + labels).properties(width=420, height=380)


def faithfulness_curve(report: ComparisonReport, curve: str) -> alt.Chart:
    """Deletion or insertion curve of every method, the random ranking dashed."""
    frame = pd.DataFrame([{"method": f.method, "fraction": x, "p(target)": y}
                          for f in report.faithfulness for x, y in getattr(f, curve)])
    return alt.Chart(frame).mark_line(point=True).encode(
        x=alt.X("fraction:Q", title=f"fraction of words {'removed' if curve == 'deletion' else 'revealed'}"),
        y=alt.Y("p(target):Q", scale=alt.Scale(domain=[0, 1])), color="method:N",
        strokeDash=alt.condition(alt.datum.method == "random", alt.value([5, 5]), alt.value([0])),
        tooltip=["method", "fraction", alt.Tooltip("p(target):Q", format=".3f")],
    ).properties(title=f"{curve.title()} curve", height=260)


def corpus_agreement(rows: Sequence[AgreementRow], metric: str, title: str) -> alt.Chart | None:
    frame = pd.DataFrame([r.__dict__ for r in rows if r.metric == metric])
    if frame.empty:
        return None
    return alt.Chart(frame).mark_boxplot(extent="min-max").encode(
        x=alt.X("value:Q", title=title), y=alt.Y("pair:N", title=None), color=alt.Color("pair:N", legend=None),
        tooltip=["pair"]).properties(height=max(120, 22 * frame["pair"].nunique()))


def leaderboard(rows: Sequence[LeaderboardRow]) -> alt.LayerChart:
    frame = pd.DataFrame([r.__dict__ for r in rows])
    points = alt.Chart(frame).mark_point(filled=True, size=80).encode(
        x=alt.X("comprehensiveness:Q", title="mean comprehensiveness AOPC (95% bootstrap interval)"),
        y=alt.Y("method:N", sort="-x", title=None), tooltip=list(frame.columns))
    errors = alt.Chart(frame).mark_rule().encode(x="comp_low:Q", x2="comp_high:Q", y=alt.Y("method:N", sort="-x"))
    return errors + points


def randomisation(result: RandomisationResult) -> alt.Chart:
    frame = pd.DataFrame([{"stage": i, "randomised": s.name, "method": m, "Spearman": v}
                          for i, s in enumerate(result.stages) for m, v in s.similarity.items()])
    return alt.Chart(frame).mark_line(point=True).encode(
        x=alt.X("stage:O", title="randomised so far (cumulative)", axis=alt.Axis(
            labelExpr=f"{[s.name for s in result.stages]}[datum.value]", labelAngle=-30)),
        y=alt.Y("Spearman:Q", scale=alt.Scale(domain=[-1, 1]), title="Spearman with trained model"),
        color="method:N", tooltip=["randomised", "method", alt.Tooltip("Spearman:Q", format=".3f")])
