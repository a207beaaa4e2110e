"""Compare's "What would flip it?" section: counterfactual edits, and what they say about the methods."""

from urllib.parse import urlencode

import pandas as pd
import streamlit as st

from core import charts
from core.analyses.edit_checks import EditReport, edit_report, search_record_id
from core.analyses.edits import ANY_OTHER, OPTIONS, SEARCH
from core.engine.catalogue import name_for
from core.methods.base import ExplainError
from core.render import edit_diff, md
from core.storage.notes import list_notes
from core.storage.provenance import watching
from pages.widgets.people import asked_by_seen, notes_on
from pages.widgets.resources import task_button

DEFAULTS = {o.name: o.default for o in OPTIONS}


def goals(probabilities: dict[str, float]) -> list[str]:
    """Labels the search may aim for, most probable first (the default, as in the CLI), then "any other"."""
    ranked = sorted(probabilities, key=lambda label: -probabilities[label])
    return ranked[1:] + [ANY_OTHER]


def settings(probabilities: dict[str, float], methods: list[str]) -> dict:
    """The search's settings from its widgets (kept in session state, so a stored search reopens)."""
    left, middle, right = st.columns(3)
    target = left.selectbox("Reach the label", goals(probabilities), key="edits_target",
                            format_func=lambda g: "any other label (attack)" if g == ANY_OTHER else g,
                            help="A counterfactual reaches a chosen label; an attack just leaves the predicted one.")
    max_edits = middle.number_input("Most words changed", 1, 10, DEFAULTS["max_edits"], key="edits_max")
    similarity = right.slider("Least similarity to the original", 0.0, 1.0, DEFAULTS["similarity"], 0.05,
                              key="edits_similarity", help="Cosine of all-MiniLM-L6-v2 sentence embeddings.")
    order = st.selectbox("Edit first the words ranked highest by", [SEARCH, *methods], key="edits_order",
                         format_func=lambda o: "the search itself (deleting each word once)" if o == SEARCH else o)
    return {"target": target, "order": order, "params": {"max_edits": int(max_edits), "similarity": float(similarity)}}


@st.fragment  # its widgets rerun this section only; a finished search reruns the page, for the summary
def show(db, runner, text: str, probabilities: dict[str, float], methods: list[str], options: dict,
         k: int) -> EditReport | None:
    """The section; returns the stored search for its settings (None if there is none), for the summary."""
    st.subheader("What would flip it?")
    st.caption("The smallest word edits (deletions, or swaps for the model's own nearest words) that change the "
               "prediction while the text stays similar; then, for each method, how often those edits touch its "
               f"top {k} words.")
    chosen = settings(probabilities, methods)
    request = dict(target=chosen["target"], order=chosen["order"], params=chosen["params"], options=options, k=k)
    try:
        with watching() as seen:
            report = edit_report(db, runner, text, methods, only_stored=True, **request)
    except ExplainError as exc:
        st.error(md(str(exc)))
        return None
    if report is None:
        task_button("Search for edits", "edits", {"text": text, "methods": list(methods), **request}, runner,
                    titles={"edits": "Search"}, key="edits", primary=False, on_end=finished)
        return None
    show_report(report, just_ran=st.session_state.pop("edits_just_ran", False))
    asked_by_seen(seen)
    if report.search.counterfactuals and (record := search_record_id(
            db, runner, text, chosen["target"], order=chosen["order"], params=chosen["params"])) is not None:
        found = {f"counterfactual {i}: → {c.label}": f"counterfactual:{record}:{i}"
                 for i, c in enumerate(report.search.counterfactuals, 1)}
        on_these = list_notes(db, refs=tuple(found.values()))
        if st.toggle(f"Notes on these counterfactuals ({len(on_these)})", key="edits_notes"):
            notes_on(db, next(iter(found.values())), model=name_for(runner.loaded.path), page="compare",
                     key="edits_notes", address="Compare?" + urlencode(st.query_params.to_dict()),
                     methods=list(methods), about=found)
    return report


def finished(task) -> None:
    """A search ended: rerun the whole page, so that the summary below includes its result."""
    if task is not None and task.status == "done":
        st.session_state["edits_just_ran"] = True  # its cost was paid now, not read from the store
    st.rerun()


def show_report(report: EditReport, just_ran: bool = False) -> None:
    result = report.search
    goal = "any other label" if result.goal == ANY_OTHER else result.goal
    first = ("" if result.first_seconds is None else
             f" First found after {result.first_seconds:.1f} s and {result.first_passes} passes.")
    st.caption(f"Goal: {md(goal)}. {len(result.counterfactuals)} counterfactual(s); {result.forward_passes} model "
               f"passes, {result.queries} queries, {result.seconds:.1f} s"
               + (" (stored result, no model work now)" if report.from_store and not just_ran else "")
               + f"; the search ended: {md(result.stopped)}.{first}")
    if result.similarity_unavailable:
        st.warning(f"Similarity bound {md(result.similarity_unavailable)}.")
    if not result.counterfactuals:
        st.info(f"No edit of up to {result.params['max_edits']} words reaches {md(goal)}"
                + ("." if result.similarity_unavailable else
                   f" with similarity at least {result.params['similarity']:.2f}. Allow more edits or a lower "
                   "similarity."))
    for i, counterfactual in enumerate(result.counterfactuals, 1):
        probabilities = ", ".join(f"{md(label)} {p:.2f}" for label, p in counterfactual.probabilities.items())
        st.markdown(f"**{i}. → {md(counterfactual.label)}** · {len(counterfactual.edits)} word(s) changed · "
                    + ("similarity not measured" if result.similarity_unavailable else
                       f"similarity {counterfactual.similarity:.2f}") + f" · {probabilities}")
        st.html(edit_diff(counterfactual.diff))
    if report.agreement:
        st.markdown(f"**Counterfactual agreement**: share of these edits that touch each method's top {report.k} words")
        st.altair_chart(charts.edit_agreement(report.agreement), width="stretch")
        editable = sum(word[:1].isalnum() for word in result.words)
        bias = ("" if result.order != SEARCH or len(result.ranking) >= editable else
                " Positions were ranked by deleting each word once, which is what occlusion measures: "
                "occlusion has a head start here.")
        st.caption(f"The dashed line is a random ranking's share on the same edits (exact, not sampled).{bias} "
                   "Read it next to faithfulness above: both ask whether a method's top words are what the model "
                   "depends on.")
    if report.fragility:
        st.markdown(f"**Fragility**: how much each method's answer moves under {report.fragility[0].variants} "
                    "meaning-preserving swap(s) that keep the prediction")
        st.dataframe(pd.DataFrame([{"method": f.method, f"top-{report.k} kept ↑": f.top_k_intersection,
                                    "Spearman ↑": f.spearman} for f in report.fragility]).round(3),
                     hide_index=True, width="stretch")
        for variant in report.variants:
            st.caption(f"Swapped text: {md(variant)}")
