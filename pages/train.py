import uuid

import streamlit as st

from pages import live_chart  # first: see pages/__init__.py

from vae_core import DATASETS, plots, views
from vae_core.training import TrainConfig
from vae_core.workers import ACTIVE_STATES, PoolFull, pool

st.title("Train")
owner = st.session_state.setdefault("owner", uuid.uuid4().hex)
defaults = TrainConfig()

with st.form("config"):
    left, middle, right = st.columns(3)
    available = views.dataset_table().set_index("dataset")["available"]
    dataset = left.selectbox("Dataset", DATASETS, index=DATASETS.index("frey") if available["frey"] else DATASETS.index("digits"))
    latent_dim = left.number_input("Latent dimensions J", value=defaults.latent_dim, step=1)
    hidden_dim = left.number_input("Hidden units (0: the paper's, 500 MNIST / 200 otherwise)", value=0, step=50)
    estimator = middle.radio("Estimator", ["B", "A"], horizontal=True, help="B: analytic KL (eq. 7); A: eq. 6")
    samples_per_point = middle.number_input("Samples per datapoint L", value=defaults.samples_per_point, step=1)
    batch_size = middle.number_input("Minibatch M", value=defaults.batch_size, step=10)
    optimizer = right.selectbox("Optimizer", ["adagrad", "adam"])
    lr = right.text_input("Step size ('auto' tries 0.01, 0.02, 0.1)", value="auto")
    samples = right.text_input("Training samples to evaluate", value="1e6")
    seed = right.number_input("Seed", value=defaults.seed, step=1)
    if st.form_submit_button("Start training", type="primary"):
        try:
            config = views.train_config(dataset, latent_dim, hidden_dim, estimator, samples_per_point, batch_size,
                                        optimizer, lr, samples, seed)
            st.session_state["run_dir"] = str(pool().start(config, owner).run_dir)
        except (ValueError, PoolFull) as e:
            st.error(f"Cannot start: {e}")



@st.fragment(run_every=1.0 if pool().active_workers() else None)
def reattach():
    """Runs still training whose page was closed or reloaded can be taken back; others' are only listed."""
    for other in pool().active_workers():
        if other.owner == owner or other.orphaned:
            if st.button(f"Re-attach to {other.run_dir.name} ({other.state})", key=str(other.run_dir)):
                pool().attach(other, owner)
                st.session_state["run_dir"] = str(other.run_dir)
                st.rerun()
        else:
            st.caption(f"{other.run_dir.name} is training in another open session.")


worker = pool().get(st.session_state.get("run_dir", ""))
if worker is None:
    reattach()
    st.stop()

st.subheader(f"Run {worker.run_dir.name}")
drawn_state = worker.state  # what this run of the page draws; an app thread following the run updates it
pause, resume, stop = st.columns(3)
if pause.button("Pause", disabled=drawn_state != "running", width="stretch"):
    worker.pause()
if resume.button("Resume", disabled=drawn_state != "paused", width="stretch"):
    worker.resume()
if stop.button("Stop", disabled=drawn_state not in ACTIVE_STATES, width="stretch"):
    worker.stop()
log_x = st.toggle("Log-scale x axis", value=True)
smoothing = st.slider("Smoothing", 0.0, 0.99, 0.6)


@st.fragment(run_every=0.5 if drawn_state in ACTIVE_STATES else None)
def live_view():
    worker.touch(owner)
    progress = views.progress(worker)
    st.progress(progress["fraction"], text=progress["text"])
    if worker.message:
        (st.error if worker.state == "failed" else st.caption)(worker.message)
    if worker.rows:
        curves = plots.learning_curves({"run": worker.rows}, log_x, smoothing)
        terms = plots.bound_terms(worker.rows, log_x, smoothing)
        left, right = st.columns(2)
        with left:
            live_chart(figure=plots.to_json(curves), key="curves")
        with right:
            live_chart(figure=plots.to_json(terms), key="terms")
    if worker.state != drawn_state:
        st.rerun()  # the whole page, so the buttons and the gallery follow the new state


@st.fragment(run_every=2.0 if drawn_state in ACTIVE_STATES else None)  # parameter snapshots arrive every two seconds
def gallery():
    if worker.snapshot is not None:
        images = views.gallery_cached(worker.snapshot, worker.config["dataset"])
        left, right = st.columns(2)
        left.image(images["reconstructions"], caption="test images (top) and their reconstructions (bottom)")
        right.image(images["samples"], caption="samples from the prior, decoded")


live_view()
gallery()
