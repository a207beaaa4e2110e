import altair as alt
import pandas as pd
import streamlit as st

from core import agreement, attention_checks, compare, faithfulness
from core.explainers import METHODS, ExplainError
from core.explanation import text_sha256
from core.passages import PassageChoice, paragraphs, select_passage, sentences
from core.render import highlighted_text
from core.snapshots import get_snapshot, list_links, list_tags
from pages import engine, page_setup, runner_or_stop

page_setup("Compare")

db = engine()
st.title("Compare")
st.caption("One input, every method side by side: where they agree, where they contradict each other, "
           "and which account the model's own behaviour supports.")

# -- view state from the address bar ----------------------------------------------------------------
state = compare.ViewState.from_query(st.query_params.to_dict())
if "demo" in st.query_params:
    demo_id = st.query_params.get("demo", "")
    demo = compare.get_demo(db, int(demo_id)) if demo_id.isdigit() else None
    if demo is None:
        st.error(f"The demo '{demo_id}' does not exist (it may have been deleted). Showing a fresh comparison.")
        st.query_params.clear()
    else:
        import json

        st.query_params.from_dict(json.loads(demo.query))
        st.rerun()

# The address bar is the source of truth. A new address re-seeds every widget; otherwise a widget
# keeps its own state, and any key Streamlit dropped (an interrupted run can drop widget state)
# is seeded again from the address, which always mirrors the last complete view.
new_address = st.session_state.get("_view_loaded") != st.query_params.to_dict()
seeds = {"source": "Snapshot" if state.snapshot is not None else "Free text", "free_text": state.text,
         "methods": state.methods, "k": state.k, "model_spec": state.model, "passage_mode": state.passage.mode,
         "passage_start": state.passage.start, "passage_end": state.passage.end}
if state.snapshot is not None:
    seeds["snapshot_id"] = state.snapshot
for method, values in state.options.items():
    for name, value in values.items():
        seeds[f"opt_{method}_{name}"] = value
for key, value in seeds.items():
    if new_address or key not in st.session_state:
        st.session_state[key] = value

# -- input -----------------------------------------------------------------------------------------------
with st.sidebar:
    st.subheader("Input")
    source = st.radio("Source", ["Snapshot", "Free text"], key="source", horizontal=True)
    text, snapshot_id, passage = "", None, PassageChoice()
    if source == "Snapshot":
        tags = st.multiselect("Filter by tag", [n for n, _ in list_tags(db)], key="compare_tags")
        choices = {v.latest_snapshot_id: v.title or v.url for v in list_links(tags_any=tags, engine=db)
                   if v.latest_snapshot_id and not v.latest_error}
        wanted = st.session_state.get("snapshot_id")
        if wanted is not None and wanted not in choices:
            snap = get_snapshot(wanted, db)
            if snap is None:
                st.error(f"Snapshot {wanted} does not exist (the link may point to a deleted item).")
            elif snap.error:
                st.error(f"Snapshot {wanted} is a failed fetch and has no text.")
            else:
                choices[wanted] = snap.title or f"snapshot {wanted}"
        if not choices:
            st.info("No snapshots yet: add links on the Snapshots page, or use free text.")
        else:
            keys = list(choices)
            snapshot_id = st.selectbox("Snapshot", keys, format_func=lambda i: f"#{i} {choices[i]}",
                                       index=keys.index(wanted) if wanted in keys else 0)
            snap = get_snapshot(snapshot_id, db)
            mode = st.radio("Passage", ["paragraph", "sentences", "all"], key="passage_mode", horizontal=True,
                            help="Articles are longer than the model reads: pick a paragraph or a sentence range.")
            if mode == "paragraph":
                paras = paragraphs(snap.text)
                start = st.number_input(f"Paragraph (1-{len(paras)})", 1, max(1, len(paras)),
                                        min(len(paras), st.session_state.get("passage_start", 0) + 1)) - 1
                passage = PassageChoice("paragraph", start, start)
            elif mode == "sentences":
                sents = sentences(snap.text)
                first, last = st.slider("Sentences", 1, max(2, len(sents)),
                                        (st.session_state.get("passage_start", 0) + 1,
                                         min(len(sents), st.session_state.get("passage_end", 0) + 1) or 1))
                passage = PassageChoice("sentences", first - 1, last - 1)
            else:
                passage = PassageChoice("all", 0, 0)
            text = select_passage(snap.text, passage)
    else:
        text = st.text_area("Text to explain", key="free_text", height=140,
                            placeholder="The acting was wonderful but the plot made no sense.")

    st.subheader("Model and methods")
    model_spec = st.text_input("Model (hub id or path; empty: the configured default)", key="model_spec")
    methods = st.multiselect("Methods", list(METHODS), key="methods",
                             format_func=lambda m: METHODS[m].title)
    options: dict[str, dict] = {}
    for name in methods:
        method = METHODS[name]
        if not method.options:
            continue
        with st.expander(f"{method.title} options"):
            values = {}
            for option in method.options:
                key = f"opt_{name}_{option.name}"
                st.session_state.setdefault(key, option.default)  # widgets below read and write this key
                if option.choices:
                    values[option.name] = st.selectbox(option.name, option.choices, key=key, help=option.help)
                elif option.type in ("int", "float"):
                    cast = int if option.type == "int" else float
                    st.session_state[key] = cast(st.session_state[key])
                    values[option.name] = st.number_input(
                        option.name, key=key, help=option.help, step=1 if cast is int else None,
                        min_value=cast(option.minimum) if option.minimum is not None else None,
                        max_value=cast(option.maximum) if option.maximum is not None else None)
                elif option.type == "bool":
                    values[option.name] = st.checkbox(option.name, key=key, help=option.help)
                else:
                    values[option.name] = st.text_input(option.name, key=key, help=option.help)
            changed = {k: v for k, v in values.items() if v != next(o.default for o in method.options if o.name == k)}
            if changed:
                options[name] = changed
    k = st.slider("k (top words compared)", 1, 20, key="k")
    fresh = st.checkbox("Recompute (ignore stored results)", value=False)

view = compare.ViewState(snapshot=snapshot_id, text=text if snapshot_id is None else "", passage=passage,
                         model=model_spec.strip(), methods=methods, options=options, k=k)
if st.query_params.to_dict() != view.to_query():
    st.query_params.from_dict(view.to_query())
st.session_state["_view_loaded"] = view.to_query()

if not text.strip():
    st.info("Choose a snapshot or type some text, then press Run.")
    st.stop()
if not methods:
    st.warning("Choose at least one method.")
    st.stop()

runner = runner_or_stop(model_spec)
model = runner.loaded

with st.expander("Input text", expanded=False):
    st.text(text)

run_col, stop_col = st.columns([1, 5])
run = run_col.button("Run", type="primary")
stop_col.button("Stop", help="Stops after the method in progress; finished methods are kept.")

comparison = None
try:
    if not run and not fresh:
        comparison = compare.run_comparison(db, runner, text, methods, options, None, k, only_stored=True)
    if comparison is None and (run or fresh):
        bars = {name: st.progress(0.0, text=f"{METHODS[name].title}: waiting") for name in methods}

        def report(name: str, fraction: float, message: str) -> None:
            bars[name].progress(min(1.0, max(0.0, fraction)), text=f"{METHODS[name].title}: {message}")

        comparison = compare.run_comparison(db, runner, text, methods, options, None, k, fresh=fresh, progress=report)
except ExplainError as exc:
    st.error(str(exc))
    st.stop()

if comparison is None:
    st.info("Press **Run** to explain this input with the chosen methods. Stored results appear at once.")
    st.stop()

# -- prediction ----------------------------------------------------------------------------------------
probs = comparison.probabilities
st.subheader(f"Prediction: {comparison.predicted_label} ({probs[comparison.predicted_label]:.2f})")
st.altair_chart(alt.Chart(pd.DataFrame({"label": list(probs), "probability": list(probs.values())}))
                .mark_bar(size=18).encode(x=alt.X("probability:Q", scale=alt.Scale(domain=[0, 1])),
                                          y=alt.Y("label:N", title=None),
                                          tooltip=["label", alt.Tooltip("probability:Q", format=".3f")])
                .properties(height=30 * len(probs) + 30),
                width="stretch")
if comparison.truncated_words:
    st.warning(f"The input is longer than the model reads: {comparison.truncated_words} words at the end were "
               "dropped. Pick a shorter passage to explain all of it.")
cached_note = [m for m, c in comparison.cached.items() if c]
if cached_note:
    st.caption(f"Stored results reused for: {', '.join(cached_note)}.")

# -- side by side ----------------------------------------------------------------------------------------
st.subheader("Side by side")
normalised = compare.normalised_rows(comparison)
records = []
for row, e in enumerate(comparison.explanations):
    for i, word in enumerate(e.words):
        records.append({"method": e.method, "position": i, "word": word, "score": e.scores[i],
                        "normalised": float(normalised[row, i]), "signed": e.signed})
frame = pd.DataFrame(records)
n_words = len(comparison.words)
x_axis = alt.X("position:O", title=None, axis=alt.Axis(labelExpr=f"{[w[:14] for w in comparison.words]}[datum.value]",
                                                          labelAngle=-60))
tooltip = ["method", "word", "position", alt.Tooltip("score:Q", format=".4f"), alt.Tooltip("normalised:Q", format=".2f")]
width = max(400, min(18 * n_words, 6000))
charts = []
signed_rows = frame[frame["signed"]]
unsigned_rows = frame[~frame["signed"]]
if not signed_rows.empty:
    charts.append(alt.Chart(signed_rows).mark_rect().encode(
        x=x_axis, y=alt.Y("method:N", sort=[e.method for e in comparison.explanations if e.signed], title=None),
        color=alt.Color("normalised:Q", scale=alt.Scale(scheme="redblue", domain=[-1, 1], reverse=True),
                        title="signed (row-normalised)"), tooltip=tooltip).properties(width=width))
if not unsigned_rows.empty:
    charts.append(alt.Chart(unsigned_rows).mark_rect().encode(
        x=x_axis, y=alt.Y("method:N", sort=[e.method for e in comparison.explanations if not e.signed], title=None),
        color=alt.Color("normalised:Q", scale=alt.Scale(scheme="greens", domain=[0, 1]),
                        title="unsigned (row-normalised)"), tooltip=tooltip).properties(width=width))
st.altair_chart(alt.vconcat(*charts).resolve_scale(color="independent"), width="content")
st.caption("Each row is divided by its largest |score|. Red supports the target label, blue speaks against it; "
           "green rows (saliency, attention) have no sign. Hover a cell for the exact score.")

with st.expander("Text view (for long passages)", expanded=n_words > 60):
    chosen = st.selectbox("Method", comparison.methods, key="text_view_method")
    row = comparison.methods.index(chosen)
    e = comparison.explanations[row]
    st.html(highlighted_text(e.text, e.offsets, normalised[row].tolist(), e.signed,
                             titles=[f"{w}: {s:+.4f}" for w, s in zip(e.words, e.scores, strict=True)]))

left, right = st.columns([3, 2])
with left:
    st.markdown(f"**Top {k} words per method**")
    tops = compare.top_words(comparison, k)
    st.dataframe(pd.DataFrame({m: [f"{w} ({s:+.3f})" for w, s in words] + [""] * (k - len(words))
                               for m, words in tops.items()}, index=range(1, k + 1)), width="stretch")
with right:
    st.markdown("**Cost of each method**")
    cost = pd.DataFrame([{"method": e.method, "seconds": e.seconds, "forward passes": e.forward_passes}
                         for e in comparison.explanations])
    st.altair_chart(alt.Chart(cost).mark_bar().encode(
        x=alt.X("seconds:Q"), y=alt.Y("method:N", sort="-x"),
        tooltip=["method", alt.Tooltip("seconds:Q", format=".3f"), "forward passes"]).properties(height=28 * len(cost) + 40),
        width="stretch")
    st.dataframe(cost, hide_index=True, width="stretch")

# -- agreement -------------------------------------------------------------------------------------------
st.subheader("Agreement")
metric_name = st.selectbox("Metric", list(agreement.METRICS), format_func=lambda m: agreement.METRICS[m].title,
                           key="metric")
metric = agreement.METRICS[metric_name]
matrix = agreement.agreement_matrix(comparison.explanations, metric_name, k)
order = agreement.cluster_order(matrix)
names = [comparison.methods[i] for i in order]
cells = pd.DataFrame([{"a": comparison.methods[i], "b": comparison.methods[j],
                       "value": None if pd.isna(matrix[i, j]) else float(matrix[i, j])}
                      for i in order for j in order])
base = alt.Chart(cells).encode(x=alt.X("a:N", sort=names, title=None), y=alt.Y("b:N", sort=names, title=None))
heat = base.mark_rect().encode(color=alt.Color("value:Q", scale=alt.Scale(scheme="viridis", domain=list(metric.range)),
                                               title=metric.title), tooltip=["a", "b", alt.Tooltip("value:Q", format=".3f")])
labels = base.mark_text(fontSize=11).encode(text=alt.Text("value:Q", format=".2f"),
                                            color=alt.value("white"))
st.altair_chart((heat + labels).properties(width=420, height=380), width="content")
st.caption(f"{metric.help} Range {metric.range[0]} to {metric.range[1]}, higher means more agreement"
           + (f"; k = {k}." if metric.uses_k else "; computed over all words.")
           + " Methods are ordered by clustering so that those that agree sit together.")

spots = agreement.hot_spots(comparison.explanations, k)[:10]
if spots:
    st.markdown("**Disagreement hot spots**: the words the methods dispute most")
    st.dataframe(pd.DataFrame([{"word": s.word, "position": s.index, "sign conflict": s.sign_conflict,
                                "says it supports": ", ".join(s.positive_methods),
                                "says it opposes": ", ".join(s.negative_methods), "rank spread": s.rank_spread}
                               for s in spots]), hide_index=True, width="stretch")
    first = comparison.explanations[0]
    st.html(highlighted_text(first.text, first.offsets, [0.0] * len(first.words), True,
                             titles=[f"rank spread {next((s.rank_spread for s in spots if s.index == i), 0)}"
                                     for i in range(len(first.words))], outlined=[s.index for s in spots]))

# -- faithfulness ------------------------------------------------------------------------------------------


@st.cache_data(max_entries=64, show_spinner="Measuring faithfulness…")
def faithfulness_results(_runner, _explanations, fingerprint: str, text_hash: str, key: str):
    return faithfulness.evaluate(_runner, _explanations)


faith = faithfulness_results(runner, comparison.explanations, model.fingerprint, text_sha256(comparison.text),
                             str([(e.method, e.target, e.scores) for e in comparison.explanations]))
st.subheader("Faithfulness: which account does the model support?")
st.caption(f"Removed words are replaced by the mask token ({runner.mask_token}), one per word piece. "
           "Comprehensiveness: drop in p(target) when the method's top words are removed (higher is better). "
           "Sufficiency: drop when only its top words are kept (lower is better). "
           "AOPC averages k = 1, 5, 10, 20, 50% of the words. 'random' is a random ranking (mean of 5).")
st.dataframe(pd.DataFrame([{"method": f.method, "comprehensiveness AOPC ↑": f.aopc_comprehensiveness,
                            "sufficiency AOPC ↓": f.aopc_sufficiency, "deletion AUC ↓": f.deletion_auc,
                            "insertion AUC ↑": f.insertion_auc} for f in faith]).round(4),
             hide_index=True, width="stretch")
curves = pd.DataFrame([{"method": f.method, "curve": curve, "fraction": x, "p(target)": y}
                       for f in faith for curve, points in (("deletion", f.deletion), ("insertion", f.insertion))
                       for x, y in points])
for curve_name in ("deletion", "insertion"):
    data = curves[curves["curve"] == curve_name]
    st.altair_chart(alt.Chart(data).mark_line(point=True).encode(
        x=alt.X("fraction:Q", title=f"fraction of words {'removed' if curve_name == 'deletion' else 'revealed'}"),
        y=alt.Y("p(target):Q", scale=alt.Scale(domain=[0, 1])), color="method:N",
        strokeDash=alt.condition(alt.datum.method == "random", alt.value([5, 5]), alt.value([0])),
        tooltip=["method", "fraction", alt.Tooltip("p(target):Q", format=".3f")]
    ).properties(title=f"{curve_name.title()} curve", height=260), width="stretch")

# -- attention debate ---------------------------------------------------------------------------------------
st.subheader("Is attention explanation, here?")
correlations = attention_checks.correlations(comparison.explanations)
if correlations:
    st.dataframe(pd.DataFrame([{"attention": c.attention_method, "compared with": c.reference_method,
                                "Spearman ρ": c.spearman} for c in correlations]).round(3), hide_index=True)
else:
    st.caption("Select an attention method and a gradient or occlusion method to correlate them.")


@st.cache_data(max_entries=64, show_spinner="Intervening on attention…")
def interventions_for(_runner, fingerprint: str, text: str, target: str):
    return attention_checks.intervene(_runner, text, target)


interventions = interventions_for(runner, model.fingerprint, comparison.text, comparison.target)
st.dataframe(pd.DataFrame([{"layer": i.layer, "replacement": i.mode, "p(target) change": i.target_change,
                            "total variation": i.total_variation, "label flipped": i.label_flipped}
                           for i in interventions]).round(4), hide_index=True, width="stretch")
st.caption("Each row replaces one layer's attention weights (uniform over tokens, or permuted) and reruns "
           "the model. If the prediction barely moves, that layer's attention weights are not what decides it.")

# -- summary ------------------------------------------------------------------------------------------------
st.subheader("Summary")
for line in compare.summarise(comparison, k, faith, correlations, interventions):
    st.markdown("- " + line.replace("<", "&lt;"))

# -- sharing and export -------------------------------------------------------------------------------------
st.subheader("Share and export")
st.caption("The address bar always holds a working link to this view; results are stored, so it opens instantly.")
with st.form("save-demo"):
    demo_name = st.text_input("Demo name", key="demo_name")
    demo_note = st.text_area("Note", key="demo_note", height=70)
    if st.form_submit_button("Save as demo"):
        try:
            saved = compare.save_demo(db, demo_name, demo_note, view)
            st.success(f"Saved demo '{saved.name}'.")
        except ExplainError as exc:
            st.error(str(exc))
demos = compare.list_demos(db)
if demos:
    st.markdown("**Saved demos**")
    for d in demos:
        st.page_link("pages/2_Compare.py", label=f"{d.name} — {d.note[:80]}", query_params={"demo": str(d.id)})
a, b, c = st.columns(3)
a.download_button("Comparison (JSON)", compare.to_json(comparison, k, faith), "rashomon-comparison.json",
                  "application/json")
b.download_button("Scores per word (CSV)", compare.to_csv(comparison), "rashomon-scores.csv", "text/csv")
c.download_button("Agreement metrics (CSV)", compare.metrics_csv(comparison, k), "rashomon-metrics.csv", "text/csv")
