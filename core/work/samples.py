"""The sample workspace: after the default model's build, the workers compute a few real results so that every
page has something to show a newcomer, and Home offers "three things to try".

Nothing here is written by hand: each sample is the product's own output on the freshly built model — a corpus
run over held-out tweets, Compare views for the tweets on which the methods disagree most (and one on which they
agree), an evaluation of the held-out split with its error groups, an edit search and a training-data result.
Every row stored while they are computed is marked `sample` (`core.storage.schema.making_samples`), so one call
(`remove_samples`, `rashomon samples remove`, Home's button) deletes them all, and `--json` says `"sample": true`.

The work is a chain of `samples` tasks, one step each, each queueing the next when it ends. The kind is
background work, so a person's own task is claimed before the next step; a server with two or more workers keeps
one of them for people (`tasks.LocalWorkers`), so a newcomer's first comparison never waits behind the samples.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import Engine, delete, update
from sqlmodel import col, select

from core.engine.runner import ModelRunner
from core.storage.db import session_scope
from core.storage.schema import (
    CheckRecord,
    ComparisonReportRecord,
    CorpusItem,
    CorpusJob,
    Demo,
    ExplanationRecord,
    TaskRecord,
    making_samples,
)
from core.work import tasks

KIND = "samples"
STEPS = ("corpus", "compare", "evaluation", "error_groups", "edits", "training_data")
CORPUS_INPUTS = 50  # held-out tweets in the sample corpus run
MIN_WORDS = 8  # a tweet shorter than this gives the methods little to disagree about
DISAGREEING_VIEWS = 3  # Compare views where the methods disagree most; then one where they agree most
PREFIX = "Sample · "  # every sample's name starts so: the label a person sees in every list


def sample_params(model: str, *, inputs: int = CORPUS_INPUTS, heldout: int = 0, step: str = STEPS[0],
                  view: int = 0) -> dict[str, Any]:
    """A step of the chain. `heldout`: rows of the held-out split evaluated (0: all of it)."""
    return {"step": step, "model": model, "inputs": int(inputs), "heldout": int(heldout), "view": int(view)}


def submit_samples(engine: Engine, model: str, *, inputs: int = CORPUS_INPUTS, heldout: int = 0) -> tasks.Task:
    """Queue the chain's first step for the model at `model` (the build does this when it ends)."""
    return tasks.submit(engine, KIND, model, sample_params(model, inputs=inputs, heldout=heldout))


def next_params(params: dict[str, Any]) -> dict[str, Any] | None:
    step = params["step"]
    if step == "compare" and params["view"] < DISAGREEING_VIEWS:  # views 0..2 disagree, view 3 agrees
        return {**params, "view": params["view"] + 1}
    following = STEPS.index(step) + 1
    return {**params, "step": STEPS[following], "view": 0} if following < len(STEPS) else None


# -- the steps ----------------------------------------------------------------------------------------------------
def _sample_job(engine: Engine, evaluation: bool) -> CorpusJob | None:
    """The newest sample corpus run (methods) or evaluation (no methods)."""
    with session_scope(engine) as session:
        jobs = session.exec(select(CorpusJob).where(col(CorpusJob.sample)).order_by(col(CorpusJob.id).desc())).all()
        return next((j for j in jobs if (json.loads(j.methods) == []) == evaluation), None)


def corpus_inputs(count: int) -> list:
    from core.analyses.evaluation import heldout_inputs

    chosen = [i for i in heldout_inputs(max(400, count * 8)) if len(i.text.split()) >= MIN_WORDS]
    return chosen[:count]


def _step_corpus(engine: Engine, runner: ModelRunner, params: dict[str, Any], progress: tasks.Progress) -> dict[str, Any]:
    from core.analyses.corpus import create_job
    from core.methods.registry import fast_methods

    inputs = corpus_inputs(params["inputs"])
    job_id = create_job(engine, f"{PREFIX}{len(inputs)} held-out tweets, every fast method", inputs, fast_methods(),
                        model=params["model"], source="the sample workspace: held-out tweets the model never saw")
    return _run_sample_job(engine, runner, job_id, progress, "corpus run")


def _run_sample_job(engine: Engine, runner: ModelRunner, job_id: int, progress: tasks.Progress,
                    label: str) -> dict[str, Any]:
    """Run a stored job here; a stop asked of the task stops the job after the input in flight."""
    from core.analyses.corpus import request_stop, run_job
    from core.analyses.reports import StopRequested

    def on_progress(done: int, total: int, origin: str) -> None:
        try:
            progress("samples", done / max(1, total), f"{label}: {done} of {total} tweets")
        except StopRequested:
            request_stop(engine, job_id)

    job = run_job(engine, runner, job_id, progress=on_progress)
    if job.status == "stopped":
        raise StopRequested(f"Stopped after {job.finished} of {job.total} inputs.")
    if job.status == "failed":
        raise tasks.TaskError(job.error)
    return {"job": job_id, "status": job.status}


@dataclass(frozen=True)
class Chosen:
    text: str
    agreement: float  # mean pairwise top-k agreement of the corpus run's methods on it
    origin: str


def chosen_inputs(engine: Engine) -> list[Chosen]:
    """From the sample corpus run: the tweets on which the methods disagree most, then the one where they agree
    most (mean pairwise top-k feature agreement over every pair of methods)."""
    from core.analyses.corpus.results import ItemResult

    job = _sample_job(engine, evaluation=False)
    if job is None:
        return []
    with session_scope(engine) as session:
        items = session.exec(select(CorpusItem).where(CorpusItem.job_id == job.id, CorpusItem.status == "done")
                             .order_by(col(CorpusItem.position))).all()
        scored = []
        for item in items:
            values = [p.feature_agreement for p in ItemResult.from_json(item.result).pairs.values()
                      if p.feature_agreement is not None]
            if values:
                scored.append(Chosen(item.text, sum(values) / len(values), item.origin))
    scored.sort(key=lambda c: c.agreement)
    if len(scored) <= DISAGREEING_VIEWS:
        return scored
    return scored[:DISAGREEING_VIEWS] + [scored[-1]]


def _view_name(index: int, chosen: Chosen) -> str:
    kind = "the methods disagree" if index < DISAGREEING_VIEWS else "the methods agree"
    return f"{PREFIX}{kind} ({index + 1}): {chosen.text[:48]}{'…' if len(chosen.text) > 48 else ''}"


def _step_compare(engine: Engine, runner: ModelRunner, params: dict[str, Any], progress: tasks.Progress) -> dict[str, Any]:
    from core.analyses.compare import ViewState, save_demo
    from core.analyses.reports import run_report
    from core.engine.catalogue import name_for

    chosen = chosen_inputs(engine)
    index = params["view"]
    if index >= len(chosen):
        return {"skipped": "the sample corpus run has too few inputs for this view"}
    this = chosen[index]
    state = ViewState(text=this.text, model=name_for(params["model"]))
    report = run_report(engine, runner, this.text, state.methods, {}, None,
                        progress=lambda part, f, m: progress("samples", f, f"Compare view {index + 1}: {part} {m}"))
    why = ("lowest" if index < DISAGREEING_VIEWS else "highest")
    note = (f"A held-out tweet ({this.origin}) chosen because the corpus run's methods had the {why} mean pairwise "
            f"top-k agreement on it ({this.agreement:.2f}). Computed by a worker after the build.")
    demo = save_demo(engine, _view_name(index, this), note, state)
    return {"demo": demo.id, "methods": report.comparison.methods}


def _step_evaluation(engine: Engine, runner: ModelRunner, params: dict[str, Any], progress: tasks.Progress) -> dict[str, Any]:
    from core.analyses.evaluation import create_evaluation, heldout_inputs

    inputs = heldout_inputs(params["heldout"] or None)
    job_id = create_evaluation(engine, f"{PREFIX}the held-out split ({len(inputs):,} tweets)", inputs,
                               runner.loaded.labels, model=params["model"],
                               source="the sample workspace: the default model's held-out split")
    return _run_sample_job(engine, runner, job_id, progress, "evaluation")


def _step_error_groups(engine: Engine, runner: ModelRunner, params: dict[str, Any], progress: tasks.Progress) -> dict[str, Any]:
    from core.analyses.error_groups import stored_groups

    job = _sample_job(engine, evaluation=True)
    if job is None:
        return {"skipped": "no sample evaluation"}
    groups = stored_groups(engine, runner, job.id, progress=lambda f, m: progress("samples", f, f"error groups: {m}"))
    return {"job": job.id, "groups": len(groups.groups) if groups else 0}


def _step_edits(engine: Engine, runner: ModelRunner, params: dict[str, Any], progress: tasks.Progress) -> dict[str, Any]:
    """The edit search Compare's "What would flip it?" shows by default for the first disagreeing view."""
    from core.analyses.compare import ViewState
    from core.analyses.edit_checks import edit_report
    from core.analyses.edits import OPTIONS, SEARCH

    chosen = chosen_inputs(engine)
    if not chosen:
        return {"skipped": "no sample corpus run"}
    text, state = chosen[0].text, ViewState(text=chosen[0].text)
    probabilities = runner.probabilities_for_texts([text])[0]
    ranked = sorted(range(len(probabilities)), key=lambda i: -probabilities[i])
    target = runner.loaded.labels[ranked[1]]  # the page's default goal: the second most probable label
    defaults = {o.name: o.default for o in OPTIONS}
    report = edit_report(engine, runner, text, state.methods, target=target, order=SEARCH,
                         params={"max_edits": int(defaults["max_edits"]), "similarity": float(defaults["similarity"])},
                         options={}, k=state.k, progress=lambda f, m: progress("samples", f, f"edit search: {m}"))
    return {"text": text, "counterfactuals": len(report.search.counterfactuals)}


def _step_training_data(engine: Engine, runner: ModelRunner, params: dict[str, Any], progress: tasks.Progress) -> dict[str, Any]:
    from core.analyses.training_data.store import stored_attributions
    from core.analyses.training_data.training_sets import training_set_for
    from core.analyses.training_data.view import DataView

    chosen = chosen_inputs(engine)
    if not chosen:
        return {"skipped": "no sample corpus run"}
    view = DataView(text=chosen[0].text)
    training = training_set_for(engine, runner.loaded)
    stored_attributions(engine, runner.loaded, training, view.text, view.methods, k=view.k,
                        progress=lambda f, m: progress("samples", f, f"training examples: {m}"))
    return {"text": view.text, "methods": view.methods}


STEP_RUNS = {"corpus": _step_corpus, "compare": _step_compare, "evaluation": _step_evaluation,
             "error_groups": _step_error_groups, "edits": _step_edits, "training_data": _step_training_data}


def run_step(engine: Engine, runner: ModelRunner, params: dict[str, Any], progress: tasks.Progress,
             should_stop: tasks.ShouldStop) -> dict[str, Any]:
    """The `samples` task kind: one step, every row it stores marked as a sample; then the next step is queued."""
    if params.get("step") not in STEP_RUNS:
        raise tasks.TaskError(f"Unknown sample step {params.get('step')!r}; the steps are {', '.join(STEPS)}.")
    progress("samples", 0.0, f"step {STEPS.index(params['step']) + 1} of {len(STEPS)}: {params['step']}")
    with making_samples():
        result = STEP_RUNS[params["step"]](engine, runner, params, progress)
    if (following := next_params(params)) is not None and not should_stop():
        tasks.submit(engine, KIND, params["model"], following)
    return {"step": params["step"], **result}


# -- what Home shows, and removing it all ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Suggestion:
    title: str
    why: str
    address: str


@dataclass
class Workspace:
    demos: list[Demo] = field(default_factory=list)
    corpus_job: int | None = None
    evaluation_job: int | None = None
    training_text: str = ""
    live: tasks.Task | None = None  # the step being computed, if any

    @property
    def empty(self) -> bool:
        return not (self.demos or self.corpus_job or self.evaluation_job)

    def things_to_try(self) -> list[Suggestion]:
        """Three things to try, each opening one stored sample (only those that exist yet)."""
        found = []
        disagreeing = [d for d in self.demos if "the methods disagree" in d.name]
        if disagreeing:
            first = disagreeing[-1]  # listed newest first: the first view computed disagrees most
            found.append(Suggestion("Fourteen accounts of one tweet",
                                    "Compare opens on the held-out tweet where the methods disagree most, with the edits "
                                    "that would flip it.", f"/Compare?{urlencode({'demo': first.id})}"))
        if self.evaluation_job is not None:
            found.append(Suggestion("Where the model goes wrong",
                                    "The held-out split's evaluation and its errors grouped by shared cause.",
                                    f"/Evaluation?{urlencode({'job': self.evaluation_job})}"))
        if self.training_text:
            from core.analyses.training_data.view import DataView

            found.append(Suggestion("The training data behind an answer",
                                    "The training tweets that most pushed the model towards its answer, four ways.",
                                    DataView(text=self.training_text).link()))
        elif self.corpus_job is not None:
            found.append(Suggestion("The methods over fifty tweets",
                                    "Which methods agree with each other, and which are faithful, over a corpus.",
                                    f"/Corpus?{urlencode({'job': self.corpus_job})}"))
        return found[:3]


def workspace(engine: Engine) -> Workspace:
    found = Workspace()
    with session_scope(engine) as session:
        found.demos = list(session.exec(select(Demo).where(col(Demo.sample)).order_by(col(Demo.id).desc())).all())
    run, evaluation = _sample_job(engine, evaluation=False), _sample_job(engine, evaluation=True)
    found.corpus_job = run.id if run else None
    found.evaluation_job = evaluation.id if evaluation else None
    done = tasks.list_tasks(engine, limit=50, status=("done",), kind=KIND)
    found.training_text = next((t.result.get("text", "") for t in done if t.params.get("step") == "training_data"), "")
    found.live = next(iter(tasks.list_tasks(engine, limit=5, status=tasks.ACTIVE, kind=KIND)), None)
    return found


MARKED = (Demo, CheckRecord, ComparisonReportRecord, ExplanationRecord)


def remove_samples(engine: Engine) -> dict[str, int]:
    """Stop the chain and delete every sample (and the sample tasks' history); how many rows of each went. A
    person's own results are never touched: only rows stored while samples were computed carry the mark."""
    with engine.begin() as connection:
        connection.execute(update(TaskRecord).where(TaskRecord.kind == KIND, TaskRecord.status == "queued")
                           .values(status="stopped", error="The samples were removed."))
        connection.execute(update(TaskRecord).where(TaskRecord.kind == KIND, TaskRecord.status == "running")
                           .values(stop_requested=True))
    removed: dict[str, int] = {}
    with session_scope(engine) as session:
        jobs = [j.id for j in session.exec(select(CorpusJob).where(col(CorpusJob.sample))).all()]
        if jobs:
            session.exec(delete(CorpusItem).where(col(CorpusItem.job_id).in_(jobs)))
            session.exec(delete(CorpusJob).where(col(CorpusJob.id).in_(jobs)))
        removed["corpus_job"] = len(jobs)
        for table in MARKED:
            removed[table.__tablename__] = session.exec(delete(table).where(col(table.sample))).rowcount
        removed["task"] = session.exec(delete(TaskRecord).where(
            TaskRecord.kind == KIND, col(TaskRecord.status).in_(("done", "failed", "stopped")))).rowcount
    return removed


def is_sample_job(engine: Engine, job_id: int) -> bool:
    with session_scope(engine) as session:
        job = session.get(CorpusJob, job_id)
        return bool(job is not None and job.sample)
