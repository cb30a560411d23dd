import streamlit as st

from vae_app import forms, session
from vae_app.components import feed_name, live_chart
from vae_app.guard import guarded
from vae_app.text import plain
from vae_app.views import pool
from vae_app.views import train as views
from vae_app.views.home import dataset_table
from vae_app.workers import PoolFull
from vae_core import TrainConfig

st.title("Train")
owner = session.owner()
attached = pool().get(session.run_dir())
if attached is not None and st.session_state.get(session.FORM_SHOWS) != str(attached.run_dir):
    forms.fill(TrainConfig.from_dict(attached.config))  # the settings of the run this page follows
    st.session_state[session.FORM_SHOWS] = str(attached.run_dir)
frey_here = dataset_table().set_index("dataset")["available"]["frey"]
config = forms.train_form(TrainConfig(dataset="frey" if frey_here else "digits"))
if config is not None:
    try:
        worker = pool().start(config, owner)
        session.follow(worker.run_dir)
        st.session_state[session.FORM_SHOWS] = str(worker.run_dir)
    except PoolFull as e:
        st.error(f"Cannot start: {plain(e)}")


@st.fragment(run_every=1.0 if pool().active_workers() else None)
@guarded
def reattach():
    """Runs still training whose page was closed or reloaded can be taken back; others' are only listed."""
    for other in pool().active_workers():
        if other.owner == owner or other.orphaned:
            if st.button(f"Re-attach to {plain(other.run_dir.name)} ({other.state})", key=str(other.run_dir)):
                pool().attach(other, owner)
                session.follow(other.run_dir)
                st.rerun()
        else:
            st.caption(f"{plain(other.run_dir.name)} is training in another open session.")


worker = pool().get(session.run_dir())
if worker is None:
    reattach()
    st.stop()

st.subheader(f"Run {plain(worker.run_dir.name)}")
drawn_state = worker.state  # what this run of the page draws; an app thread following the run updates it
pause, resume, stop = st.columns(3)
if pause.button("Pause", disabled=drawn_state != "running", width="stretch", key="pause"):
    worker.pause()
if resume.button("Resume", disabled=drawn_state != "paused", width="stretch", key="resume"):
    worker.resume()
if stop.button("Stop", disabled=not drawn_state.active, width="stretch", key="stop"):
    worker.stop()
log_x = st.toggle("Log-scale x axis", value=True, key="log_x", help="the paper draws its curves on a log axis")
smoothing = st.slider("Smoothing", 0.0, 0.99, 0.6, key="smoothing",
                      help="an exponential moving average of the minibatch bounds: 0 shows them raw")


# The progress line and the charts fetch the run's feed themselves, once a second while it trains, and ask for a rerun
# when its state changes: following a run costs no rerun of this page.
live_chart()(feed=feed_name(worker.run_dir), state=str(drawn_state), active=drawn_state.active, log_x=log_x,
             smoothing=smoothing, key="live_charts", default=None)


@st.fragment(run_every=views.GALLERY_SECONDS if drawn_state.active else None)
@guarded
def live_view():
    """Every few seconds: this session is still here, what the run says, and the gallery of its latest snapshot."""
    worker.touch(owner)
    if worker.message or worker.feed.problem:
        (st.error if worker.state == "failed" else st.caption)(plain(worker.message or worker.feed.problem))
    if worker.state != drawn_state:
        st.rerun()  # the whole page, so the buttons follow the new state
    if worker.snapshot is not None:
        images = views.gallery(worker)
        left, right = st.columns(2)
        left.image(images["reconstructions"], caption="test images (top) and their reconstructions (bottom)")
        right.image(images["samples"], caption="samples from the prior, decoded")


live_view()
