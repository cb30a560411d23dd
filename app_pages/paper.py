import contextlib

import streamlit as st

from vae_app import session
from vae_app.guard import guarded
from vae_app.text import plain
from vae_app.views import paper as views
from vae_app.views import pool
from vae_app.workers import PoolFull
from vae_core import paper
from vae_core.config import parse_sample_count

st.title("The paper's figures")
st.caption("Kingma & Welling's Figures 2 and 3, drawn from the runs on this machine that use the paper's settings "
           "(Section 5: the Appendix C networks, M = 100, L = 1, estimator B, Adagrad, the N(0, I) prior on θ). "
           "Every run and seed is a line. Each panel frames its curves from 10⁴ samples on; a chart's autoscale "
           "button shows its first evaluations too.")
curves = views.curves(views.records())
log_x = st.toggle("Log-scale x axis", value=True, key="log_x")
captions = {
    paper.FIGURE_2: "Beyond the paper: IWAE runs with these settings (`python -m vae_core train --dataset mnist "
                    "--latent-dim 20 --algorithm iwae --iw-k 5`) are drawn too, a colour per K: their ELBO, which "
                    "compares with AEVB's and wake-sleep's, and dotted the IW bound L_K they train on (Burda et al. "
                    "2016), which lies above it.",
    paper.FIGURE_3: "Appendix D's estimate of log p(x) on the first 1000 training and test points, MNIST with 100 "
                    "hidden units and J = 3, trained on 1000 and on 50000 points.",
    paper.APPENDIX_F: "A Gaussian posterior q(θ) over the decoder's parameters too, trained by Algorithm 2; its line is "
                      "the bound of the mean network. Train one with `python -m vae_core train --dataset frey "
                      "--latent-dim 2 --algorithm full-vb --vb-logvar=-6`; each initial log-variance gets a colour."}
for figure in views.SHOWN:
    st.subheader(figure.title)
    if figure in captions:
        st.caption(captions[figure])
    charts = views.draw(figure, curves[figure], log_x)
    if charts["lines"]:
        st.html(views.legend_html(charts["lines"]))
    panels = list(charts["panels"].items())
    for first in range(0, len(panels), figure.columns):  # the paper's rows, each wrapping where the page is narrow
        with st.container(horizontal=True):
            for panel, chart in panels[first:first + figure.columns]:
                st.plotly_chart(chart, key=f"{figure.name} {panel.label}", width="content")

st.subheader("The paper's claims, as your runs measure them")
st.dataframe(views.claims_table(curves), hide_index=True, width="stretch")

missing = views.missing_table(curves)
st.subheader("Missing runs")
owner = session.owner()
jobs = [job for job in pool().sweeps if job.owner == owner]


@st.fragment(run_every=2.0 if any(job.active for job in jobs) else None)
@guarded
def sweeping():
    """The session's sweeps: how far each is, on local Ray."""
    for job in jobs:
        counts = job.progress()
        done = counts["finished"] + counts["failed"]
        st.progress(done / len(job.trials), text=f"sweep {plain(job.sweep_dir.name)} of {len(job.trials)} runs, "
                    f"{job.slots} at a time on local Ray: {counts['finished']} finished, "
                    f"{counts['failed']} failed, {counts['training']} training, {counts['waiting']} waiting"
                    + ("" if job.active else " (ended)"))
        if job.active and st.button("Stop this sweep", key=f"stop {job.sweep_dir.name}"):
            job.stop()


if missing.empty:
    st.success("Every configuration of Figures 2 and 3 has a run of each algorithm.")
else:
    st.dataframe(missing, hide_index=True)
    left, right = st.columns([1, 2])
    budget = left.text_input("Training samples per run", value="1e6", key="missing_budget",
                             help="the paper's x axis goes to 10^8; 10^6 takes about a minute per MNIST run here")
    busy = any(j.active for j in jobs)  # one sweep at a time: a second click, or a double one, starts nothing more
    with contextlib.suppress(ValueError):  # a budget that is no number of samples: the button says so
        cost = views.missing_cost(curves, parse_sample_count(budget), views.records(), pool().max_workers - pool().busy)
        if cost:
            left.caption(cost)
    if right.button("Train what is missing", key="train_missing", type="primary", disabled=busy) and not busy:
        try:
            sweep_dir = views.missing_sweep(curves, parse_sample_count(budget))
            if sweep_dir is None:
                st.info("The missing runs need data that is not on this machine (see Home).")
            else:
                pool().start_sweep(sweep_dir, owner)
                st.rerun()  # at once: the button off, and the sweep's progress below it
        except (ValueError, PoolFull) as e:
            st.error(f"Cannot start: {plain(e)}")
sweeping()

st.subheader("Figures 4 and 5")
st.page_link("app_pages/latent_explorer.py", label="The learned manifolds (Fig. 4) and samples (Fig. 5): the Latent explorer",
             icon=":material/scatter_plot:")
