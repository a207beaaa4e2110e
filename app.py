"""Rashomon: one input, several explanation methods, their disagreement made visible."""

import streamlit as st

st.set_page_config(page_title="Rashomon", page_icon="🎭", layout="wide")

navigation = st.navigation([
    st.Page("pages/home.py", title="Home", icon="🏠", default=True, url_path="home"),
    st.Page("pages/snapshots.py", title="Snapshots", icon="🔗", url_path="snapshots"),
    st.Page("pages/compare.py", title="Compare", icon="⚖️", url_path="compare"),
    st.Page("pages/corpus.py", title="Corpus", icon="📚", url_path="corpus"),
    st.Page("pages/checks.py", title="Checks", icon="🧪", url_path="checks"),
])
navigation.run()
