"""Altair chart specs shared by the pages (no Streamlit here): each function takes core results, returns a chart."""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import pandas as pd

from core import agreement
from core.checks import RandomisationResult
from core.corpus.aggregate import AgreementRow, LeaderboardRow
from core.reports import Comparison, ComparisonReport


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
    order = agreement.cluster_order(matrix)
    names = [comparison.methods[i] for i in order]
    cells = pd.DataFrame([{"a": comparison.methods[i], "b": comparison.methods[j],
                           "value": None if pd.isna(matrix[i, j]) else float(matrix[i, j])}
                          for i in order for j in order])
    # Cells large enough for their value; full method names on both axes.
    base = alt.Chart(cells).encode(
        x=alt.X("a:N", sort=names, title=None,
                axis=alt.Axis(labelLimit=0, labelAngle=-35, labelFontSize=12, labelOverlap=False)),
        y=alt.Y("b:N", sort=names, title=None, axis=alt.Axis(labelLimit=0, labelFontSize=12, labelOverlap=False)))
    heat = base.mark_rect().encode(color=alt.Color("value:Q", scale=alt.Scale(scheme="viridis", domain=list(metric.range)),
                                                   title=metric.title, legend=alt.Legend(orient="right", titleLimit=0)),
                                   tooltip=["a", "b", alt.Tooltip("value:Q", format=".3f")])
    midpoint = (metric.range[0] + metric.range[1]) / 2
    labels = base.mark_text(fontSize=13, fontWeight="bold").encode(
        text=alt.Text("value:Q", format=".2f"),
        color=alt.condition(alt.datum.value > midpoint, alt.value("black"), alt.value("white")))
    # Step sizing: every cell is 64 x 40 px whatever the number of methods, so values always fit.
    return (heat + labels).properties(width=alt.Step(64), height=alt.Step(40))


def faithfulness_curve(report: ComparisonReport, curve: str) -> alt.Chart:
    """Deletion or insertion curve of every method, the random ranking dashed."""
    frame = pd.DataFrame([{"method": f.method, "fraction": x, "p(target)": y}
                          for f in report.faithfulness for x, y in getattr(f, curve)])
    return alt.Chart(frame).mark_line(point=True).encode(
        x=alt.X("fraction:Q", title=f"fraction of words {'removed' if curve == 'deletion' else 'revealed'}"),
        y=alt.Y("p(target):Q", scale=alt.Scale(domain=[0, 1])),
        # The legend goes below the plot in columns, so no entry is cut however many methods there are.
        color=alt.Color("method:N", legend=alt.Legend(orient="bottom", columns=3, labelLimit=0, title=None)),
        strokeDash=alt.condition(alt.datum.method == "random", alt.value([5, 5]), alt.value([0])),
        tooltip=["method:N", "fraction:Q", alt.Tooltip("p(target):Q", format=".3f")],
    ).properties(title=f"{curve.title()} curve", height=260)


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


def randomisation(result: RandomisationResult) -> alt.Chart:
    frame = pd.DataFrame([{"stage": i, "randomised": s.name, "method": m, "Spearman": v}
                          for i, s in enumerate(result.stages) for m, v in s.similarity.items()])
    return alt.Chart(frame).mark_line(point=True).encode(
        x=alt.X("stage:O", title="randomised so far (cumulative)", axis=alt.Axis(
            labelExpr=f"{[s.name for s in result.stages]}[datum.value]", labelAngle=-30)),
        y=alt.Y("Spearman:Q", scale=alt.Scale(domain=[-1, 1]), title="Spearman with trained model"),
        color="method:N", tooltip=["randomised", "method", alt.Tooltip("Spearman:Q", format=".3f")])
