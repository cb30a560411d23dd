import streamlit as st

import pages  # noqa: F401  (first: see pages/__init__.py)

from vae_core import DATASETS, views
from vae_core.variance import GRADIENT_ESTIMATORS
from vae_core.workers import pool

st.title("Estimator variance")
st.caption("R replicates of each estimator at each L, on one fixed minibatch of M datapoints; every figure is "
           "per datapoint and measured, not derived. The paper's claim: reparameterised estimators (A, B) have "
           "low variance, B typically lower than A; the score-function estimator very high.")
sources = views.variance_sources(pool().get(st.session_state.get("run_dir", "")), DATASETS)
left, right = st.columns(2)
first = left.selectbox("Model", list(sources))
second = right.selectbox("Compare with (optional)", ["none"] + list(sources))
with st.form("settings"):
    a, b, c = st.columns(3)
    M = a.number_input("Minibatch M", value=10, step=1)
    R = b.number_input("Replicates R", value=100, step=10)
    Ls = c.text_input("Values of L", value="1 2 5 10 20 50 100")
    estimators = st.multiselect("Gradient estimators", GRADIENT_ESTIMATORS, default=list(GRADIENT_ESTIMATORS))
    go = st.form_submit_button("Compute", type="primary")

chosen = [first] + ([second] if second != "none" else [])
if go:
    try:
        settings = views.variance_settings(M, R, Ls, estimators)
        for name in chosen:
            bar = st.progress(0.0, text=f"measuring {name}")
            views.variance_cached(sources[name], settings, lambda f, bar=bar, name=name: bar.progress(f, text=f"measuring {name}"))
            bar.progress(1.0, text=f"measured {name}")
        st.session_state["variance"] = (chosen, settings)
    except (ValueError, FileNotFoundError) as e:
        st.error(f"Cannot compute: {e}")

if "variance" in st.session_state:
    names, settings = st.session_state["variance"]
    results = {name: views.variance_cached(sources[name], settings) for name in names if name in sources}
    quantity = st.radio("Variance of", ["value (lower bound)", "gradient wrt φ (encoder)", "gradient wrt θ (decoder)"],
                        horizontal=True)
    st.plotly_chart(views.variance_figure(results, quantity))
    st.plotly_chart(views.snr_figure(results))
    table = views.variance_table(results)
    st.dataframe(table, hide_index=True, width="stretch")
    st.download_button("Download CSV", table.to_csv(index=False).encode(), file_name="estimator-variance.csv",
                       mime="text/csv")
    st.markdown(views.variance_summary(results))
