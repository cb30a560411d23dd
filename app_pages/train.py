import os

import streamlit as st

from vae_app import forms, session
from vae_app.components import live_chart
from vae_app.guard import guarded
from vae_app.text import plain
from vae_app.views import pool
from vae_app.views import train as views
from vae_app.views.home import dataset_table
from vae_app.workers import PoolFull
from vae_core import DataError, TrainConfig

st.title("Train")
owner = session.owner()
mine = [w for w in pool().active_workers() if w.owner == owner]
if pool().get(session.run_dir()) is None and mine:  # a reloaded page: this browser's own run, followed at once
    session.follow(mine[0].run_dir)
attached = pool().get(session.run_dir())
if attached is not None and st.session_state.get(session.FORM_SHOWS) != str(attached.run_dir):
    forms.fill(TrainConfig.from_dict(attached.config))  # the settings of the run this page follows
    st.session_state[session.FORM_SHOWS] = str(attached.run_dir)
frey_here = dataset_table().set_index("dataset")["available"]["frey"]
defaults = TrainConfig(dataset="frey" if frey_here else "digits")


def own_data_path() -> str | None:
    """The user's data: an upload (kept on the server, so that its runs find it again) or a path on the server."""
    limit = st.get_option("server.maxUploadSize")
    if st.radio("From", ["an upload", "a path on this server"], horizontal=True, key="own_from") == "a path on this server":
        return st.text_input("Path on this server", key="own_path",
                             placeholder="/data/faces, ~/fashion-mnist, ./digits.npz").strip() or None
    upload = st.file_uploader(f"A file of data, at most {limit} MB", type=list(views.UPLOAD_TYPES), key="own_upload",
                              help=f"the server takes uploads of up to {limit} MB (its server.maxUploadSize); larger "
                                   f"data: put it on the server and give its path")
    if upload is None:
        return None
    kept = st.session_state.get(session.UPLOADED)
    if kept is None or kept[0] != upload.file_id:
        kept = st.session_state[session.UPLOADED] = (upload.file_id, str(views.stored_upload(upload.name,
                                                                                              upload.getvalue())))
    return kept[1]


def own_data() -> None:
    """What the project makes of the user's data, before Start. Once given, the form's dataset is it, read or not:
    Start then trains on it, or says why it cannot (never on another dataset behind the user's back)."""
    with st.expander("Your own data", expanded=bool(st.session_state.get(session.OWN_DATA))):
        st.caption("A NumPy file (.npy, or .npz with x_train and x_test), a CSV of numbers (a row a datapoint) or a "
                   ".zip of images (PNG, JPEG); on the server also a folder of images or of IDX files (as Fashion-MNIST "
                   "ships). Values are scaled to [0, 1]; binary and grey data take the Bernoulli decoder, as the "
                   "paper's MNIST (Decoder p(x|z): gaussian for the Gaussian one).")
        path = own_data_path()
        forms.data_widgets(st.columns(2), defaults)
        if path is None:
            return
        given = os.path.abspath(os.path.expanduser(path))
        if st.session_state.get(session.OWN_DATA) != given:  # newly given: the form trains on it from now
            st.session_state[session.OWN_DATA] = given
            st.session_state[forms.widget_key("dataset")] = given
        try:
            rows, preview = views.inspection(given, st.session_state.get(forms.widget_key("image_size")) or "",
                                             st.session_state.get(forms.widget_key("scale"), "auto"),
                                             st.session_state.get(forms.widget_key("likelihood"), "auto"))
        except (DataError, ValueError) as e:  # the reader's message, naming the user's file: as text
            st.error(plain(str(e)), icon=":material/error:")
            return
        st.dataframe(rows, hide_index=True, width="stretch", key="own_inspection")
        if "image" in preview:
            st.image(preview["image"], caption="its first training images, as the VAE will see them")
        else:
            st.plotly_chart(preview["figure"], key="own_preview")
        st.caption("The form below trains on it (Dataset: your data); press Start training when it is set.")


live = st.container()  # the run this page follows, drawn above the form once it is known: the live run first
if attached is not None and attached.active:
    st.subheader("A new run")
starting = attached.run_dir.name if attached is not None and attached.state.starting else None
own_data()
config = forms.train_form(defaults, starting=starting)
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


@guarded
def live_view(worker, drawn_state):
    """Every few seconds: this session is still here, what the run says, and the gallery of its latest snapshot."""
    worker.touch(owner)
    if worker.message or worker.feed.problem:
        (st.error if worker.state == "failed" else st.caption)(plain(worker.message or worker.feed.problem))
    if worker.state != drawn_state:
        st.rerun()  # the whole page, so the buttons follow the new state
    if worker.snapshot is not None:
        images = views.gallery(worker)
        left, right = st.columns(2)
        if isinstance(images["samples"], dict):  # data that is not images: plots
            left.plotly_chart(images["reconstructions"], key="gallery_reconstructions")
            right.plotly_chart(images["samples"], key="gallery_samples")
            return
        left.image(images["reconstructions"], caption="test images (top) and their reconstructions (bottom)")
        right.image(images["samples"], caption="samples from the prior, decoded")


def run_view(worker) -> None:
    """The run this page follows: its controls, its live charts (which fetch the run's feed themselves, once a second
    while it trains, and ask for a rerun when its state changes: following a run costs no rerun of this page), its
    gallery."""
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
    live_chart()(feed=worker.feed.name, state=str(drawn_state), active=drawn_state.active, log_x=log_x,
                 smoothing=smoothing, key="live_charts", default=None)
    st.fragment(run_every=views.GALLERY_SECONDS if drawn_state.active else None)(live_view)(worker, drawn_state)


followed = pool().get(session.run_dir())
with live:
    if followed is None:
        reattach()
    else:
        run_view(followed)
