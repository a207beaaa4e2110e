"""Rashomon core: everything the dashboard does, drivable from Python without Streamlit."""

__version__ = "0.1.0"
