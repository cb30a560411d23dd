import streamlit as st

from vae_app.glossary import TERMS, diagram
from vae_app.views import home

st.title("Auto-Encoding Variational Bayes, live")
st.markdown("""
A variational autoencoder (Kingma & Welling, 2014) learns an encoder q(z|x) and a decoder p(x|z) together by
maximising a lower bound on log p(x), the ELBO, with the reparameterisation z = μ + σ ⊙ ε that makes its
gradient a low-variance Monte Carlo estimate (the SGVB estimator).

- **Train**: pick Frey Face, MNIST or the small digits set, or bring your own data (images, arrays, a CSV), press
  Start, and watch the bound climb.
- **Latent explorer**: drag across the learned 2-D manifold and watch faces and digits morph (Fig. 4),
  samples (Fig. 5), reconstructions and interpolations; works at once with the shipped pretrained models.
- **Estimator variance**: measure how the variance of estimators A, B, the score function and others falls
  with the number of samples L, on any model at any point in training.
- **Runs**: every run you trained, compared side by side, with metrics and models to download.
- **Paper**: Figures 2 and 3 of the paper, drawn from your runs, and which of its claims they reproduce.
""")
st.graphviz_chart(diagram(dark=st.context.theme.type == "dark"))
st.caption("The model: the encoder proposes a Gaussian over z for an image; a sample z = μ + σ ⊙ ε (the "
           "reparameterisation) goes through the decoder; training maximises the reconstruction term minus the KL term.")
with st.expander("Glossary: every term the app uses"):
    st.markdown("\n".join(f"- **{term}**: {text}" for term, text in TERMS.items()))

st.subheader("Datasets on this machine")
table = home.dataset_table()
st.dataframe(table, hide_index=True, width="stretch")
if not table["available"].all():
    st.info("Missing data can be fetched with `python -m vae_core data`, or point `VAE_DATA_DIR` at a folder "
            "holding `mnist/` and `frey/`. The `digits` set ships with scikit-learn and always works.")
