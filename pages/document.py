from urllib.parse import urlencode

import pandas as pd
import streamlit as st

from core.analyses.compare import ViewState
from core.analyses.documents import STITCHING, explain_document, normalised, paragraph_text
from core.analyses.passages import PassageChoice
from core.library.snapshots import get_snapshot
from core.methods.base import ExplainError
from core.methods.registry import METHODS, fast_methods
from core.render import highlighted_text, md
from pages.widgets.resources import engine, model_picker, runner_or_stop, task_button
from pages.widgets.ui import address, compatible_only

db = engine()
st.title("Whole document")
st.caption("A text longer than the model reads, explained window by window and stitched back together, "
           "with the paragraphs where the methods disagree most.")

query = address("pages/document.py")
# A new address (a link from Snapshots, a shared URL) chooses the snapshot; otherwise the widget keeps its own.
if query["snapshot"] is not None and st.session_state.get("_doc_address") != str(query["snapshot"]):
    st.session_state["doc_snapshot"] = query["snapshot"]
st.session_state.setdefault("doc_snapshot", None)
st.subheader("Input")
document_column, method_column = st.columns([2, 3], gap="medium")
with document_column:
    snapshot_id = st.number_input("Snapshot number", min_value=1, step=1, key="doc_snapshot")
    if query["model"] and st.session_state.get("_doc_address") != str(query["snapshot"]):
        st.session_state["doc_model"] = query["model"]
    model_spec = model_picker("Model", key="doc_model")
    runner = runner_or_stop(model_spec)
    labels = runner.loaded.labels
    target = st.selectbox("Label to explain", ["", *labels], key="doc_target",
                          index=([""] + labels).index(query["target"]) if query["target"] in labels else 0,
                          format_func=lambda label: label or "the document's label (highest mean over windows)")
with method_column:
    wanted_methods = query["methods"] or fast_methods()
    methods = compatible_only(st.multiselect("Methods", list(METHODS), default=wanted_methods, key="doc_methods",
                                             format_func=lambda m: METHODS[m].title), runner.loaded)
    if not methods:
        st.warning("Choose at least one method.")
    most = runner.loaded.max_length
    sizes = sorted({s for s in (64, 128, 256, 512) if s < most} | {most})
    window_column, overlap_column = st.columns(2)
    window_tokens = window_column.select_slider(
        "Window (tokens)", sizes, key="doc_window", value=query["window"] if query["window"] in sizes else min(most, 128),
        help="Shorter windows are cheaper per word (attention grows with the square of the length) but see less context.")
    overlap = overlap_column.slider("Overlap between windows", 0.0, 0.75, 0.25, 0.05, key="doc_overlap")

if snapshot_id is None:
    st.info("Give a snapshot number (the Snapshots page links here from every snapshot).")
    st.stop()
snapshot = get_snapshot(db, int(snapshot_id))
if snapshot is None or snapshot.error:
    st.error(f"Snapshot {int(snapshot_id)} " + ("does not exist." if snapshot is None else "is a failed fetch and has no text."))
    st.stop()
st.session_state["_doc_address"] = str(snapshot.id)
st.query_params.from_dict({"snapshot": str(snapshot.id), "methods": ",".join(methods), "window": str(window_tokens),
                           **({"target": target} if target else {}), **({"model": model_spec} if model_spec else {})})
st.markdown(f"**{md(snapshot.title or snapshot.final_url)}** · {len(snapshot.text):,} characters")
st.caption(STITCHING)

settings = dict(target=target or None, overlap=overlap, window_tokens=window_tokens)
task_params = {"snapshot": int(snapshot.id), "methods": methods, "target": target, "overlap": overlap,
               "window_tokens": window_tokens}
last = task_button("Explain the whole document", "document", task_params, runner, titles={"document": "Every window"},
                   key="doc", disabled=not methods, stop_help="Finished windows are stored and kept.")
if last is not None and last.active:
    st.stop()
try:
    doc = explain_document(db, runner, snapshot.text, methods, only_stored=True, **settings) if methods else None
except ExplainError as exc:
    st.error(md(str(exc)))
    st.stop()
if doc is None:
    st.info("Press the button to explain every window with the chosen methods; finished windows are stored.")
    st.stop()

st.subheader(f"Explaining {md(doc.target)} over {len(doc.windows)} windows")
disputed_tab, document_tab, cost_tab = st.tabs(["Most disputed paragraphs", "The document, coloured", "Cost"])
with disputed_tab:
    st.markdown("**Paragraphs, most disputed first**")
    rows = []
    for paragraph in sorted(doc.paragraphs, key=lambda p: -(p.disagreement or 0)):
        view = ViewState(snapshot=snapshot.id, passage=PassageChoice("paragraph", paragraph.index, paragraph.index),
                         model=model_spec.strip(), methods=doc.methods, target=doc.target)
        rows.append({"paragraph": paragraph.index + 1, "words": paragraph.end_word - paragraph.start_word,
                     "disagreement": paragraph.disagreement, "open": "/Compare?" + urlencode(view.to_query()),
                     **{METHODS[m].title: ", ".join(w) for m, w in paragraph.top_words.items()}})
    st.dataframe(pd.DataFrame(rows).round(3), hide_index=True, width="stretch",
                 column_config={"open": st.column_config.LinkColumn("open in Compare", display_text="Compare")})
    st.caption(f"Disagreement: 1 - mean top-{doc.k} overlap between every pair of methods over the paragraph's words "
               "(0: they pick the same words).")

with document_tab:
    shown_method = st.selectbox("Colour the document by", doc.methods, key="doc_colour",
                                format_func=lambda m: METHODS[m].title)
    values = normalised(doc.scores[shown_method])
    signed = METHODS[shown_method].signed
    blocks = []
    for paragraph in doc.paragraphs:
        start = doc.words[paragraph.start_word][1]
        offsets = [(s - start, e - start) for _, s, e in doc.words[paragraph.start_word : paragraph.end_word]]
        badge = ("" if paragraph.disagreement is None else f"disagreement {paragraph.disagreement:.2f}")
        blocks.append(f'<div style="margin-bottom:0.8em"><div style="font-size:0.8rem;color:#555">¶ {paragraph.index + 1}'
                      f'{" · " + badge if badge else ""}</div>'
                      + highlighted_text(paragraph_text(doc, paragraph), offsets,
                                         values[paragraph.start_word : paragraph.end_word], signed) + "</div>")
    st.html('<div style="max-height:32em;overflow-y:auto;border:1px solid #ddd;padding:0.6em">' + "".join(blocks) + "</div>")
    st.caption("Colours are divided by the method's largest |score| over the whole document: red supports the label, "
               "blue speaks against it, green marks importance without a sign.")

with cost_tab:
    st.markdown("**Cost per window**")
    cost = pd.DataFrame([{"window": c.window + 1, "method": METHODS[c.method].title, "seconds": c.seconds,
                          "model passes": c.forward_passes, "stored": c.stored} for c in doc.costs])
    st.dataframe(cost.round(3), hide_index=True, width="stretch")
    st.caption(f"{doc.forward_passes} model passes now"
               + (f" ({doc.prediction_passes} to choose the document's label)" if doc.prediction_passes else "")
               + f"; {doc.seconds:.1f} s.")
