"""Thin Streamlit pages: they read widgets, call `core`, and draw what it returns.

`app.py` lists them with `st.navigation`; `resources.py` holds the cached engine, models and job
runner, and `ui.py` the widgets and adapters the pages share.
"""
