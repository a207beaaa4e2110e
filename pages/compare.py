import json
from urllib.parse import urlencode

import pandas as pd
import streamlit as st

from core import charts
from core.addresses import PAGE_PARAMS
from core.analyses import agreement, compare, known_answer, verdict
from core.analyses.granularity import DEFAULT_LEVEL, LEVELS, comparison_at_level
from core.analyses.passages import PassageChoice, paragraphs, select_passage, sentences
from core.analyses.reports import MEASURES, estimate_view, open_report, stored_report_row
from core.analyses.token_view import token_view
from core.analyses.training_data.view import DataView
from core.engine.modelling import VALUES
from core.engine.pass_time import ESTIMATE_PARAM, estimate_range, estimate_sentence, took_sentence
from core.library.snapshots import get_snapshot, list_links, list_tags
from core.methods.base import ExplainError
from core.methods.registry import METHODS
from core.params import read_query
from core.render import comparison_grid, highlighted_text, md, prediction_bars
from core.storage.notes import list_notes
from pages.widgets import attention_whole, edits
from pages.widgets.people import asked_by, notes_on
from pages.widgets.resources import engine, model_picker, runner_or_stop, task_button
from pages.widgets.ui import (
    compatible_only,
    option_widgets,
    sample_note,
    seed_widgets,
    stored_text_key,
    text_from_address,
)

db = engine()
st.title("Compare")
st.caption("One input, every method side by side: where they agree, where they contradict each other, "
           "and which account the model's own behaviour supports.")

# -- view state from the address bar ----------------------------------------------------------------
state = compare.ViewState.from_query(st.query_params.to_dict())
missing_text = text_from_address(db, state)
if "demo" in st.query_params:
    demo_id = read_query(PAGE_PARAMS["pages/compare.py"], st.query_params.to_dict())["demo"]
    demo = compare.get_demo(db, demo_id) if demo_id is not None else None
    if demo is None:
        # Said, with the list to choose from; no other view is opened and the address keeps what it asked for.
        st.error(f"The demo '{md(st.query_params.get('demo', ''))}' does not exist (it may have been deleted).")
        saved = compare.list_demos(db)
        for d in saved:
            st.page_link("pages/compare.py", label=f"{d.name} — {d.note[:80]}", query_params={"demo": str(d.id)})
        if not saved:
            st.caption("No demos are saved on this server.")
        st.page_link("pages/compare.py", label="Start a fresh comparison", query_params={})
        st.stop()
    else:
        st.query_params.from_dict(json.loads(demo.query))
        st.rerun()

# The address bar is the source of truth. A new address re-seeds every widget; otherwise a widget
# keeps its own state, and any key Streamlit dropped (an interrupted run can drop widget state)
# is seeded again from the address, which always mirrors the last complete view.
new_address = st.session_state.get("_view_loaded") != st.query_params.to_dict()
if new_address:
    for problem in state.problems:
        st.warning(md(problem))
seeds = {"source": "Snapshot" if state.snapshot is not None else "Free text", "free_text": state.text,
         "methods": state.methods, "k": state.k, "model_spec": state.model, "target": state.target,
         "request_continuation": state.continuation, "request_contrast": state.contrast, "level": state.level,
         "passage_mode": state.passage.mode,
         "passage_start": state.passage.start, "passage_end": state.passage.end}
if state.snapshot is not None:
    seeds["snapshot_id"] = state.snapshot
for method, values in state.options.items():
    for name, value in values.items():
        seeds[f"opt_{method}_{name}"] = value
seed_widgets(seeds, new_address)

# -- input: in the main column, the source on the left, the model and methods on the right ------------------
st.subheader("Input")
source_column, model_column = st.columns([3, 2], gap="medium")
with source_column:
    source = st.radio("Source", ["Snapshot", "Free text"], key="source", horizontal=True)
    text, snapshot_id, passage, unavailable = "", None, PassageChoice(), ""
    if source == "Snapshot":
        pick_column, tag_column = st.columns([3, 2])
        tags = tag_column.multiselect("Filter by tag", [n for n, _ in list_tags(db)], key="compare_tags")
        choices = {v.latest_good_snapshot_id: v.title or v.url for v in list_links(db, tags_any=tags)
                   if v.latest_good_snapshot_id}
        wanted = st.session_state.get("snapshot_id")
        if wanted is not None and wanted not in choices:
            snap = get_snapshot(db, wanted)
            if snap is None:
                unavailable = f"Snapshot {wanted} does not exist (the link may point to a deleted item)."
            elif snap.error:
                unavailable = f"Snapshot {wanted} is a failed fetch and has no text."
            else:
                choices[wanted] = snap.title or f"snapshot {wanted}"
        if not choices:
            pick_column.info("No snapshots yet: add links on the Snapshots page, or use free text.")
        else:
            keys = list(choices)
            # A link to a snapshot that is not there opens none: no other snapshot is explained in its place.
            snapshot_id = pick_column.selectbox(
                "Snapshot", keys, format_func=lambda i: f"#{i} {choices[i]}",
                index=None if unavailable else keys.index(wanted) if wanted in keys else 0,
                placeholder="Choose a snapshot")
        if unavailable and snapshot_id is None:
            # The address keeps what it asked for: nothing else is explained, and it is not rewritten.
            st.error(f"{unavailable} Choose one in the list above, or open the Snapshots page.")
            st.page_link("pages/snapshots.py", label="Open the Snapshots page")
        if snapshot_id is not None:
            snap = get_snapshot(db, snapshot_id)
            mode_column, range_column = st.columns([2, 3])
            mode = mode_column.radio("Passage", ["paragraph", "sentences", "all"], key="passage_mode",
                                     horizontal=True, help="Articles are longer than the model reads: pick a "
                                                           "paragraph or a sentence range.")
            if mode == "paragraph":
                paras = paragraphs(snap.text)
                start = range_column.number_input(
                    f"Paragraph (1-{len(paras)})", 1, max(1, len(paras)),
                    min(len(paras), st.session_state.get("passage_start", 0) + 1)) - 1
                passage = PassageChoice("paragraph", start, start)
            elif mode == "sentences":
                sents = sentences(snap.text)
                first, last = range_column.slider("Sentences", 1, max(2, len(sents)),
                                                  (st.session_state.get("passage_start", 0) + 1,
                                                   min(len(sents), st.session_state.get("passage_end", 0) + 1) or 1))
                passage = PassageChoice("sentences", first - 1, last - 1)
            else:
                passage = PassageChoice("all", 0, 0)
            text = select_passage(snap.text, passage)
            with st.expander("The passage explained", expanded=False):
                st.text(text)
    else:
        text = st.text_area("Text to explain", key="free_text", height=140,
                            placeholder="The acting was wonderful but the plot made no sense.")
        if missing_text and not text.strip():
            st.error(md(missing_text))

with model_column:
    model_spec = model_picker("Model", key="model_spec")
    runner = runner_or_stop(model_spec)
    labels = runner.loaded.labels
    if st.session_state.get("target") not in ("", *labels):
        st.warning(f"The link asks to explain '{md(st.session_state['target'])}', which is not a label of this model "
                   f"({', '.join(labels)}); explaining the predicted label instead.")
        st.session_state["target"] = ""
    target = st.selectbox("Label to explain", ["", *labels], key="target",
                          format_func=lambda label: label or "the predicted label",
                          help="Every method explains the model's probability of this label.")
    chosen = st.multiselect("Methods", list(METHODS), key="methods", format_func=lambda m: METHODS[m].title)
    methods = compatible_only(chosen, runner.loaded)  # the address keeps the choice
    if not methods:
        st.warning("Choose at least one method.")
    k_column, fresh_column = st.columns(2)
    k = k_column.slider("k (top words compared)", 1, compare.MAX_K, key="k")
    fresh = fresh_column.checkbox("Recompute", value=False, help="Ignore stored results and compute again.")
    options: dict[str, dict] = {}
    with_options = [name for name in methods if METHODS[name].options]
    if with_options:
        with st.expander("Method options"):
            for name in with_options:
                st.markdown(f"**{METHODS[name].title}**")
                if changed := option_widgets(METHODS[name]):
                    options[name] = changed

if (unavailable and snapshot_id is None) or (missing_text and snapshot_id is None and not text.strip()):
    st.stop()  # said next to the snapshot list or the text box; the address keeps what it asked for

view = compare.ViewState(snapshot=snapshot_id, text=text if snapshot_id is None else "", passage=passage,
                         model=model_spec.strip(), methods=chosen, options=options, target=target, k=k,
                         continuation=st.session_state.get("request_continuation", ""),
                         contrast=st.session_state.get("request_contrast", ""),
                         level=st.session_state.get("level", DEFAULT_LEVEL))
if snapshot_id is None and text.strip():
    view.text_key = stored_text_key(db, text)  # the address names the stored text, however long it is
if st.query_params.to_dict() != view.to_query():
    st.query_params.from_dict(view.to_query())
st.session_state["_view_loaded"] = view.to_query()

if not text.strip():
    st.info("Choose a snapshot or type some text, then press Run.")
    st.stop()
if not methods:
    st.stop()  # said under the method list


def keep_first_window(window: str) -> None:
    st.session_state["free_text"] = window


task_params = {"text": text, "methods": methods, "options": options, "target": target}
try:
    estimate = estimate_view(runner, text, methods, options)
    # Whatever the store holds, never computed here: explanations and measures are the workers' job.
    report = open_report(db, runner, text, methods, options, target or None, partial=True, measure=False)
except ExplainError as exc:
    st.error(md(str(exc)))
    st.stop()
if estimate.truncated_words:
    st.warning(f"The model reads the first {estimate.words_read} of the input's {estimate.words} words: "
               f"{estimate.truncated_words} words at the end will be dropped. "
               + ("Pick a paragraph or a sentence range to explain another part."
                  if snapshot_id is not None else "Explain only the first window, or shorten the text."))
    if snapshot_id is None:
        st.button("Keep only the first window", on_click=keep_first_window, args=(runner.prepare(text).text,))
expected = estimate_range(db, runner.loaded.fingerprint, "comparison", runner.loaded.path, estimate.forward_passes)
if report is None or not report.measured:
    st.caption(estimate_sentence(expected))

titles = {name: METHODS[name].title for name in methods} | {MEASURES: "Faithfulness and attention checks"}
last = task_button("Run", "comparison", task_params, runner, titles=titles, key="compare",
                   extra={"fresh": fresh, ESTIMATE_PARAM: expected.point},
                   stop_help="Stops the run now. Methods that already finished are stored and kept (the page then "
                             "shows them); the one in progress is dropped and runs again on the next Run.")
if last is not None and last.active:
    st.stop()
if last is not None and last.status == "done" and (report is None or not report.measured):
    # The task ended between reading the store above and looking at the task: read the finished view.
    report = open_report(db, runner, text, methods, options, target or None, partial=True, measure=False)

if report is None:
    st.info("Press **Run** to explain this input with the chosen methods. Stored results appear at once.")
    st.stop()
comparison = report.comparison
if report.sample:
    sample_note("comparison")
if report.stopped:
    st.warning(f"Partly computed: {', '.join(comparison.methods)} finished and are kept; "
               f"{', '.join(comparison.missing)} did not run. Press **Run** to compute the rest "
               "(finished methods come from the store).")
elif not report.measured:
    st.info("Every method's explanation is stored (a corpus run or another view made them); faithfulness and "
            "the attention checks are not measured yet. Press **Run** to measure them.")

# -- prediction ----------------------------------------------------------------------------------------
probs = comparison.probabilities
if runner.loaded.outputs == VALUES:  # log-probabilities of a continuation: no label is "predicted"
    st.subheader(f"Explaining: {md(comparison.target)} = {probs[comparison.target]:.3f}")
    st.dataframe(pd.DataFrame({"output": list(probs), "log-probability": list(probs.values())}), hide_index=True)
    st.caption(md(runner.loaded.settings.get("target", "")))
else:
    st.subheader(f"Prediction: {md(comparison.predicted_label)} ({probs[comparison.predicted_label]:.2f})")
    st.html(prediction_bars(probs))
    if runner.loaded.settings.get("template"):
        st.caption(f"Template {md(repr(runner.loaded.settings['template']))}, label words "
                   + ", ".join(f"{md(w)} → {md(t)}" for w, t in runner.loaded.settings.get("label_tokens", {}).items()))
if runner.loaded.per_token_outputs:
    with st.expander("Which prompt words drove each generated token", expanded=True):
        token_method = st.selectbox("Method", methods, key="token_method", format_func=lambda m: METHODS[m].title)
        token_params = {"text": text, "method": token_method, "options": options.get(token_method, {})}
        try:
            per_token = token_view(db, runner, text, token_method, options.get(token_method), only_stored=True)
        except ExplainError as exc:
            st.error(md(str(exc)))
            per_token = None
        if per_token is not None:
            st.altair_chart(charts.token_view(per_token), width="content")
            st.caption(f"Each row explains one generated token's log-probability (given the prompt and the tokens "
                       f"before it) with {METHODS[token_method].title}; red supports the token, blue opposes it.")
        else:
            task_button("Explain each token", "token_view", token_params, runner,
                        titles={token_method: METHODS[token_method].title}, key="token_view")
st.caption(compare.provenance(comparison, last.result if last is not None and last.status == "done" else None))

# -- verdict: which account the model supports, from the faithfulness table -------------------------------
TABS = {"side-by-side": "Words", "agreement": "Agreement", "faithfulness": "Faithfulness", "attention": "Attention",
        "edits": "What would flip it?", "export": "Summary and export"}


def open_tab(label: str) -> None:
    st.session_state["section"] = label


evidence = verdict.gather(db, runner, report, k, options)  # stored checks and edit search: no model pass
if (decided := verdict.decide(report, k, evidence=evidence)) is not None:
    st.subheader("Verdict", anchor="verdict")
    for number, (line, section) in enumerate(zip(decided.sentences, decided.sections, strict=True)):
        sentence_column, link_column = st.columns([12, 2], vertical_alignment="center")
        sentence_column.markdown(f"- {md(line)}")
        with link_column:
            if section in TABS:
                st.button(f"{TABS[section]} →", key=f"see_{number}", type="tertiary", on_click=open_tab,
                          args=(TABS[section],), help=f"Open the {TABS[section]} tab, which shows this.")
            else:  # stored on another page (a stability check): a link there
                st.page_link("pages/checks.py", label="Checks →")
    if cited := known_answer.citation(db, runner.loaded.fingerprint):
        st.markdown("- **Known answer**: " + md(cited["text"]))
        st.page_link("pages/checks.py", label="The known-answer check on the Checks page")
    st.caption("Computed from the Faithfulness tab's table (margins over the random rankings, erasure by "
               f"[{decided.erasure}]) and the agreement matrices; `rashomon compare --json` carries the same verdict.")
elif not report.measured:
    st.info("No verdict yet: it is read from faithfulness, which is not measured for this view: press **Run**.")
if report.measured and (stored_row := stored_report_row(db, runner, text, methods, options, target or None)):
    report_id = stored_row[0]
    asked_by(stored_row[1], stored_row[2])
    # a note is on the whole comparison or on one method within it; both are listed here
    about = {"the whole comparison": f"comparison:{report_id}",
             **{f"the method {name}": f"method:{report_id}:{name}" for name in methods}}
    on_this = list_notes(db, refs=tuple(about.values()))
    with st.expander(f"Notes on this comparison ({len(on_this)}): what the team concluded", expanded=bool(on_this)):
        notes_on(db, f"comparison:{report_id}", model=model_spec, page="compare", key="compare_notes",
                 address="Compare?" + urlencode(st.query_params.to_dict()), methods=list(methods), about=about)

words_tab, agreement_tab, faithfulness_tab, attention_tab, edits_tab, export_tab = st.tabs(
    list(TABS.values()), key="section", on_change="rerun")

# -- side by side ----------------------------------------------------------------------------------------
with words_tab:
    st.subheader("Side by side", anchor="side-by-side")
    long_input = len(comparison.words) > compare.LONG_INPUT_WORDS
    shared_scale = st.toggle("One colour scale for every method", key="shared_scale",
                             help="Off: each method's colours are divided by its own largest |score|, so every row "
                                  "uses the whole range. On: every row is divided by the largest |score| of any "
                                  "method, so a method whose scores are tiny is drawn pale. Each row says which.")
    st.html(comparison_grid(compare.grid_rows(comparison, k, shared=shared_scale), scroll=long_input))
    st.caption(f"Each method's own copy of the input, explaining **{md(comparison.target)}**. Bold words with a "
               f"number are the method's top {k} (1 = strongest). Colours are divided by "
               + ("the largest |score| of any method" if shared_scale else "each method's own largest |score|")
               + " (each row says by how much): red supports the label, blue speaks against it, green marks "
                 "importance without a sign. "
               + ("Each row scrolls (long input). " if long_input else "")
               + "Exact scores: hover a word, or download the CSV in Summary and export. "
               + f"Words split by {comparison.explanations[0].word_layer}.")
    training_view = DataView(snapshot=snapshot_id, text=view.text, passage=passage, model=view.model, target=target)
    st.page_link("pages/training_data.py", label="Which training examples made the model say this? →",
                 query_params=training_view.to_query())
    st.markdown(f"**Top {k} words per method**")
    st.dataframe(pd.DataFrame(compare.top_words_table(comparison, k)), hide_index=True, width="stretch")
    st.markdown("**Cost**")
    left, right = st.columns([1, 2])
    cost = compare.cost_rows(report)
    left.altair_chart(charts.cost(cost), width="stretch")
    right.dataframe(pd.DataFrame(cost), hide_index=True, width="stretch")
    passes_now = report.cost_now.forward_passes
    shared = compare.shared_passes(report)
    backends = sorted({row["backend"] for row in cost})
    right.caption(f"Model passes to show this view now: {passes_now}"
                  + (" (everything came from the store)." if passes_now == 0 else ".")
                  + (f" When computed, the methods and measures asked for {shared['asked']:,} model inputs and ran "
                     f"{shared['ran']:,}: {shared['shared']:,} were the same masked input asked again (occlusion's "
                     "among LIME's, KernelSHAP's among LIME's, curve steps), run once." if shared["shared"] else "")
                  + f" Passes ran on {', '.join(backends)} (gradients and attention always on float32)."
                  + " Adaptive methods sample (LIME, SHAP, KernelSHAP) or add steps (Integrated Gradients) until "
                    "their top words, or completeness gap, are stable; 'no (cap)' means they stopped at the cap "
                    "unsettled.")
    if last is not None and last.status == "done":
        right.caption(f"Its last run (task {last.id}, attempt {last.attempts}): {last.forward_passes:,} model "
                      f"passes. " + took_sentence(last.seconds, last.params.get(ESTIMATE_PARAM)))

# -- agreement -------------------------------------------------------------------------------------------
with agreement_tab:
    st.subheader("Agreement", anchor="agreement")
    metric_column, level_column = st.columns(2)
    metric_name = metric_column.selectbox("Metric", list(agreement.METRICS),
                                          format_func=lambda m: agreement.METRICS[m].title, key="metric")
    level = level_column.selectbox("Level", list(LEVELS), key="level",
                                   help="The units the methods are compared on; scores are aggregated to them.")
    metric = agreement.METRICS[metric_name]
    prepared = runner.prepare(comparison.text)  # where each token sits: no model pass
    leveled = comparison_at_level(comparison, level, prepared.token_offsets, prepared.special_mask)
    st.altair_chart(charts.agreement_matrix(leveled, metric_name, k), width="content")
    st.caption(f"{metric.help} Range {metric.range[0]} to {metric.range[1]}, higher means more agreement"
               + (f"; k = {k}." if metric.uses_k else "; computed over all units.")
               + f" Units: {LEVELS[level]}."
               + " Methods are ordered by clustering so that those that agree sit together.")
    if level != DEFAULT_LEVEL:
        st.dataframe(pd.DataFrame(compare.top_words_table(leveled, k)), hide_index=True)

    spots = agreement.hot_spots(leveled.explanations, k)[:10]
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

NOT_MEASURED = "Not measured for this view yet: press **Run** (faithfulness and the attention checks need every method)."

# -- faithfulness ------------------------------------------------------------------------------------------
with faithfulness_tab:
    st.subheader("Faithfulness: which account does the model support?", anchor="faithfulness")
    if not report.measured:
        st.info(NOT_MEASURED)
    else:
        faith = report.faithfulness
        st.caption(f"Removed words are replaced by the mask token ({runner.mask_token}), one per word piece. "
                   "Comprehensiveness: drop in p(target) when the method's top words are removed (higher is better). "
                   "Sufficiency: drop when only its top words are kept (lower is better). "
                   "AOPC averages k = 1, 5, 10, 20, 50% of the words. 'random' is a random ranking (mean of 5).")
        st.dataframe(pd.DataFrame([{"method": f.method, "comprehensiveness AOPC ↑": f.aopc_comprehensiveness,
                                    "sufficiency AOPC ↓": f.aopc_sufficiency, "deletion AUC ↓": f.deletion_auc,
                                    "insertion AUC ↑": f.insertion_auc} for f in faith]).round(4),
                     hide_index=True, width="stretch")
        curve_name = st.segmented_control("Curve", ["deletion", "insertion"], key="curve", required=True,
                                          default="deletion")
        st.altair_chart(charts.faithfulness_curve(report, curve_name or "deletion"), width="stretch")
        st.caption(charts.FAITHFULNESS_CURVE_HELP[curve_name or "deletion"])

# -- attention debate ---------------------------------------------------------------------------------------
with attention_tab:
    st.subheader("Is attention explanation, here?", anchor="attention")
    if not report.measured:
        st.info(NOT_MEASURED)
    else:
        if report.correlations:
            st.dataframe(pd.DataFrame([{"attention": c.attention_method, "compared with": c.reference_method,
                                        "Spearman ρ": c.spearman} for c in report.correlations]).round(3),
                         hide_index=True)
        else:
            st.caption("Select an attention method and a gradient or occlusion method to correlate them.")
        st.dataframe(pd.DataFrame([{"layer": i.layer, "replacement": i.mode, "p(target) change": i.target_change,
                                    "total variation": i.total_variation, "label flipped": i.label_flipped}
                                   for i in report.interventions]).round(4), hide_index=True, width="stretch")
        st.caption("Each row replaces one layer's attention weights (uniform over tokens, or permuted) and reruns "
                   "the model. If the prediction barely moves, that layer's attention weights are not what decides "
                   "it. Head importance (below) does the same for single heads.")
    attention_whole.show(runner, comparison.text, comparison.target)

with edits_tab:
    flips = edits.show(db, runner, comparison.text, comparison.probabilities, list(comparison.methods), options, k)

with export_tab:
    # -- summary ------------------------------------------------------------------------------------------------
    st.subheader("Summary")
    if report.measured:
        for line in compare.summarise(report, k, edits=flips):
            st.markdown("- " + line)  # summarise escapes every word and label it quotes
    else:
        st.info(NOT_MEASURED)

    # -- sharing and export -------------------------------------------------------------------------------------
    st.subheader("Share and export")
    st.caption("The address bar always holds a working link to this view; results are stored, so it opens instantly.")
    with st.form("save-demo"):
        demo_name = st.text_input("Demo name", key="demo_name")
        demo_note = st.text_area("Note", key="demo_note", height=70)
        if st.form_submit_button("Save as demo"):
            try:
                saved = compare.save_demo(db, demo_name, demo_note, view)
                st.success(f"Saved demo '{md(saved.name)}'.")
            except ExplainError as exc:
                st.error(md(str(exc)))
    demos = compare.list_demos(db)
    if demos:
        st.markdown("**Saved demos**")
        for d in demos:
            st.page_link("pages/compare.py", label=f"{d.name} — {d.note[:80]}", query_params={"demo": str(d.id)})
    a, b, c = st.columns(3)
    a.download_button("Comparison (JSON)", compare.to_json(report, k, evidence), "rashomon-comparison.json",
                      "application/json")
    b.download_button("Scores per word (CSV)", compare.to_csv(comparison), "rashomon-scores.csv", "text/csv")
    c.download_button("Agreement metrics (CSV)", compare.metrics_csv(comparison, k), "rashomon-metrics.csv", "text/csv")
