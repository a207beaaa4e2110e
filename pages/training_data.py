from urllib.parse import urlencode

import pandas as pd
import streamlit as st

from core import charts
from core.analyses.compare import ViewState
from core.analyses.passages import PassageChoice, paragraphs, select_passage
from core.analyses.training_data.attribute import agreement, suspicious
from core.analyses.training_data.features import preparation_dir
from core.analyses.training_data.registry import data_method, data_methods
from core.analyses.training_data.retraining import LdsResult, RemovalResult
from core.analyses.training_data.store import retraining_checks, stored_attributions
from core.analyses.training_data.training_sets import (
    TrainingDataError,
    attach,
    read_examples,
    training_set_for,
)
from core.analyses.training_data.view import MAX_K, DataView, compare_link
from core.library.snapshots import get_snapshot, list_links
from core.methods.base import ExplainError
from core.render import md, prediction_bars, training_examples
from core.storage.notes import list_notes
from core.storage.provenance import watching
from core.work import builds, tasks
from pages.widgets.people import asked_by_seen, notes_on
from pages.widgets.resources import engine, forget_models, model_picker, runner_or_stop, task_button
from pages.widgets.ui import follow_task, sample_note, seed_widgets, stored_text_key, text_from_address

db = engine()
st.title("Training data")
st.caption("Which training examples made the model say this? Nearest neighbours, TracIn, representer points and "
           "influence functions side by side, and how far they agree.")

view = DataView.from_query(st.query_params.to_dict())
missing_text = text_from_address(db, view)
new_address = st.session_state.get("_data_view_loaded") != st.query_params.to_dict()
if new_address:
    for problem in view.problems:
        st.warning(md(problem))
seeds = {"data_source": "Snapshot" if view.snapshot is not None else "Free text", "data_text": view.text,
         "data_model": view.model, "data_target": view.target, "data_k": view.k, "data_methods": view.methods,
         "data_paragraph": view.passage.start + 1, "data_whole": view.passage.mode == "all"}
seed_widgets(seeds, new_address)  # re-asserted each run: the "Choose at least one method" with methods chosen

st.subheader("Input")
source_column, model_column = st.columns([3, 2], gap="medium")
with source_column:
    source = st.radio("Source", ["Snapshot", "Free text"], key="data_source", horizontal=True)
    text, snapshot_id, passage = "", None, PassageChoice()
    if source == "Snapshot":
        choices = {v.latest_good_snapshot_id: v.title or v.url for v in list_links(db) if v.latest_good_snapshot_id}
        if view.snapshot is not None and view.snapshot not in choices:
            snap = get_snapshot(db, view.snapshot)
            if snap is not None and not snap.error:
                choices[view.snapshot] = snap.title or f"snapshot {view.snapshot}"
            else:
                st.error(f"Snapshot {view.snapshot} does not exist or has no text.")
        if not choices:
            st.info("No snapshots yet: add links on the Snapshots page, or use free text.")
        else:
            keys = list(choices)
            snapshot_id = st.selectbox("Snapshot", keys, format_func=lambda i: f"#{i} {choices[i]}",
                                       index=keys.index(view.snapshot) if view.snapshot in keys else 0)
            snap = get_snapshot(db, snapshot_id)
            if st.checkbox("Whole text", key="data_whole"):
                passage = PassageChoice("all", 0, 0)
            else:
                count = max(1, len(paragraphs(snap.text)))
                st.session_state["data_paragraph"] = min(st.session_state["data_paragraph"], count)
                number = st.number_input(f"Paragraph (1-{count})", 1, count, key="data_paragraph")
                passage = PassageChoice("paragraph", number - 1, number - 1)
            text = select_passage(snap.text, passage)
    else:
        text = st.text_area("Text", key="data_text", height=140, placeholder="@united lost my bag again, thanks a lot")
        if missing_text and not text.strip():
            st.error(md(missing_text))
with model_column:
    model_spec = model_picker("Model", key="data_model")
    runner = runner_or_stop(model_spec)
    loaded = runner.loaded
    labels = list(loaded.labels)
    if st.session_state.get("data_target") not in ("", *labels):
        st.warning(f"'{md(st.session_state['data_target'])}' is not a label of this model; showing the predicted label.")
        st.session_state["data_target"] = ""
    target = st.selectbox("Label to explain", ["", *labels], key="data_target",
                          format_func=lambda label: label or "the predicted label",
                          help="Proponents pushed the model towards this label; opponents away from it.")
    methods = st.multiselect("Methods", list(data_methods()), key="data_methods",
                             format_func=lambda m: data_method(m).title)
    if not methods:
        st.warning("Choose at least one method.")
    k = st.slider("Examples listed per method (k)", 1, MAX_K, key="data_k")

current = DataView(snapshot=snapshot_id, text=text if snapshot_id is None else "", passage=passage,
                   model=model_spec.strip(), target=target, k=k, methods=methods)
if missing_text and snapshot_id is None and not text.strip():
    st.stop()  # said next to the text box; the address keeps the key it named
if snapshot_id is None and text.strip():
    current.text_key = stored_text_key(db, text)  # the address names the stored text, however long it is
if st.query_params.to_dict() != current.to_query():
    st.query_params.from_dict(current.to_query())
st.session_state["_data_view_loaded"] = current.to_query()

# -- the training set -----------------------------------------------------------------------------------
try:
    training = training_set_for(db, loaded)
except TrainingDataError as exc:
    st.warning(md(str(exc)))
    if "rebuild" in str(exc):  # on a worker: the page follows the build and reloads the model after it
        st.caption(f"A build takes {builds.build_time(db)}.")
        task_button("Rebuild the default model", builds.KIND, builds.build_params(), None,
                    titles={"build": "Rebuilding the default model"}, key="data_build",
                    on_end=lambda _task: (forget_models(), st.rerun()))
    with st.expander("Attach a training set to this model", expanded="attach" in str(exc)):
        upload = st.file_uploader("CSV or JSONL with text and label columns", type=["csv", "jsonl"], key="data_upload")
        if upload is not None and st.button("Attach"):
            try:
                rows = read_examples(upload.getvalue().decode("utf-8", errors="replace"), upload.name, labels)
                attach(db, loaded, rows, upload.name)
                st.rerun()
            except TrainingDataError as error:
                st.error(md(str(error)))
    st.stop()

prepared = (preparation_dir(loaded, training) / "states.npz").is_file()
st.caption(md(f"{training.name} ({training.source}): {len(training.examples):,} rows, "
              f"{len(training.checkpoints)} checkpoint(s)"
              + (f". Note: {training.checkpoint_note}." if training.checkpoint_note else ".")
              + ("" if prepared else " Not prepared yet: the first query prepares every checkpoint's representations "
                 f"(stored; {tasks.measured_time(db, builds.PREPARATION_KIND, 'preparation')}).")))
preparing = None if prepared else next(iter(tasks.list_tasks(db, limit=20, status=tasks.ACTIVE,
                                                             kind=builds.PREPARATION_KIND)), None)
if preparing is not None and preparing.model == loaded.path:  # queued by the build: follow it rather than wait
    st.caption("A worker is preparing it now, ahead of your first query:")
    follow_task(db, preparing.id, {"prepare": "Preparing the training data"}, key="data_prepare_stop")

if not text.strip():
    st.info("Choose a snapshot or type some text.")
    st.stop()
if not methods:
    st.stop()  # said under the method list

try:
    with watching() as seen:
        results, complete = stored_attributions(db, loaded, training, text, methods, target=target or None, k=k,
                                                only_stored=True)
except ExplainError as exc:
    st.error(md(str(exc)))
    st.stop()
if not complete:
    last = task_button("Find the training examples", "training_data",
                       {"text": text, "methods": methods, "target": target, "k": k}, runner,
                       titles={"training": "Ranking the training examples"}, key="data")
    if last is None or last.status == "done":
        st.info("Press the button to rank the training examples (stored: reopening this link costs no model work).")
    st.stop()

first = results[0]
if all(r.sample for r in results):
    sample_note("training-data result")
asked_by_seen(seen)
st.page_link("pages/compare.py", label="Open this input in Compare (the address of this page is its share link)",
             query_params=ViewState(text=text, model=current.model).to_query())
left, right = st.columns(2)
with left:
    st.markdown(f"**The model's probabilities** (target: {md(first.target)})")
    st.html(prediction_bars(first.probabilities))
nearest = next((r for r in results if r.method == "nearest"), None)
with right:
    if nearest is not None:
        votes = nearest.params["vote"]
        leaders = nearest.diagnostics["majority_labels"]
        verdict = ("most are labelled with the prediction" if nearest.diagnostics["neighbours_agree"] else
                   f"split between {md(' and '.join(leaders))}" if len(leaders) > 1 else
                   f"most are labelled {md(leaders[0])}, not the prediction")
        st.markdown(f"**Labels of the {votes} nearest training examples** ({verdict})")
        st.html(prediction_bars(nearest.diagnostics["label_distribution"]))

st.subheader("Proponents and opponents")
columns = st.columns(len(results))
for column, result in zip(columns, results, strict=True):
    with column:
        entry = data_method(result.method)
        st.markdown(f"**{entry.title}**")
        st.caption(md(f"{result.seconds:.2f} s, {result.forward_passes} model passes. {entry.summary}"))
        if "note" in result.diagnostics:
            st.caption(md(result.diagnostics["note"]))
        scale = max([abs(e.score) for e in result.proponents + result.opponents] or [1.0])
        st.markdown(f"Proponents (pushed towards {md(result.target)})")
        st.html(training_examples(result.proponents, [compare_link(e.text, current.model) for e in result.proponents],
                                  scale))
        st.markdown(f"Opponents (pushed away from {md(result.target)})")
        st.html(training_examples(result.opponents, [compare_link(e.text, current.model) for e in result.opponents],
                                  scale))

# A note on one training example (a mislabelled row, a spurious proponent) names the model and the example's id.
shown = {e.id: e for r in results for e in (*r.proponents, *r.opponents)}
named = current.model or runner.loaded.name  # the configured model has no name in links; its own name, then
about = {f"{e.id} · {e.gold} · {e.text[:70]}": f"training_example:{named}:{e.id}" for e in shown.values()}
on_examples = list_notes(db, refs=tuple(about.values())) if about else []
if about and st.toggle(f"Notes on these training examples ({len(on_examples)})", key="data_notes"):
    notes_on(db, next(iter(about.values())), model=named, page="training data", key="data_notes",
             address="Training_data?" + urlencode(st.query_params.to_dict()), about=about)

if len(results) > 1:
    st.subheader("Do the methods agree?")
    matrix = agreement(results, k)
    left, right = st.columns(2)
    left.altair_chart(charts.data_agreement(matrix, "overlap"), width="content")
    right.altair_chart(charts.data_agreement(matrix, "rank"), width="content")
    st.caption(f"Left: share of the top-{k} proponents two methods have in common. Right: Spearman rank correlation "
               "of their scores over the union of both top-k lists (empty when one is constant there).")

st.subheader("Which account does retraining support?")
checks = retraining_checks(db, loaded, training)
datamodeling = next((c for c in checks if isinstance(c, LdsResult) and text in c.inputs), None) or next(
    (c for c in checks if isinstance(c, LdsResult)), None)
if datamodeling is not None:
    st.altair_chart(charts.datamodeling(datamodeling), width="content")
    where = "this input" if datamodeling.inputs == [text] else f"{len(datamodeling.inputs)} inputs"
    st.caption(md(f"Linear datamodeling score (Park et al. 2023) on {where}: Spearman correlation, over "
                  f"{datamodeling.subsets} surrogates each retrained on a random {datamodeling.fraction:.0%} of the "
                  f"training set, between the sum of a method's scores over that subset and the retrained output. "
                  f"Retrained: {datamodeling.retrained}. 1 = the method predicts retraining perfectly, 0 = no better "
                  f"than chance. {datamodeling.seconds:.0f} s."))
task_button("Run the datamodeling check on this input (20 retrained surrogates)", "datamodeling",
            {"text": text, "methods": methods, "target": target, "subsets": 20}, runner,
            titles={"datamodeling": "Retraining the surrogates"}, key="data_datamodeling", primary=False)
removal = next((c for c in checks if isinstance(c, RemovalResult) and c.text == text), None)
if removal is not None:
    st.markdown(md(f"**Removal and whole-model retraining** (target {removal.target}: probability "
                   f"{removal.probability:.3f}; retrained on every row {removal.full_retrain_probability:.3f})"))
    st.dataframe(pd.DataFrame([{"removed": f"{r['fraction']:.0%} ({r['removed']} rows)", "method": r["method"],
                                "change of the target probability": r["change"],
                                "range": "" if r["retrainings"] < 2 else f"{r['low']:+.3f} .. {r['high']:+.3f}"}
                               for r in removal.summary()]), hide_index=True, width="stretch")
    st.caption("A method whose top proponents matter lowers the target probability more than removing as many "
               "random rows.")
else:
    st.caption("The removal check retrains the whole model once per method and share removed (minutes each): run "
               "`rashomon data check removal --text \"...\"`; its result appears here.")

with st.expander("Suspicious training examples (possibly mislabelled)"):
    capable = [m.name for m in data_methods().values() if m.self_influence is not None]
    left, right = st.columns(2)
    method = left.selectbox("Ranked by self-influence of", capable, format_func=lambda m: data_method(m).title,
                            key="data_suspicious_method")
    count = right.slider("Examples", 5, 200, 25, key="data_suspicious_k")
    listed = suspicious(loaded, training, method, count)
    rows = [{"self-influence": e.score, "gold": e.gold, "model says": e.predicted, "text": e.text, "id": e.id}
            | ({"flipped on purpose": e.id in training.flipped} if listed.flipped_known else {}) for e in listed.examples]
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    if listed.flipped_known:
        st.caption("Precision at k of finding the deliberately flipped rows: "
                   + ", ".join(f"@{cut} {value:.2f}" for cut, value in listed.precision.items())
                   + f"; a random ranking gets {listed.random_precision:.2f}.")
