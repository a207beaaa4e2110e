import streamlit as st

st.title("Compare")
st.info("The comparison view is being built; use `rashomon explain` meanwhile.")
