"""Compare's "Attention seen whole" section: the layer x head grid, one head's token-to-token view, head importance."""

import streamlit as st

from core import charts
from core.analyses.attention_checks import stored_head_importance
from core.analyses.attention_views import stored_attention_view
from core.methods.attention import needs_attentions
from core.render import md
from pages.widgets.resources import engine, task_button


@st.fragment  # its widgets rerun this section only, not the whole comparison above it
def show(runner, text: str, target: str) -> None:
    st.subheader("Attention seen whole")
    if not st.toggle("Show every layer and head", key="attention_whole",
                     help="One model pass: the attention of every head in every layer, and who attends to whom."):
        return
    reason = needs_attentions(runner.loaded)
    if reason:
        st.error(md(f"No attention to show for {runner.loaded.name}: {reason}."))
        return
    view = stored_attention_view(engine(), runner, text, only_stored=True)
    if view is None:  # one pass on a worker, stored; the page draws what is stored
        task_button("Compute every layer and head (one model pass)", "attention_view", {"text": text}, runner,
                    titles={"attention": "Every layer and head"}, key="attention_view")
        view = stored_attention_view(engine(), runner, text, only_stored=True)
        if view is None:
            return
    tokens = view.tokens
    query = st.selectbox("Attention from token", range(len(tokens)), key="attention_query",
                         format_func=lambda i: f"{i}: {tokens[i]}",
                         help="Classifiers like this one read the first token ([CLS]); its row is what they use.")
    st.altair_chart(charts.attention_grid(view, query), width="content")
    st.caption(f"Each panel is a layer, each strip a head: how much '{md(tokens[query])}' attends to every token "
               "(darker = more). Scroll sideways on long inputs; every token is labelled.")
    left, right = st.columns(2)
    layer = left.number_input("Layer", 0, view.layers - 1, view.layers - 1, key="attention_layer")
    head = right.number_input("Head", 0, view.heads - 1, 0, key="attention_head")
    minimum = st.slider("Hide lines below this weight", 0.0, 0.5, 0.02, 0.01, key="attention_min")
    st.altair_chart(charts.head_view(view, int(layer), int(head), minimum), width="content")

    heads = view.layers * view.heads
    result = stored_head_importance(engine(), runner, text, target or None, only_stored=True)
    if result is None:  # silencing each head in turn (Michel et al. 2019) runs on a worker
        task_button(f"Head importance ({heads} model passes)", "head_importance", {"text": text, "target": target or ""},
                    runner, titles={"heads": "Silencing each head in turn"}, key="attention_heads", primary=False)
        result = stored_head_importance(engine(), runner, text, target or None, only_stored=True)
    if result is not None:
        st.altair_chart(charts.head_importance(result), width="content")
        strongest = ", ".join(f"layer {la} head {h} ({e:+.3f})" for la, h, e in result.most_important(3))
        flips = sum(sum(row) for row in result.flipped)
        st.caption(f"Change in p({md(result.target)}) = {result.probability:.3f} when each head is silenced; "
                   f"{result.forward_passes} model passes, {result.seconds:.2f} s. Strongest: {strongest}. "
                   + (f"Silencing {flips} head(s) alone flips the predicted label." if flips
                      else "No single head flips the predicted label."))
