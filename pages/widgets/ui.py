"""Widgets and adapters the pages share: option widgets from a method's declared options, progress, flashes."""

from __future__ import annotations

from typing import Any

import streamlit as st

from core.methods.base import Method

TASK_POLL_SECONDS = 2.0  # how often a page following a task reads its progress


def address(page: str):
    """This page's query parameters as declared in core/addresses.py, parsed once; each bad value is shown as
    one warning naming it (its default is used)."""
    from core.addresses import PAGE_PARAMS
    from core.params import read_query
    from core.render import md

    parsed = read_query(PAGE_PARAMS[page], st.query_params.to_dict())
    for problem in parsed.problems:
        st.warning(md(problem))
    return parsed


def _address_follows(key: str) -> None:
    if st.session_state.get(key) is not None:
        st.query_params["job"] = str(st.session_state[key])


def job_picker(page: str, jobs: list, label: str, what: str, *, key: str) -> int:
    """The job the address names (`job`), or the newest when it names none; an id that does not exist is said
    so and nothing is chosen (never another job in its place). Stops the page until one is chosen."""
    labels = {j.id: f"#{j.id} {j.name} ({j.shown_status}, {j.finished}/{j.total})" for j in jobs}
    requested = address(page)
    job_id = requested["job"] if "job" in requested.given else jobs[0].id
    if job_id is not None and job_id not in labels:
        st.error(f"{what} {job_id} does not exist; choose one below.")
        job_id = None
    # The address decides what the box shows: a keyed box would otherwise keep this session's earlier choice
    # when the address names another job (a run just started here sets `job`). A choice in the box writes the
    # address first (on_change), so the two never disagree.
    st.session_state[key] = job_id
    job_id = st.selectbox(label, list(labels), index=None, format_func=labels.get, key=key,
                          placeholder=f"Choose: {what.lower()}", on_change=_address_follows, args=(key,))
    if job_id is None:
        st.stop()
    st.query_params["job"] = str(job_id)
    from pages.widgets.people import asked_by

    chosen = next(j for j in jobs if j.id == job_id)
    asked_by(chosen.requested_by, chosen.created_at, verb="Started")
    return job_id


def sample_note(what: str) -> None:
    """The label every sample result carries on its page."""
    st.info(f"**Sample**: this {what} was computed by a worker on the default model right after its build, to "
            "have something real to show. Home removes every sample in one click; your own results stay.", icon="🧪")


def option_widgets(method: Method, key_prefix: str = "opt") -> dict[str, Any]:
    """One widget per declared option (keys `{prefix}_{method}_{option}`); returns the options that
    differ from their defaults, which is what a share link carries."""
    values = {}
    for option in method.options:
        key = f"{key_prefix}_{method.name}_{option.name}"
        # Widgets below read and write this key. It is re-asserted every run: a full rerun asked for from inside
        # a fragment (a task follower's) can arrive without these widgets' states, and a checkbox would fall
        # back to False (streamlit/streamlit#11266), turning LIME's `adaptive` off behind the user's back.
        st.session_state[key] = st.session_state.get(key, option.default)
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
    return method.changed(values)


def streamlit_progress(bar):
    """Adapt a `st.progress` element to core's `progress(fraction, message)` callbacks."""
    def report(fraction: float, message: str) -> None:
        bar.progress(max(0.0, min(1.0, fraction)), text=message)
    return report


def flash(kind: str, message: str, where: str = "page") -> None:
    """Keep a message for the next run (after an `st.rerun()` that refreshes the whole page); `where` names the
    place it is shown (`show_flashes(where)` next to the control that caused it; "page": at the top)."""
    st.session_state.setdefault("_flashes", []).append((kind, message, where))


def show_flashes(where: str = "page") -> None:
    kept = []
    for kind, message, place in st.session_state.pop("_flashes", []):
        if place == where:
            getattr(st, kind)(message)
        else:
            kept.append((kind, message, place))
    if kept:
        st.session_state["_flashes"] = kept


def task_progress(task, titles: dict[str, str]) -> None:
    """A task's state and one bar for its parts (`titles`: part -> what to call it), from the database. One
    bar and one line, not one per part: a page following a task redraws them every poll."""
    if task.status == "queued":
        st.info("Waiting for a free worker…")
    elif task.stop_requested:
        st.warning("Stopping after the step in progress…")
    else:
        st.caption(f"Running on a worker ({task.owner.split(':')[0]}), attempt {task.attempts}. You can leave this "
                   "page: the work goes on, and reopening this address shows it.")
    fractions = {part: task.progress.get(part, (0.0, ""))[0] for part in titles}
    done = sum(f >= 1.0 for f in fractions.values())
    current = next((part for part in titles if part in task.progress and fractions[part] < 1.0), None)
    text = f"{done} of {len(titles)} steps finished"
    if current is not None:
        text += f"; now {titles[current]}: {task.progress[current][1]}"
    st.progress(sum(fractions.values()) / max(1, len(titles)), text=text)


def follow_task(db, task_id: int, titles: dict[str, str] | None, *, key: str, stop_help: str = "",
                on_end=None) -> None:
    """Follow a task from the database: one bar and a Stop button, polled every TASK_POLL_SECONDS; when it
    ends, `on_end(task)` (if given) and a rerun of the whole page, which then reads the stored result.
    `titles`: part -> what to call it (None: the parts the task has reported)."""
    from core.work import tasks

    @st.fragment(run_every=TASK_POLL_SECONDS)
    def follow() -> None:
        task = tasks.get_task(db, task_id)
        if task is None or not task.active:
            st.session_state.get("_following", {}).pop(key.removesuffix("_stop"), None)  # seen to its end here
            if on_end is not None:
                on_end(task)
            st.rerun()
        task_progress(task, titles or {part: part.capitalize() for part in task.progress} or {"": "Starting"})
        st.button("Stop", key=key, on_click=tasks.request_stop, args=(db, task_id), disabled=task.stop_requested,
                  help=stop_help or None)

    follow()


def text_from_address(db, view) -> str:
    """Fill a view's free text from the key its address names (`t=`); returns what to say when no text is stored
    under that key ("" when there is nothing to say)."""
    from core.storage.texts import recall_text

    if not view.text_key or view.text:
        return ""
    stored = recall_text(db, view.text_key)
    if stored is None:
        return (f"This link names a stored text (t={view.text_key}) that this server does not have: it was saved "
                "on another server, or the database was reset. Paste the text to explain it.")
    view.text = stored
    return ""


def stored_text_key(db, text: str) -> str:
    """The key of `text`, stored once per text and session (the address then names it instead of carrying it)."""
    from core.storage.texts import remember_text

    known = st.session_state.setdefault("_stored_text_keys", {})
    if text not in known:
        known.clear()  # one text at a time: a page run names only its own
        known[text] = remember_text(db, text)
    return known[text]


def seed_widgets(seeds: dict[str, Any], new_address: bool) -> None:
    """Give each widget key its value from the address when the address is new (or the key is missing), and
    otherwise re-assert the widget's own value: a full rerun asked for from inside a fragment (a task follower's,
    when a task ends) can arrive without the widgets' states, and they would fall back to their defaults (no
    methods chosen, k = 1) and write those into the address (streamlit/streamlit#11266)."""
    for key, value in seeds.items():
        if new_address or key not in st.session_state:
            st.session_state[key] = value
        else:
            st.session_state[key] = st.session_state[key]


def compatible_only(methods: list[str], loaded, container=None) -> list[str]:
    """The chosen methods that can explain `loaded`; each other one is named with the reason (never dropped
    silently)."""
    from core.methods.registry import METHODS, split_compatible
    from core.render import md

    kept, incompatible = split_compatible(methods, loaded)
    for name, reason in incompatible.items():
        (container or st).caption(f"Left out: {METHODS[name].title} cannot explain this model ({md(reason)}).")
    return kept
