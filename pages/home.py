import streamlit as st

from vae_core import views

st.title("Auto-Encoding Variational Bayes, live")
st.markdown("""
A variational autoencoder (Kingma & Welling, 2014) learns an encoder q(z|x) and a decoder p(x|z) together by
maximising a lower bound on log p(x), the ELBO, with the reparameterisation z = μ + σ ⊙ ε that makes its
gradient a low-variance Monte Carlo estimate (the SGVB estimator).

- **Train**: pick Frey Face, MNIST or the small digits set, press Start, and watch the bound climb.
- **Latent explorer**: the learned 2-D manifold, samples and reconstructions (coming in the next release).
- **Estimator variance**: how the estimators' variance falls with the number of samples L (coming next).
- **Runs**: every run you trained, compared side by side, with metrics and models to download.
""")
st.subheader("Datasets on this machine")
table = views.dataset_table()
st.dataframe(table, hide_index=True, width="stretch")
if not table["available"].all():
    st.info("Missing data can be fetched with `python -m vae_core data`, or point `VAE_DATA_DIR` at a folder "
            "holding `mnist/` and `frey/`. The `digits` set ships with scikit-learn and always works.")
