import streamlit as st

from core.analyses.store import stored_count
from core.engine.pass_time import stored_shortcut
from core.library.snapshots import counts
from core.render import md
from core.storage.db import masked_url
from core.storage.settings import load_settings
from core.work import builds, tasks
from pages.widgets.resources import engine, forget_models, model_or_message, task_button, task_worker_pids

settings = load_settings()
SHORTCUT = {True: "on", False: "off (full passes)", None: "checked by a worker on its first pass"}
st.title("Rashomon")
st.caption("Same input, several explanation methods, conflicting accounts: see where they disagree, "
           "measure it, and decide which account to believe.")

left, right = st.columns(2)
with left:
    st.subheader("Model")
    default_missing = settings.resolved_model == str(settings.default_model_dir) and not (
        settings.default_model_dir / "config.json").exists()
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

st.markdown("Start on **Snapshots** to keep the pages you want to explain, then open **Compare**.")
