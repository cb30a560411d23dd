import streamlit as st

from vae_app import figures, session
from vae_app.glossary import help_for
from vae_app.guard import guarded
from vae_app.sources import model_sources
from vae_app.views import pool
from vae_app.views import variance as views
from vae_core import DATASETS, data
from vae_core.variance import GRADIENT_ESTIMATORS, TRADEOFF_K

st.title("Estimator variance")
st.caption("R replicates of each estimator at each L, on one fixed minibatch of M datapoints; every figure is "
           "per datapoint and measured, not derived. The paper's claim: reparameterised estimators (A, B) have "
           "low variance, B typically lower than A; the score-function estimator very high.")
sources = model_sources(pool().get(session.run_dir()),
                        untrained=tuple(d for d in DATASETS if data.available(d)))
left, right = st.columns(2)
first = left.selectbox("Model", list(sources), key="model")
second = right.selectbox("Compare with (optional)", ["none"] + list(sources), key="compare")
shown = st.session_state[session.VARIANCE][1] if session.VARIANCE in st.session_state else views.DEFAULT_SETTINGS
for key, value in views.form_values(shown).items():  # back on the page: the form shows what its results measured
    st.session_state.setdefault(key, value)
with st.form("settings"):
    a, b, c = st.columns(3)
    M = a.text_input("Minibatch M", key="M", help=help_for("M") + "\n\nAt most 10,000, and at most the "
                     "model's training set.")
    R = b.text_input("Replicates R", key="R",
                     help="Independent draws of each estimator at each L: the variances are measured over them.")
    Ls = c.text_input("Values of L", key="L", help=help_for("L"))
    estimators = st.multiselect("Gradient estimators", GRADIENT_ESTIMATORS, key="estimators",
                                help=help_for("Estimator A", "Estimator B", "Score function", "Baseline", "STL",
                                              "IW bound"))
    go = st.form_submit_button("Compute", type="primary", key="compute")
    views.cost_caption(sources[first], (M, R, Ls, estimators))

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


def measured(request: str, tradeoff: bool = False) -> dict:
    """The results of the page's request (the estimators against L, or the k trade-off), once every job is done;
    progress, and an empty dict, while they run."""
    names, settings = st.session_state[request]
    jobs = {name: views.measurement(sources[name], settings, tradeoff) for name in names if name in sources}
    for name, job in jobs.items():
        if job.error:
            st.error(f"Cannot compute {name}: {job.error}")
    if not all(job.done for job in jobs.values()):
        with st.container():  # a place of its own: each request's progress is a fragment of its own
            measuring(jobs)
        return {}
    return {name: job.result for name, job in jobs.items() if job.result is not None}


if session.VARIANCE in st.session_state:
    results = measured(session.VARIANCE)
    if results:
        quantity = st.radio("Variance of", list(figures.VARIANCE_QUANTITIES), horizontal=True, key="quantity")
        st.plotly_chart(figures.variance_figure(results, quantity))
        st.plotly_chart(figures.snr_figure(results))
        table = views.variance_table(results)
        st.dataframe(table, hide_index=True, width="stretch")
        st.download_button("Download CSV", table.to_csv(index=False).encode(), file_name="estimator-variance.csv",
                           mime="text/csv")
        st.markdown(views.variance_summary(results))
        st.caption(views.settings_said(next(iter(results.values()))))

st.divider()
st.subheader("The k trade-off: IWAE and DReG")
st.caption("The importance-weighted bound L_K of the model above (Burda et al. 2016), and the signal-to-noise ratio "
           "of its gradient as K grows: the decoder's, and the encoder's by the plain IWAE estimator and by DReG. R "
           "replicates at each K on one fixed minibatch of M, as above.")
with st.form("tradeoff_settings"):
    a, b, c = st.columns(3)
    iw_M = a.text_input("Minibatch M", value=str(views.DEFAULT_SETTINGS.batch_size), key="iw_M", help=help_for("M"))
    iw_R = b.text_input("Replicates R", value=str(views.DEFAULT_SETTINGS.repeats), key="iw_R",
                        help="Independent draws of each gradient at each K: the SNRs are measured over them.")
    iw_K = c.text_input("Values of K", value=" ".join(map(str, TRADEOFF_K)), key="iw_K",
                        help=help_for("IWAE", "DReG") + "\n\nUp to 10,000; K = 1000 takes minutes on a CPU for an "
                        "MNIST model.")
    go_tradeoff = st.form_submit_button("Compute the trade-off", key="compute_tradeoff")
    views.cost_caption(sources[first], (iw_M, iw_R, iw_K), tradeoff=True)
if go_tradeoff:
    try:
        st.session_state[session.IW_TRADEOFF] = ([first], views.variance_settings(iw_M, iw_R, iw_K, letter="K"))
    except ValueError as e:
        st.error(f"Cannot compute: {e}")
if session.IW_TRADEOFF in st.session_state:
    for name, result in measured(session.IW_TRADEOFF, tradeoff=True).items():
        st.plotly_chart(figures.iw_tradeoff_figure(result), key="tradeoff_snr")
        st.plotly_chart(figures.iw_bound_figure(result), key="tradeoff_bound")
        st.caption(views.TRADEOFF_EXPLAINED)
        st.caption(views.tradeoff_summary(result))
        st.caption(views.settings_said(result))
        table = views.variance_table({name: result})
        st.dataframe(table, hide_index=True, width="stretch", key="tradeoff_table")
        st.download_button("Download the trade-off's CSV", table.to_csv(index=False).encode(),
                           file_name="iw-tradeoff.csv", mime="text/csv", key="tradeoff_csv")
