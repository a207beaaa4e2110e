from urllib.parse import parse_qsl

import streamlit as st

from core.analyses.store import stored_count
from core.engine.pass_time import stored_shortcut
from core.library.snapshots import counts
from core.render import md
from core.storage.db import masked_url
from core.storage.notes import list_notes
from core.storage.settings import load_settings
from core.work import builds, samples, tasks
from pages.widgets.people import show_note
from pages.widgets.resources import engine, forget_models, model_or_message, task_button, task_worker_pids
from pages.widgets.ui import flash, follow_task

settings = load_settings()
SHORTCUT = {True: "on", False: "off (full passes)", None: "checked by a worker on its first pass"}
st.title("Rashomon")
st.caption("Same input, several explanation methods, conflicting accounts: see where they disagree, "
           "measure it, and decide which account to believe.")

default_missing = settings.resolved_model == str(settings.default_model_dir) and not (
    settings.default_model_dir / "config.json").exists()
st.subheader("Start here")
workspace = samples.workspace(engine())
things = workspace.things_to_try()
if things:
    st.markdown("Three things to try, each a real result the workers computed on the default model after its build "
                "(labelled *Sample* wherever it appears):")
    for column, thing in zip(st.columns(len(things)), things, strict=True):
        with column.container(border=True):
            page, _, query = thing.address.lstrip("/").partition("?")
            column_page = {"Compare": "pages/compare.py", "Evaluation": "pages/evaluation.py",
                           "Training_data": "pages/training_data.py", "Corpus": "pages/corpus.py"}[page]
            st.page_link(column_page, label=thing.title, icon="👉", query_params=dict(parse_qsl(query)))
            st.caption(thing.why)
if default_missing:
    st.caption("Once the default model is built (below), the workers compute a sample workspace on it — Compare "
               "views, a corpus run, an evaluation with error groups, an edit search and training examples — and "
               "three things to try appear here.")
if workspace.live is not None:
    st.caption("The workers are computing the sample workspace (after any work you ask for): "
               f"{len(workspace.demos)} Compare views so far.")
    follow_task(engine(), workspace.live.id, {"samples": "Sample workspace"}, key="home_samples_stop",
                stop_help="Stops computing samples; what is stored stays until you remove it.")
if not workspace.empty:
    st.caption(f"Samples: {len(workspace.demos)} Compare views (also under Compare's saved demos), "
               + ", ".join(what for what, job in (("a corpus run", workspace.corpus_job),
                                                  ("an evaluation with error groups", workspace.evaluation_job))
                           if job is not None) + ".")
    if st.button("Remove the samples", help="Deletes every sample; your own links, snapshots and results stay."):
        removed = samples.remove_samples(engine())
        flash("success", f"Removed the samples ({sum(removed.values())} stored rows).")
        st.rerun()
elif workspace.live is None and not default_missing and st.button(
        "Compute the sample workspace", help="A corpus run, Compare views, an evaluation with error groups, an edit "
        "search and a training-data result on the configured model, computed by the workers."):
    samples.submit_samples(engine(), settings.resolved_model, inputs=settings.samples or samples.CORPUS_INPUTS,
                           heldout=settings.sample_heldout)
    st.rerun()
st.markdown("Or start on **Snapshots** to keep the pages you want to explain (a sample page is offered there for "
            "offline use), then open **Compare**.")

left, right = st.columns(2)
with left:
    st.subheader("Model")
    if default_missing:
        st.warning("The offline default model has not been built yet. Building it fine-tunes MiniLM on "
                   f"~8,000 labelled tweets on a worker ({builds.build_time(engine())}): you can leave this page.")
        build = task_button("Build the default model", builds.KIND, builds.build_params(), None,
                            titles={"build": "Building the default model"}, key="home_build",
                            on_end=lambda _task: (forget_models(), st.rerun()))
        if build is not None and build.status == "done":
            result = build.result
            st.success(f"Built {md(result.get('output_dir', ''))}: held-out macro-F1 {result.get('macro_f1', 0):.3f}.")
    else:
        model = model_or_message()
        if model is not None:
            st.markdown(f"**{md(model.name)}** — {model.source}")
            st.text(f"Path: {model.path}\nLabels: {', '.join(model.labels)}\nDevice: {model.device}\n"
                    f"Max tokens: {model.max_length}\nWeights fingerprint: {model.fingerprint}\n"
                    f"First-token shortcut: {SHORTCUT[stored_shortcut(engine(), model.fingerprint)]}")
            if model.card:
                with st.expander("Model card"):
                    st.text(model.card)  # as text: a card from the hub must not load images or links
with right:
    st.subheader("Data")
    st.text(f"Data directory: {settings.home}\nDatabase: {masked_url(settings.database_url)}")
    numbers = counts(engine())
    a, b, c, d = st.columns(4)
    a.metric("Links", numbers["links"])
    b.metric("Snapshots", numbers["snapshots"])
    c.metric("Tags", numbers["tags"])
    d.metric("Stored explanations", stored_count(engine()))
    st.subheader("Work")
    active = tasks.list_tasks(engine(), limit=500, status=tasks.ACTIVE)
    running = sum(t.status == "running" for t in active)
    pids = task_worker_pids()
    st.text(f"Tasks (comparisons, checks, searches): {running} running, {len(active) - running} queued\n"
            + (f"This server's workers: {len(pids)} (process {', '.join(map(str, pids))})" if pids else
               "This server's workers: none (RASHOMON_TASK_WORKERS=0: tasks run in the page)")
            + "\nOther machines: run `rashomon worker` against the same database")
    if active:
        st.caption("Running for: " + "; ".join(f"{md(t.kind)} #{t.id} ({t.status}) for {md(t.requested_by)}"
                                               for t in active[:8]))

st.subheader("Latest findings")
latest = list_notes(engine(), limit=5)
if not latest:
    st.caption("No notes yet: leave one on a comparison (Compare, under the verdict), or on the Findings page.")
for note in latest:
    show_note(engine(), note, key="home")
st.page_link("pages/findings.py", label="All findings →", icon="📌")

