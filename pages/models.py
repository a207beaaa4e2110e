import pandas as pd
import streamlit as st

from core.analyses.backend_gate import DEFAULT_INPUTS, DEFAULT_METHOD_INPUTS, backend_for, stored_gates
from core.analyses.evaluation import EvaluationError, heldout_inputs
from core.analyses.model_compare import stored_diff, stored_pairs
from core.engine.backends import BACKENDS, FLOAT32
from core.engine.catalogue import DEFAULT_NAME, model_choices, resolve
from core.engine.default_model import model_versions
from core.engine.modelling import ModelLoadError
from core.engine.runner import ModelRunner
from core.methods.base import ExplainError
from core.methods.registry import METHODS, fast_methods
from core.render import highlighted_text, md
from core.storage.settings import load_settings
from core.work.builds import Build, list_builds
from pages.widgets.resources import described, engine, model_picker, runner_or_stop, task_button
from pages.widgets.ui import address

db = engine()
st.title("Model vs model")
st.caption("Did the fix work? Two classifiers with the same labels on the same labelled texts: what each fixed "
           "and broke, per-class changes with intervals, and on one input both models' explanations side by side.")



def show_build(build: Build) -> None:
    title = (f"Build {build.id} ({build.extra_rows} extra rows from {build.source})" if build.extra_rows
             else f"Build {build.id} (the default model)")
    if build.error:
        st.error(md(f"{title}: {build.error}"))
    elif build.finished:
        scores = f"held-out accuracy {build.accuracy:.3f}, macro-F1 {build.macro_f1:.3f}" if build.accuracy is not None else ""
        st.success(md(f"{title}: built {build.output_dir}; {scores}. Compare it below as model B."))
    else:
        st.progress(max(0.0, min(1.0, build.fraction)), text=md(f"{title}: {build.message}"))


builds = list_builds(db)


@st.fragment(run_every=3 if any(b.running for b in builds) else None)
def builds_section() -> None:
    for build in list_builds(db)[:5]:
        show_build(build)


if builds:
    st.subheader("Builds started here")
    builds_section()

with st.expander("Cheaper passes: each backend's fidelity gate against float32"):
    st.caption("A quantised or ONNX backend serves the model's plain passes (perturbation methods, predictions, "
               "faithfulness curves) only once it passed its gate: labels kept on held-out texts, probabilities "
               "within a tolerance, each perturbation method's top words as stable as float32's own. The gate runs "
               "on a worker (minutes: both backends over the held-out texts).")
    gate_name = model_picker("Model", key="gate_model")
    try:  # not runner_or_stop: a model being built must not stop the rest of the page from inside this section
        gated = ModelRunner(described(resolve(gate_name)))
    except ModelLoadError as exc:
        st.caption(md(str(exc)))
    else:
        in_use, why = backend_for(db, gated.loaded, load_settings().backend)
        st.markdown(f"Plain passes of this model run on **{md(in_use)}**: {md(why)}")
        gates = stored_gates(db, gated.loaded.weights_fingerprint)
        for backend in (b for b in BACKENDS if b != FLOAT32):
            found = gates.get(backend)
            st.markdown(f"**{backend}**: " + (md(found.sentence()) if found else "no gate measured yet."))
            task_button(f"Measure {backend} against float32", "backend_gate",
                        {"backend": backend, "inputs": DEFAULT_INPUTS, "method_inputs": DEFAULT_METHOD_INPUTS},
                        gated, titles={"gate": f"{backend} against float32"}, key=f"gate_{backend}", primary=False)

query = address("pages/models.py")
built = {v["path"] for v in model_versions()}
versions = [name for name, spec in model_choices().items() if spec in built]  # oldest first
choices = model_choices()
# B defaults to the newest version built here, else to another of the server's models: never to A itself.
other = next((v for v in reversed(versions) if v), "") or next(
    (name for name, spec in choices.items() if name != DEFAULT_NAME and spec != choices.get(query["a"] or DEFAULT_NAME)),
    "")
for key, value in (("models_a", query["a"]),
                   ("models_b", query["b"] or other),
                   ("models_limit", query["limit"]),
                   ("models_text", query["text"])):
    if key not in st.session_state:
        st.session_state[key] = value
left, right = st.columns(2)
name_a = model_picker("Model A (before)", key="models_a", container=left)
name_b = model_picker("Model B (after)", key="models_b", container=right)
same_model = resolve(name_a) == resolve(name_b)
if same_model and len(set(choices.values())) == 1:
    st.info("This server has one model, so there is nothing to compare it with yet: rebuild it with extra training "
            "rows from an error group (Evaluation page), or name more models in RASHOMON_MODELS.")
    st.page_link("pages/evaluation.py", label="Evaluation: find error groups and rebuild →")
elif same_model:
    st.warning(f"Model A and model B are the same model ({md(name_a or 'default')}): choose another model B.")
st.caption("The server's models: the configured one, those in RASHOMON_MODELS and the versions built here.")
a_language = runner_or_stop(name_a).loaded.language
held_out = "the Chinese model's held-out reviews" if a_language == "zh" else "the default model's held-out rows"
limit = int(st.number_input(f"Rows of {held_out} (of 2,000)", 1, 2000, key="models_limit"))
text = st.text_input("One input to explain with both models (optional)", key="models_text")
st.query_params.from_dict({**({"a": name_a} if name_a else {}), **({"b": name_b} if name_b else {}),
                           "limit": str(limit), **({"text": text} if text else {})})
a, b = runner_or_stop(name_a), runner_or_stop(name_b)
if same_model or a.loaded.path == b.loaded.path:
    st.stop()  # said under the two model pickers
inputs = heldout_inputs(limit, a.loaded.language)
try:
    diff = stored_diff(db, a, b, inputs, only_stored=True)
except EvaluationError as exc:
    st.error(md(str(exc)))
    st.stop()
if diff is None:  # the diff over up to 2,000 rows runs on a worker; the page follows it, then reads the store
    task_button("Compare on the held-out rows", "model_compare", {"b": b.loaded.path, "limit": limit}, a,
                titles={"diff": "Both models on the held-out rows"}, key="models_diff")
    diff = stored_diff(db, a, b, inputs, only_stored=True)
if diff is not None:
    st.dataframe(pd.DataFrame([{"measure": d.name, "A": d.a, "B": d.b, "change": d.delta,
                                "95% interval": f"{d.low:+.3f} .. {d.high:+.3f}"} for d in diff.deltas]).round(3),
                 hide_index=True, width="stretch")
    st.markdown(f"**{len(diff.fixed)} fixed** (A wrong, B right) · **{len(diff.broken)} broken** (A right, B wrong) · "
                f"**{len(diff.changed_errors)}** errors that changed label · {diff.inputs} inputs"
                + (f" ({diff.left_out} left out: a model trained on them)" if diff.left_out else ""))
    for title, rows in (("Fixed", diff.fixed), ("Broken", diff.broken)):
        with st.expander(f"{title} ({len(rows)})"):
            st.dataframe(pd.DataFrame([{"gold": r.gold, "A": r.a, "B": r.b, "text": r.text} for r in rows]),
                         hide_index=True, width="stretch")

if text.strip():
    st.subheader("One input, both models")
    methods = st.multiselect("Methods", list(METHODS), default=["saliency", "input_x_gradient", "occlusion"],
                             format_func=lambda m: METHODS[m].title, key="models_methods")

    chosen = methods or fast_methods()[:2]
    try:
        pairs = stored_pairs(db, a, b, text, chosen, only_stored=True)
    except (ExplainError, EvaluationError) as exc:
        st.error(md(str(exc)))
        st.stop()
    if pairs is None:  # explained on a worker, then read from the store
        task_button("Explain this input with both models", "model_pair",
                    {"b": b.loaded.path, "text": text, "methods": chosen}, a, titles={"pair": "Both models"},
                    key="models_pair")
        pairs = stored_pairs(db, a, b, text, chosen, only_stored=True) or []
    for pair in pairs:
        st.markdown(f"**{md(METHODS[pair.method].title)}**: Spearman between the models {pair.spearman:+.2f}, "
                    f"top-5 overlap {pair.top_k_overlap:.2f} (label {md(pair.a.target)})")
        for name, result in (("A", pair.a), ("B", pair.b)):
            peak = max([abs(s) for s in result.scores] or [1.0]) or 1.0
            st.html(f"<div><b>{name}</b> (p = {result.probabilities[result.target]:.3f})</div>" + highlighted_text(
                result.text, result.offsets, [s / peak for s in result.scores], result.signed))
