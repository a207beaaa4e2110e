"""Cached resources shared by every page and session of one server process."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from core.analyses.backend_gate import backend_for
from core.engine.adapters import request_fields, split_spec, with_request
from core.engine.catalogue import DEFAULT_NAME, model_choices, resolve
from core.engine.fingerprints import known_fingerprint, remember, weights_signature
from core.engine.modelling import LoadedModel, ModelLoadError, describe_model, load_model
from core.engine.runner import ModelRunner
from core.engine.warmup import warm_up_in_background
from core.render import md
from core.storage.db import DatabaseUnavailable, get_engine
from core.storage.settings import load_settings
from core.work.tasks import runner_with_backend


@st.cache_resource(show_spinner=False)
def cached_engine(url: str):
    return get_engine(url)


def engine():
    """The database engine, or stop the page after one clear message (never a traceback)."""
    try:
        return cached_engine(load_settings().database_url)
    except DatabaseUnavailable as exc:
        st.error(md(str(exc)))
        st.stop()


@st.cache_resource(show_spinner="Reading the model's configuration…", max_entries=8)
def cached_description(spec: str, files: str) -> LoadedModel:
    """Configuration, tokenizer and layout of `spec`, no weights (`files`: the weight files as they are now,
    so that a rebuilt model is described again)."""
    return describe_model(spec)


@st.cache_resource(show_spinner="Loading the model…", max_entries=3)
def cached_model(spec: str) -> LoadedModel:
    """The weights, for RASHOMON_TASK_WORKERS=0 only (tasks then run in the page's own run)."""
    loaded = load_model(spec)
    remember(engine(), loaded)
    warm_up_in_background(loaded)  # explanations run here: pay the first SHAP call's compilation now
    return loaded


@st.cache_resource(show_spinner=False, max_entries=3)
def cached_runner(spec: str) -> ModelRunner:
    """One runner over the weights, for RASHOMON_TASK_WORKERS=0 (its prediction cache serves the next task)."""
    return runner_with_backend(cached_model(spec), engine())


def described(spec: str) -> LoadedModel:
    """What the pages know of a model: its description, with the fingerprint a worker recorded for its
    weights (the server never loads them)."""
    model = split_spec(spec)[1]["model"]  # an adapter's spec names its model's files inside
    local = Path(model).expanduser()
    files = weights_signature(model, local, None) if local.is_dir() else ""
    description = cached_description(spec, files)
    described = description.with_fingerprint(known_fingerprint(engine(), description.signature))
    # The backend the workers choose for these weights, so the page reads the results they store.
    return described.with_backend(backend_for(engine(), described, load_settings().backend)[0])


def runner_or_stop(name: str) -> ModelRunner:
    """A runner over the described model (it prepares text and reads the store; it has no weights) for one
    of the server's models chosen by name ("" = the configured model), or stop the page after saying why it
    cannot be used. A page never opens a path or a hub id it was given (core/engine/catalogue.py)."""
    try:
        spec = resolve(name)
        fields = request_fields(spec)
        if fields:  # a continuation model: what to explain comes with the request
            values = {field: st.text_input(label, key=f"request_{field}", help=help, max_chars=2000)
                      for field, label, help in fields}
            first, label, _ = fields[0]
            if not values[first].strip():
                st.info(f"{label}: give it above (the CLI's `rashomon explain --lm` generates the model's greedy "
                        "continuation when none is given).")
                st.stop()
            spec = with_request(spec, values)
        return ModelRunner(described(spec))
    except ModelLoadError as exc:
        if not following_default_build(name):
            st.error(md(str(exc)))
        st.stop()


def following_default_build(name: str) -> bool:
    """While the default model is missing and its build runs on a worker, the build's progress (the page works
    once it ends, and reruns then); False when that is not the case."""
    from core.work import builds, tasks
    from pages.widgets.ui import follow_task

    settings = load_settings()
    if (name.strip() not in ("", DEFAULT_NAME) or settings.resolved_model != str(settings.default_model_dir)
            or (settings.default_model_dir / "config.json").exists()):
        return False
    live = next((t for t in tasks.list_tasks(engine(), limit=20, status=tasks.ACTIVE, kind=builds.KIND)
                 if not t.params.get("extra_rows")), None)
    if live is None:
        return False
    st.info(f"The default model is being built on a worker ({builds.build_time(engine())}); this page works as soon "
            "as it is built. Snapshots works meanwhile.")
    follow_task(engine(), live.id, {"build": "Building the default model"}, key="page_build_stop",
                on_end=lambda _task: forget_models())
    return True


def runner_for_stored(spec: str) -> ModelRunner:
    """The same for a model the store names (the model a stored job ran): a path written by this server."""
    try:
        return ModelRunner(described(spec or load_settings().resolved_model))
    except ModelLoadError as exc:
        st.error(md(str(exc)))
        st.stop()


def model_picker(label: str, key: str, container=None) -> str:
    """The server's models by name ("" = the configured one); what a page offers instead of a path field."""
    try:
        names = [n for n in model_choices() if n != DEFAULT_NAME]
    except ModelLoadError as exc:  # a malformed RASHOMON_MODELS
        st.error(md(str(exc)))
        st.stop()
    if st.session_state.get(key) not in ("", *names):  # "default", or a name this server no longer has
        st.session_state[key] = ""
    return (container or st).selectbox(label, ["", *names], key=key,
                                       format_func=lambda name: name or "default (the configured model)")


def model_or_message() -> LoadedModel | None:
    """The configured model, described, or None after showing why it cannot be used (never a traceback)."""
    try:
        return described(load_settings().resolved_model)
    except ModelLoadError as exc:
        st.error(md(str(exc)))
        return None


def forget_models() -> None:
    """After a build: describe (and, without workers, load) the models again."""
    cached_description.clear()
    cached_runner.clear()
    cached_model.clear()


def start_job(job_id: int, model: str, estimated_seconds: float | None = None):
    """Run (or resume) a corpus run or evaluation as a `corpus_run` task on the workers (with what the page
    estimated, kept beside the task so that the page can show both afterwards and calibrate the next estimate)."""
    from core.engine.pass_time import ESTIMATE_PARAM

    return start_task("corpus_run", {"job": job_id, **({ESTIMATE_PARAM: estimated_seconds} if estimated_seconds else {})},
                      None, model=model)


def job_task(job_id: int, model: str):
    """The newest task that ran or runs this corpus job (None: never started as a task)."""
    from core.work import tasks

    return tasks.latest_for(engine(), "corpus_run", model, {"job": job_id})


def _local_workers(count: int, home: str):
    from core.work.tasks import server_workers

    return server_workers(count, Path(home))


def ensure_task_workers() -> None:
    """Start this server's local worker processes if they are not running (cheap when they are): app.py
    calls it on every page run, so a worker that died, or a restarted server, is back at the next click."""
    settings = load_settings()
    if settings.task_workers:
        _local_workers(settings.task_workers, str(settings.home)).ensure()


def task_worker_pids() -> list[int]:
    settings = load_settings()
    return _local_workers(settings.task_workers, str(settings.home)).pids() if settings.task_workers else []


def start_task(kind: str, params: dict, runner: ModelRunner | None, model: str | None = None):
    """Submit page work on `runner`'s model (None: a kind that needs no model, such as a build) for the
    workers, or run it here and now when RASHOMON_TASK_WORKERS=0; the task as it stands, or after a
    one-line error the page stops."""
    from core.work import tasks

    try:
        task = tasks.submit(engine(), kind, runner.loaded.path if runner is not None else (model or ""), params)
        if load_settings().task_workers == 0:
            here = None  # the pages' runners have no weights: the task runs on the loaded model
            if tasks.KINDS[kind].needs_model:
                here = cached_runner(runner.loaded.path if runner is not None
                                     else model or load_settings().resolved_model)
            return tasks.run_here(engine(), here, task.id)
    except tasks.TaskError as exc:
        st.error(md(str(exc)))
        st.stop()
    ensure_task_workers()
    return task


def task_button(label: str, kind: str, params: dict, runner: ModelRunner | None, *, titles: dict[str, str] | None,
                key: str, extra: dict | None = None, disabled: bool = False, primary: bool = True,
                stop_help: str = "", on_end=None):
    """A page's button for one task, and that task as it stands: while it runs, its progress and Stop (the
    caller draws nothing more); when it failed or was stopped, why. `extra`: parameters submitted that do
    not change what is computed (a recompute flag). `on_end(task)` runs when it ends (default: rerun the page,
    which then reads the stored result). Returns the newest task for `params` (None: never run)."""
    from core.work import tasks
    from pages.widgets.ui import follow_task

    db = engine()
    on_end = on_end or (lambda _task: st.rerun())
    last = tasks.latest_for(db, kind, runner.loaded.path if runner is not None else "", params)
    if st.button(label, key=f"{key}_run", type="primary" if primary else "secondary",
                 disabled=disabled or (last is not None and last.active),
                 help="Runs on a worker process: you can leave the page and come back to this address."):
        last = start_task(kind, {**params, **(extra or {})}, runner)
        if not last.active:  # ran here (no workers configured)
            on_end(last)
    following = st.session_state.setdefault("_following", {})
    if last is not None and not last.active and following.pop(key, None) == last.id:
        # This page followed the task, and it ended between two polls while the page ran again: whatever the
        # page read from the store before this point may be from before the end, so it runs once more.
        on_end(last)
    if last is not None and last.active:
        following[key] = last.id
        follow_task(db, last.id, titles, key=f"{key}_stop", stop_help=stop_help, on_end=on_end)
    elif last is not None and last.status in ("failed", "stopped"):
        (st.error if last.status == "failed" else st.warning)(f"The last run {last.status}: {md(last.error)}")
    return last
