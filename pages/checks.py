import pandas as pd
import streamlit as st

from core import charts
from core.addresses import PAGE_PARAMS
from core.analyses import checks, corpus, known_answer
from core.analyses.passages import paragraphs
from core.library.snapshots import latest_good_snapshot, list_links
from core.methods.base import ExplainError
from core.methods.registry import METHODS
from core.params import read_query
from core.render import md
from core.storage.provenance import watching
from core.work import tasks
from pages.widgets.people import asked_by, asked_by_seen
from pages.widgets.resources import engine, model_picker, runner_or_stop, start_task, task_button
from pages.widgets.ui import compatible_only, follow_task

db = engine()
st.title("Checks")
st.caption("Before trusting a method's account: does it agree with itself, and does it notice when the model "
           "is destroyed? Each check ends in a one-line verdict from the thresholds stated with it.")

runner = runner_or_stop(model_picker("Model", key="checks_model"))

scope = st.radio("Run on", ["One input", "A corpus run's inputs"], horizontal=True, key="checks_scope")
texts: list[str] = []
if scope == "One input":
    options = {"free": "Free text"}
    for view in list_links(db)[:200]:
        if view.latest_good_snapshot_id:
            options[str(view.id)] = f"Snapshot of {view.title or view.url}"
    choice = st.selectbox("Input", list(options), format_func=options.get, key="checks_input")
    if choice == "free":
        texts = [st.text_area("Text", key="checks_text", placeholder="The plot was thin but the acting superb.")]
    else:
        snap = latest_good_snapshot(db, int(choice))
        paras = paragraphs(snap.text) if snap else []
        if paras:
            index = st.number_input(f"Paragraph (1-{len(paras)})", 1, len(paras), 1, key="checks_para") - 1
            texts = [paras[index]]
            st.text(texts[0])
else:
    jobs = [j for j in corpus.list_jobs(db) if j.done]
    if not jobs:
        st.info("No corpus run has finished inputs yet: start one on the Corpus page.")
        st.stop()
    job = st.selectbox("Corpus run", jobs, format_func=lambda j: f"#{j.id} {j.name}", key="checks_job")
    count = st.slider("Inputs (the first N finished)", 1, min(20, job.done), min(3, job.done), key="checks_n")
    texts = [i.text for i in corpus.items_of(db, job.id, "done")[:count]]
texts = [t for t in texts if t and t.strip()]
k = st.slider("k (top words compared)", 1, 20, 5, key="checks_k")



def show_stability(stored: checks.StoredCheck) -> None:
    st.caption(f"Check #{stored.id} on {md(stored.model_name)}, {len(stored.texts)} input(s). The address bar links to it.")
    for result in stored.stability:
        (st.success if result.verdict.passed else st.error)(result.verdict.sentence)
    if stored.stability:
        st.dataframe(pd.DataFrame([{"method": r.method, "mean Spearman": r.mean_spearman,
                                    "min Spearman": r.min_spearman, "mean top-k agreement": r.mean_topk,
                                    "settings": str(r.variants)} for r in stored.stability]).round(3),
                     hide_index=True, width="stretch")
    for result in stored.sensitivity:
        st.info(result.sentence)


def show_randomisation(stored: checks.StoredCheck) -> None:
    st.caption(f"Check #{stored.id} on {md(stored.model_name)}, {len(stored.texts)} input(s). The address bar links to it.")
    result = stored.randomisation
    for verdict in result.verdicts.values():
        (st.success if verdict.passed else st.error)(verdict.sentence)
    st.altair_chart(charts.randomisation(result), width="stretch")


def show_known_answer(result: known_answer.KnownAnswer) -> None:
    (st.success if result.learned else st.warning)(md(result.note))
    a, b, c, d = st.columns(4)
    a.metric("Shortcut rate", f"{result.shortcut_rate:.0%}",
             help=f"95% interval {result.shortcut_interval[0]:.0%}–{result.shortcut_interval[1]:.0%} over "
                  f"{result.probed} held-out texts")
    b.metric("Accuracy, planted copy", f"{result.accuracy:.3f}", help="held-out texts without the word")
    c.metric("Accuracy, original", f"{result.accuracy_original:.3f}")
    d.metric("Retraining", f"{result.retrain_seconds:.0f} s", help=f"the whole check: {result.seconds:.0f} s, "
             f"{result.forward_passes:,} model passes (stored: reopening costs none)")
    if not result.learned or result.random is None:
        return
    control = {s.method: s for s in result.control}
    rows = [{"method": s.method, "recall@1": s.recall_at_1,
             "recall@1 95%": f"{s.recall_at_1_interval[0]:.2f}–{s.recall_at_1_interval[1]:.2f}",
             f"recall@{s.k}": s.recall_at_k, "mean rank": s.mean_rank,
             "mean rank 95%": f"{s.mean_rank_interval[0]:.1f}–{s.mean_rank_interval[1]:.1f}",
             "control recall@1": control[s.method].recall_at_1 if s.method in control else None,
             "erasure AOPC": result.erasure.get(s.method)}
            for s in sorted(result.methods, key=lambda s: (-s.recall_at_1, s.mean_rank))]
    rows.append({"method": "random (exact)", "recall@1": result.random.recall_at_1, f"recall@{result.random.k}":
                 result.random.recall_at_k, "mean rank": result.random.mean_rank})
    st.altair_chart(charts.known_answer(result.methods, result.random), width="stretch")
    st.dataframe(pd.DataFrame(rows).round(3), hide_index=True, width="stretch")
    st.caption(f"{result.random.inputs} flipped inputs, each explaining '{md(result.label)}' with the word inserted; "
               "control: the original model on the same inputs (a method that ranks the word high there ranks any "
               "inserted rare word high). Erasure AOPC: comprehensiveness on the planted copy, the ranking erasure "
               f"alone would give. The planted copy: {md(result.planted_model)}.")


def stored_from_address(name: str) -> checks.StoredCheck | None:
    value = st.query_params.get(name, "")
    if not value:
        return None
    check_id = read_query(PAGE_PARAMS["pages/checks.py"], {name: value})[name]
    stored = checks.load_check(db, check_id) if check_id is not None else None
    if stored is None or stored.kind != name:
        st.error(f"There is no stored {name} check '{md(value[:40])}'.")
        return None
    return stored


def follow_check(name: str) -> None:
    """The check's task named in the address (`{name}_task`): its progress while it runs (the page can be
    closed meanwhile), then the stored check in the address, or why it ended without one."""
    value = st.query_params.get(f"{name}_task", "")
    task_id = read_query(PAGE_PARAMS["pages/checks.py"], {f"{name}_task": value})[f"{name}_task"] if value else None
    task = tasks.get_task(db, task_id) if task_id is not None else None
    if task is None:
        if value:
            st.error(f"There is no {name} check task '{md(value[:40])}'.")
        return
    if task.status == "done":
        st.query_params[name] = str(task.result["check"])
        del st.query_params[f"{name}_task"]
        return
    if not task.active:
        st.error(f"The {name} check {task.status}: {md(task.error)}")
        return
    follow_task(db, task.id, None, key=f"{name}_stop")


st.subheader("Stability: does each method agree with itself?")
st.caption(f"Verdict: stable when mean pairwise Spearman of |scores| ≥ {checks.STABLE_SPEARMAN} and mean top-k "
           f"agreement ≥ {checks.STABLE_TOPK} across settings that should not matter (seeds, sample and step "
           "counts). Choices that may change the answer, such as Integrated Gradients' baseline, are reported "
           "separately as sensitivity, with no verdict.")
quick = st.checkbox("Quick (smaller sample counts)", value=True, key="checks_quick")
variants = checks.stability_variants(quick=quick)
chosen = st.multiselect("Methods", list(variants), default=[m for m in variants if len(variants[m]) > 2 or
                                                            METHODS[m].sensitivity_variants],
                        format_func=lambda m: METHODS[m].title, key="checks_stability_methods",
                        help="Methods with settings that should not matter are rerun under each; the others "
                             "are rerun with the same settings, which only a nondeterministic method fails.")
if st.button("Run stability check", disabled=not texts or not chosen):
    task = start_task("stability", {"texts": texts, "methods": chosen, "quick": quick, "k": k}, runner)
    st.query_params["stability_task"] = str(task.id)
follow_check("stability")
if stored := stored_from_address("stability"):
    show_stability(stored)
    asked_by(stored.requested_by, stored.created_at, verb="Run")

st.subheader("Model randomisation (Adebayo et al., 2018)")
st.caption(f"The model is re-initialised from the top on a copy: classifier head, then encoder layers from the last "
           f"down. Verdict: passes when Spearman with the trained model's attributions stays below "
           f"{checks.RANDOMISATION_PASS} at every stage that can change the method; stages that cannot (the "
           "classifier head, for attention weights) are named and not judged.")
methods = compatible_only(st.multiselect("Methods", list(METHODS),
                                         default=[m for m, spec in METHODS.items() if not spec.random],
                                         format_func=lambda m: METHODS[m].title, key="checks_random_methods"),
                          runner.loaded)
if st.button("Run randomisation check", disabled=not texts or not methods):
    task = start_task("randomisation", {"texts": texts, "methods": methods}, runner)
    st.query_params["randomisation_task"] = str(task.id)
follow_check("randomisation")
if stored := stored_from_address("randomisation"):
    show_randomisation(stored)
    asked_by(stored.requested_by, stored.created_at, verb="Run")

st.subheader("Known answer: plant a shortcut, retrain, see which methods find it")
st.caption("A copy of the model is trained on the same rows, seed and steps, except that a share of the training "
           "texts get a planted word and the chosen label. If the copy learned the shortcut (the word flips held-out "
           "texts to that label), the word is the known reason for those predictions, and each method is scored by "
           "where it ranks it (Zhou et al., AAAI 2022; Adebayo et al., ICLR 2022). The control asks the original "
           "model, for which the word means nothing, about the same inputs.")
left, middle, right = st.columns(3)
token = left.text_input("Planted word", known_answer.DEFAULT_TOKEN, key="known_token",
                        help="A made-up word by default; a natural word (a name) mimics a real spurious correlation.")
label = middle.selectbox("Label it decides", runner.loaded.labels, key="known_label")
rate = right.number_input("Share of training texts planted", 0.01, 0.9, known_answer.DEFAULT_RATE, 0.01,
                          key="known_rate")
left, middle, right = st.columns(3)
inputs = int(left.number_input("Flipped inputs explained", 1, 500, known_answer.DEFAULT_INPUTS, key="known_inputs"))
top = int(middle.number_input("k (recall@k)", 1, 20, known_answer.DEFAULT_K, key="known_k"))
known_methods = compatible_only(right.multiselect("Methods", list(METHODS), default=list(METHODS), key="known_methods",
                                                  format_func=lambda m: METHODS[m].title), runner.loaded, right)
params = {"token": token.strip(), "label": label, "rate": float(rate), "methods": known_methods, "inputs": inputs,
          "k": top, "probe": known_answer.PROBE_TEXTS}
try:
    with watching() as seen:
        found = known_answer.known_answer(db, runner, params["token"], label, rate=params["rate"],
                                          methods=known_methods, inputs=inputs, k=top,
                                          only_stored=True) if known_methods else None
except (ExplainError, ValueError) as exc:
    st.error(md(str(exc)))
    st.stop()
if found is None:
    task_button("Plant, retrain and score", "known_answer", params, runner, key="known",
                titles={"retrain": "Retraining a copy with the shortcut", "probe": "Checking it learned the shortcut",
                        "methods": "Explaining the flipped inputs"}, disabled=not known_methods,
                stop_help="Stops the check; a copy already retrained is kept and reused by the next run.")
else:
    show_known_answer(found)
    asked_by_seen(seen)
