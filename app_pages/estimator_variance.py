import streamlit as st

from vae_app import figures, session
from vae_app.glossary import help_for
from vae_app.guard import guarded
from vae_app.sources import model_sources
from vae_app.views import pool
from vae_app.views import variance as views
from vae_core import DATASETS, data
from vae_core.variance import GRADIENT_ESTIMATORS

st.title("Estimator variance")
st.caption("R replicates of each estimator at each L, on one fixed minibatch of M datapoints; every figure is "
           "per datapoint and measured, not derived. The paper's claim: reparameterised estimators (A, B) have "
           "low variance, B typically lower than A; the score-function estimator very high.")
sources = model_sources(pool().get(session.run_dir()),
                        untrained=tuple(d for d in DATASETS if data.available(d)))
left, right = st.columns(2)
first = left.selectbox("Model", list(sources), key="model")
second = right.selectbox("Compare with (optional)", ["none"] + list(sources), key="compare")
with st.form("settings"):
    a, b, c = st.columns(3)
    M = a.number_input("Minibatch M", value=10, step=1, key="M", help=help_for("M") + "\n\nAt most 10,000, and at "
                       "most the model's training set.")
    R = b.number_input("Replicates R", value=100, step=10, key="R",
                       help="Independent draws of each estimator at each L: the variances are measured over them.")
    Ls = c.text_input("Values of L", value="1 2 5 10 20 50 100", key="L", help=help_for("L"))
    estimators = st.multiselect("Gradient estimators", GRADIENT_ESTIMATORS, default=list(GRADIENT_ESTIMATORS),
                                key="estimators", help=help_for("Estimator A", "Estimator B", "Score function",
                                                                "Baseline", "STL", "IW bound"))
    go = st.form_submit_button("Compute", type="primary", key="compute")

chosen = [first] + ([second] if second != "none" else [])
if go:
    try:
        st.session_state[session.VARIANCE] = (chosen, views.variance_settings(M, R, Ls, estimators))
    except ValueError as e:
        st.error(f"Cannot compute: {e}")


@st.fragment(run_every=0.5)
@guarded
def measuring(jobs):
    """Progress while the measurements run in their own processes; the whole page again once they are done."""
    for name, job in jobs.items():
        st.progress(job.fraction, text=f"measuring {name}: {job.status()}")
    if all(job.done for job in jobs.values()):
        st.rerun()


if session.VARIANCE in st.session_state:
    names, settings = st.session_state[session.VARIANCE]
    jobs = {name: views.measurement(sources[name], settings) for name in names if name in sources}
    failed = {name: job.error for name, job in jobs.items() if job.error}
    for name, error in failed.items():
        st.error(f"Cannot compute {name}: {error}")
    if not all(job.done for job in jobs.values()):
        measuring(jobs)
        st.stop()
    results = {name: job.result for name, job in jobs.items() if job.result is not None}
    if results:
        quantity = st.radio("Variance of", list(figures.VARIANCE_QUANTITIES), horizontal=True, key="quantity")
        st.plotly_chart(figures.variance_figure(results, quantity))
        st.plotly_chart(figures.snr_figure(results))
        table = views.variance_table(results)
        st.dataframe(table, hide_index=True, width="stretch")
        st.download_button("Download CSV", table.to_csv(index=False).encode(), file_name="estimator-variance.csv",
                           mime="text/csv")
        st.markdown(views.variance_summary(results))
