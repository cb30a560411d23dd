import streamlit as st

st.title("Estimator variance")
st.info("Coming next: the variance and signal-to-noise ratio of the SGVB estimators A and B, the score-function "
        "estimator and the importance-weighted bound, measured against the number of samples L.")
