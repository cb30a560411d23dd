import streamlit as st

import pages  # noqa: F401  (first: see pages/__init__.py)

from vae_app import figures, images
from vae_app.components import morph_pad
from vae_app.guard import guarded
from vae_app.sources import LiveRun, model_sources
from vae_app.views import explorer as views
from vae_app.views import pool
from vae_core import data

st.title("Latent explorer")
sources = model_sources(pool().get(st.session_state.get("run_dir", "")))
if not sources:
    st.info("No model yet: ship one in assets/models, or train one on the Train page.")
    st.stop()
shared = st.query_params.get("model")  # a shared link names its model
if "model" not in st.session_state and shared in sources:
    st.session_state["model"] = shared
name = st.selectbox("Model", list(sources), help="a shipped pretrained model, a saved run, or the run training now",
                    key="model")
st.query_params["model"] = name
live = isinstance(sources[name], LiveRun)
follow = live and st.toggle("Follow the training live", value=True, key="follow",
                            help="redraw with the run's newest parameters every two seconds; off: keep this snapshot")
if live:  # frozen: keep the snapshot seen when the toggle went off
    if follow or "frozen" not in st.session_state:
        st.session_state["frozen"] = sources[name].snapshot
    sources[name] = LiveRun(sources[name].run_dir, sources[name].dataset, st.session_state["frozen"])


def pad_tab(space):
    """The morph pad on a plane of z (the first two dimensions, or a chosen pair around a test image's encoding)."""
    plane, around, tested = "", 0, space.has_test_set
    if space.latent_dim > 2:
        left, right = st.columns(2)
        plane = left.selectbox("Pad moves", views.pad_plane_choices(space), key="plane")
        if tested:
            around = right.number_input("around the encoding of test image", 0, space.test_size - 1, 0, key="around",
                                        help="the pad's centre: the mean of q(z|x) for this test image")
    base, directions, dims_text = views.pad_plane(space, plane, around)
    st.caption(f"Drag on the pad (moving {dims_text}) or the sliders: the browser decodes as you move. Click a "
               f"test point to pick it: its q(z|x) is drawn at 1σ and 2σ."
               + ("" if tested else " The encoded test set is not drawn beneath it: its data is not here."))
    view = f"{name}|{plane}|{around}"  # while it stays the same, the pad keeps its position
    shared_position = st.query_params.get("pad", "0,0").split(",")
    position = [float(v) for v in shared_position] if len(shared_position) == 2 else [0.0, 0.0]
    moved = morph_pad()(config=views.pad(space, base, directions, view, position), key="pad", default=None)
    if moved and moved["view"] == view:
        st.query_params["pad"] = f"{moved['a']:.3f},{moved['b']:.3f}"  # shareable, and kept over a reload


def manifold_tab(space):
    """Fig. 4: the decoded grid of z, at first as many images a side as the dataset's spec says."""
    left, right = st.columns(2)
    grid = left.slider("Grid size", 5, 30, data.dataset_spec(space.dataset).manifold_grid, key="grid",
                       help="images per side of the grid (Fig. 4 uses 20)")
    edge = right.slider("Range (quantile at the edge)", 0.01, 0.2, 0.05, key="edge",
                        help="Fig. 4: a linear grid on the unit square mapped through the inverse CDF of N(0, 1); "
                             "this is where the grid starts and ends, as a quantile of the prior")
    figure, mosaic, zs, cells = figures.manifold_figure(space, grid, edge)
    event = st.plotly_chart(figure, on_select="rerun", selection_mode="points", key="manifold")
    st.download_button("Download PNG", images.png(mosaic), file_name=f"{space.label}-manifold.png", mime="image/png")
    picked = event.selection.points if event and event.selection else []
    if picked:
        index = picked[0]["point_index"]
        st.image(images.png(cells[index], scale=8), caption=f"z = {views.format_z(zs[index])}")


@st.fragment(run_every=2.0 if follow else None)
@guarded
def explore():
    source = sources[name]
    if follow:  # the worker's latest snapshot
        worker = pool().get(source.run_dir)
        source = LiveRun(source.run_dir, source.dataset, worker.snapshot)
    space = views.latent_space(source)
    if source.card:
        with st.expander("Model card"):
            st.markdown(source.card)
    pad, manifold, between, samples, recon, scatter = st.tabs(
        ["Morph pad", "Manifold (Fig. 4)", "Interpolation", "Samples (Fig. 5)", "Reconstructions", "Latent scatter"])
    J, tested = space.latent_dim, space.has_test_set
    with pad:
        pad_tab(space)
    with manifold:
        manifold_tab(space)
    with between:
        if tested:
            left, right = st.columns(2)
            first = left.number_input("From test image", 0, space.test_size - 1, 0, key="from",
                                      help="the path starts at this image's encoding (the mean of q(z|x))")
            second = right.number_input("To test image", 0, space.test_size - 1, 1, key="to",
                                        help="and goes in a straight line in z to this one's")
            st.image(views.strip(space.interpolation(first, second, 12), space.image_shape), caption="decoded path")
        else:
            st.info(views.needs_test_set(space))
    with samples:
        if st.button("Reseed", key="reseed"):
            st.session_state["seed"] = st.session_state.get("seed", 0) + 1
        chosen = st.multiselect("Side by side (Fig. 5)", list(sources), default=[name], key="side_by_side")
        for column, other in zip(st.columns(max(1, len(chosen))), chosen):
            other_space = views.latent_space(sources[other])
            column.image(views.sample_mosaic(other_space, st.session_state.get("seed", 0)),
                         caption=f"{other} (J = {other_space.latent_dim})")
    with recon:
        if tested:
            st.image(views.reconstruction_mosaic(space), caption="test images (odd rows) and reconstructions (even rows)")
        else:
            st.info(views.needs_test_set(space))
    with scatter:
        if not tested:
            st.info(views.needs_test_set(space))
            return
        method = st.radio("Projection", ["pca", "tsne"], horizontal=True, key="projection",
                          help="J > 2: the encodings' first two principal components, or a t-SNE map of 2000 of them"
                          ) if J > 2 else "pca"
        event = st.plotly_chart(figures.scatter_figure(space, method), on_select="rerun", selection_mode="points",
                                key="scatter")
        picked = event.selection.points if event and event.selection else []
        if picked:
            index = picked[0]["point_index"]
            st.image(images.png(space.test_images([index])[0], scale=8), caption=f"test image {index}")

explore()
