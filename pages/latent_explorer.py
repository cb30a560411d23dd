import streamlit as st

st.title("Latent explorer")
st.info("Coming next: the learned 2-D manifold of Fig. 4, a morph pad that decodes as you drag, interpolations, "
        "samples from the prior (Fig. 5) and reconstructions, for the run you are training or a saved one.")
