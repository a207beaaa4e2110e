"""Rashomon: one input, several explanation methods, their disagreement made visible."""

import streamlit as st

from pages.widgets.people import show_person, who_is_here
from pages.widgets.resources import ensure_task_workers
from pages.widgets.ui import show_flashes

st.set_page_config(page_title="Rashomon", page_icon="🎭", layout="wide")
# url_path keeps the addresses of the first release, so shared links keep working.
page = st.navigation([
    st.Page("pages/home.py", title="Home", icon="🏠", default=True),
    st.Page("pages/snapshots.py", title="Snapshots", icon="🔗", url_path="Snapshots"),
    st.Page("pages/compare.py", title="Compare", icon="⚖️", url_path="Compare"),
    st.Page("pages/document.py", title="Whole document", icon="📄", url_path="Document"),
    st.Page("pages/corpus.py", title="Corpus", icon="📚", url_path="Corpus"),
    st.Page("pages/evaluation.py", title="Evaluation", icon="🎯", url_path="Evaluation"),
    st.Page("pages/training_data.py", title="Training data", icon="🧬", url_path="Training_data"),
    st.Page("pages/models.py", title="Model vs model", icon="🆚", url_path="Models"),
    st.Page("pages/checks.py", title="Checks", icon="🧪", url_path="Checks"),
    st.Page("pages/findings.py", title="Findings", icon="📌", url_path="Findings"),
])
show_person(who_is_here())  # before anything is stored: every row this run makes records this person
ensure_task_workers()  # this server's worker processes: page work runs there, not in the page
show_flashes()
page.run()
