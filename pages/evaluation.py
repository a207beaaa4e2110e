import pandas as pd
import streamlit as st

from core import charts
from core.analyses import corpus
from core.analyses.compare import ViewState
from core.analyses.error_groups import evaluated_inputs, group_csv, slice_report, stored_groups
from core.analyses.evaluation import (
    MAX_ROWS,
    EvaluationError,
    create_evaluation,
    evaluation,
    heldout_inputs,
    inputs_from_file,
    labelled_snapshot_inputs,
)
from core.analyses.training_data.view import DataView
from core.engine.catalogue import name_for
from core.engine.default_model import LABELS
from core.methods.registry import fast_methods
from core.render import md
from core.storage.notes import list_notes
from core.storage.provenance import watching
from core.work import builds
from core.work.tasks import TaskError
from pages.widgets.people import asked_by_seen, notes_on
from pages.widgets.resources import (
    engine,
    model_picker,
    runner_for_stored,
    runner_or_stop,
    start_job,
    start_task,
    task_button,
)
from pages.widgets.ui import job_picker, sample_note

db = engine()

st.title("Evaluation")
st.caption("Where is the model wrong? Evaluate it on labelled texts: per-class scores, the confusion matrix, "
           "calibration, and the errors, most confidently wrong first, each opening in Compare.")

model_spec = model_picker("Model", key="evaluation_model")
runner = runner_or_stop(model_spec)
labels = list(runner.loaded.labels)

with st.expander("New evaluation", expanded=not any(j.is_evaluation for j in corpus.list_jobs(db))):
    source = st.radio("Labelled texts", ["The default model's held-out split", "The Chinese model's held-out reviews",
                                         "Upload CSV or JSONL", "Snapshots tagged label:…"], horizontal=True,
                      key="evaluation_source")
    inputs, source_label = [], ""
    try:
        if source.startswith("The default"):
            limit = int(st.number_input("Rows (of 2,000)", 1, 2000, 2000, key="evaluation_limit"))
            inputs, source_label = heldout_inputs(limit), "the default model's held-out split"
        elif source.startswith("The Chinese"):
            limit = int(st.number_input("Reviews (of 2,000)", 1, 2000, 2000, key="evaluation_limit_zh"))
            inputs, source_label = heldout_inputs(limit, "zh"), "the Chinese model's held-out reviews"
        elif source.startswith("Snapshots"):
            inputs = labelled_snapshot_inputs(db, labels, lambda t: runner.prepare(t).truncated_words == 0)
            source_label = "snapshots tagged label:..."
        else:
            upload = st.file_uploader(f"File with text and label columns (at most {MAX_ROWS:,} rows)",
                                      type=["csv", "jsonl"], key="evaluation_file")
            left, right = st.columns(2)
            text_column = left.text_input("Text column", "text", key="evaluation_text_column")
            label_column = right.text_input("Label column", "label", key="evaluation_label_column")
            if upload is not None:
                inputs = inputs_from_file(upload.getvalue().decode("utf-8", errors="replace"), upload.name,
                                          text_column, label_column)
                source_label = f"file {upload.name}"
    except EvaluationError as exc:
        st.error(md(str(exc)))
    st.caption(f"{len(inputs)} labelled texts; one model pass each.")
    if st.button("Start evaluation", type="primary", disabled=not inputs):
        try:
            job_id = create_evaluation(db, "", inputs, labels, model=runner.loaded.path, source=source_label)
            start_job(job_id, runner.loaded.path)
            st.query_params["job"] = str(job_id)
            st.rerun()
        except EvaluationError as exc:
            st.error(md(str(exc)))

evaluations = [j for j in corpus.list_jobs(db) if j.is_evaluation]
if not evaluations:
    st.info("No evaluations yet.")
    st.stop()
job_id = job_picker("pages/evaluation.py", evaluations, "Evaluation", "Evaluation", key="evaluation_pick")


@st.fragment(run_every=2)
def progress() -> None:
    job = corpus.get_job(db, job_id)
    st.progress(job.fraction, text=f"{job.finished} of {job.total} texts · status: {job.shown_status}")
    if job.error:
        st.error(f"The evaluation failed: {md(job.error)}")
    resumable = job.status in ("stopped", "failed") or corpus.is_stale(job)
    if resumable and st.button("Resume", key=f"evaluation_resume_{job_id}"):
        start_job(job_id, job.model)
        st.rerun()
    shown, previous = (job_id, job.finished, job.status), st.session_state.get("_evaluation_shown")
    st.session_state["_evaluation_shown"] = shown
    if previous is not None and previous[0] == job_id and previous != shown:
        st.rerun()


progress()
job = corpus.get_job(db, job_id)
link_model = name_for(job.model)  # the evaluation's model as links name it (once, not per link)
if job.sample:
    sample_note("evaluation and its error groups")
try:
    result = evaluation(db, job_id, labels)
except EvaluationError as exc:
    st.info(md(str(exc)))
    st.stop()

a, b, c, d = st.columns(4)
a.metric("Texts", result.inputs)
b.metric("Accuracy", f"{result.accuracy:.3f}")
c.metric("Macro-F1", f"{result.macro_f1:.3f}")
d.metric("Expected calibration error", f"{result.ece:.3f}")
st.dataframe(pd.DataFrame([c.__dict__ for c in result.per_class]).round(3), hide_index=True, width="stretch")

# The scores above are the verdict; the errors, their groups and slices are tabs below them.
errors_tab, groups_tab, slice_tab = st.tabs(["Errors", "Error groups", "Slice"])
with errors_tab:
    left, right = st.columns(2)
    with left:
        st.markdown("**Confusion matrix** (click a cell to list its errors)")
        event = st.altair_chart(charts.confusion_matrix(result), on_select="rerun", key="evaluation_confusion")
    with right:
        st.markdown("**Reliability**: accuracy per confidence bin (dashed: perfect calibration; numbers: texts)")
        st.altair_chart(charts.reliability(result), width="stretch")

    selected = (event or {}).get("selection", {}).get("cell") or []
    cells = ["all errors"] + [f"{g} -> {p}" for g in labels for p in labels if g != p]
    chosen = f"{selected[0]['gold']} -> {selected[0]['predicted']}" if selected else None
    cell = st.selectbox("Errors shown", cells, index=cells.index(chosen) if chosen in cells else 0, key="evaluation_cell")
    errors = result.errors if cell == "all errors" else result.errors_in(*cell.split(" -> "))
    st.markdown(f"**{len(errors)} errors**, most confidently wrong first")
    st.dataframe(pd.DataFrame([{"confidence": e.confidence, "gold": e.gold, "predicted": e.predicted, "text": e.text,
                                "origin": e.origin} for e in errors]).round(3), hide_index=True, width="stretch")
    for error in errors[:10]:
        view = ViewState(text=error.text, model=link_model, methods=fast_methods())
        st.page_link("pages/compare.py", label=f"{error.confidence:.2f} · {md(error.gold)} → {md(error.predicted)} · "
                                               f"{md(error.text[:90])}", query_params=view.to_query())

with groups_tab:
    st.subheader("Do the errors share a cause?")
    st.caption("Errors grouped by how the model represents them (HDBSCAN over the input of its final layer); each "
               "group's words are those the fast methods rank high in its members far more often than in correctly "
               "classified inputs (lift), with the training examples nearest to its members.")
    job_model = runner_for_stored(job.model)  # the model this evaluation ran
    min_size = int(st.number_input("Smallest group (0: automatic, 5 or one in 40 errors)", 0, 500, 0,
                                   key="evaluation_min_size")) or None
    with watching() as seen:
        groups = stored_groups(db, job_model, job_id, min_size=min_size, only_stored=True)
    if groups is None:  # grouping runs on a worker; the page follows it and then reads the stored groups
        task_button("Group the errors", "error_groups", {"job": job_id, "min_size": min_size or 0}, job_model,
                    titles={"groups": "Grouping the errors"}, key="evaluation_groups", disabled=job.status != "done")
        with watching() as seen:
            groups = stored_groups(db, job_model, job_id, min_size=min_size, only_stored=True)
    if groups is not None:
        asked_by_seen(seen)
        st.caption(md(f"{groups.errors} errors: {len(groups.groups)} groups, {len(groups.scattered)} in no group. "
                      f"Words from {', '.join(groups.methods)} (top {groups.k}) against {groups.reference_inputs} correct "
                      f"inputs; {groups.seconds:.0f} s, {groups.forward_passes} model passes. {groups.note}"))
        for group in groups.groups:
            with st.expander(f"Group {group.id}: {group.size} errors, mostly {group.confusion} ({group.confusion_share:.0%})",
                             expanded=group.id == 1):
                if group.words:
                    st.dataframe(pd.DataFrame([{"word": w.word, "lift": w.lift, "members": w.members,
                                                "share in group": w.group_share, "share when correct": w.reference_share}
                                               for w in group.words]).round(3), hide_index=True, width="stretch")
                else:
                    st.caption("No word is ranked high in at least two members.")
                if group.neighbours:
                    st.markdown("**Nearest training examples** (labels: " + md(", ".join(
                        f"{label} {share:.0%}" for label, share in group.neighbour_labels.items())) + ")")
                    st.dataframe(pd.DataFrame([{"gold": n.gold, "members near it": n.members, "text": n.text}
                                               for n in group.neighbours]), hide_index=True, width="stretch")
                st.dataframe(pd.DataFrame([{"confidence": m.confidence, "gold": m.gold, "predicted": m.predicted,
                                            "text": m.text} for m in group.members]).round(3),
                             hide_index=True, width="stretch")
                st.download_button("Export this group as CSV", group_csv(groups, group.id),
                                   file_name=f"evaluation-{job_id}-group-{group.id}.csv", mime="text/csv",
                                   key=f"evaluation_export_{group.id}")
                if list(job_model.loaded.labels) == list(LABELS) and st.button(
                        "Rebuild the default model with this group as extra training rows (their gold labels)",
                        key=f"evaluation_rebuild_{group.id}"):
                    try:
                        params = builds.build_params(group_csv(groups, group.id), f"evaluation {job_id}, group {group.id}")
                    except TaskError as exc:
                        st.error(md(str(exc)))  # beside the button that caused it
                    else:
                        started = start_task(builds.KIND, params, None)  # on a worker (here, with no workers)
                        st.success(f"Build {started.id} {'queued for a worker' if started.active else started.status} "
                                   f"({builds.build_time(db)}); the old model stays as it is.")
                        st.page_link("pages/models.py", label="Follow the build on Model vs model")
                for member in group.members[:3]:
                    st.page_link("pages/training_data.py", label=f"Training data for: {md(member.text[:80])}",
                                 query_params=DataView(text=member.text, model=link_model).to_query())
                group_ref = f"error_group:{job_id}:{group.id}"
                on_group = list_notes(db, ref=group_ref)
                if st.toggle(f"Notes on this group ({len(on_group)})", key=f"evaluation_notes_{group.id}"):
                    notes_on(db, group_ref, model=link_model, page="evaluation", key=f"group_{group.id}",
                             address=f"Evaluation?job={job_id}")

with slice_tab:
    st.subheader("Slice")
    left, right = st.columns([3, 1])
    pattern = left.text_input("Inputs containing (a word, e.g. not)", key="evaluation_slice")
    regex = right.checkbox("Regular expression", key="evaluation_slice_regex")
    if pattern.strip():
        try:
            report = slice_report(evaluated_inputs(db, job_id), pattern, regex=regex)
            st.dataframe(pd.DataFrame([{"inputs": name, "count": side.inputs, "errors": side.errors, "accuracy": side.accuracy,
                                        "95% interval": f"{side.low:.3f}-{side.high:.3f}"}
                                       for name, side in (("matching", report.matching), ("the rest", report.rest))]).round(3),
                         hide_index=True, width="stretch")
            st.dataframe(pd.DataFrame([{"confidence": e.confidence, "gold": e.gold, "predicted": e.predicted, "text": e.text}
                                       for e in report.errors]).round(3), hide_index=True, width="stretch")
        except EvaluationError as exc:
            st.error(md(str(exc)))
