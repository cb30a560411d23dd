import numpy as np
import streamlit as st

import pages  # noqa: F401  (first: see pages/__init__.py)

from vae_core import explorer as ex
from vae_core import views
from vae_core.workers import pool

st.title("Latent explorer")
sources = views.explorer_sources(pool().get(st.session_state.get("run_dir", "")))
if not sources:
    st.info("No model yet: ship one in assets/models, or train one on the Train page.")
    st.stop()
name = st.selectbox("Model", list(sources), help="a shipped pretrained model, a saved run, or the run training now")
follow = sources[name]["live"] and st.toggle("Follow the training live", value=True)
if sources[name]["live"]:  # frozen: keep the snapshot seen when the toggle went off
    if follow or "frozen" not in st.session_state:
        st.session_state["frozen"] = sources[name]["worker"].snapshot
    sources[name] = views.frozen_source(sources[name], None if follow else st.session_state["frozen"])


@st.fragment(run_every=2.0 if follow else None)
def explore():
    model = views.explorer_for(sources[name])
    if sources[name].get("card"):
        with st.expander("Model card"):
            st.markdown(sources[name]["card"])
    pad, manifold, between, samples, recon, scatter = st.tabs(
        ["Morph pad", "Manifold (Fig. 4)", "Interpolation", "Samples (Fig. 5)", "Reconstructions", "Latent scatter"])
    J = model.latent_dim
    with pad:
        if J > 2:
            left, right = st.columns(2)
            plane = left.selectbox("Pad moves", views.pad_plane_choices(J), key="plane")
            around = right.number_input("around the encoding of test image", 0, model.test_size - 1, 0)
        base, directions, dims_text = views.pad_plane(model, plane if J > 2 else "", around if J > 2 else 0)
        st.caption(f"Drag on the pad (moving {dims_text}) or the sliders: the browser decodes as you move.")
        st.iframe(views.pad_html(model, base, directions), height=330)
    with manifold:
        left, right = st.columns(2)
        grid = left.slider("Grid size", 5, 30, 20)
        edge = right.slider("Range (quantile at the edge)", 0.01, 0.2, 0.05)
        figure, mosaic, zs, images = views.manifold_view(model, grid, edge)
        event = st.plotly_chart(figure, on_select="rerun", selection_mode="points", key="manifold")
        st.download_button("Download PNG", ex.image_png(mosaic), file_name=f"{name}-manifold.png", mime="image/png")
        picked = event.selection.points if event and event.selection else []
        if picked:
            index = picked[0]["point_index"]
            st.image(ex.image_png(images[index], scale=8), caption=f"z = {np.round(zs[index], 2).tolist()}")
    with between:
        left, right = st.columns(2)
        first = left.number_input("From test image", 0, model.test_size - 1, 0)
        second = right.number_input("To test image", 0, model.test_size - 1, 1)
        st.image(views.strip(model.interpolation(first, second, 12), model.image_shape), caption="decoded path")
    with samples:
        if st.button("Reseed"):
            st.session_state["seed"] = st.session_state.get("seed", 0) + 1
        chosen = st.multiselect("Side by side (Fig. 5)", list(sources), default=[name])
        for column, other in zip(st.columns(max(1, len(chosen))), chosen):
            other_model = views.explorer_for(sources[other])
            column.image(views.sample_mosaic(other_model, st.session_state.get("seed", 0)),
                         caption=f"{other} (J = {other_model.latent_dim})")
    with recon:
        st.image(views.reconstruction_mosaic(model), caption="test images (odd rows) and reconstructions (even rows)")
    with scatter:
        method = st.radio("Projection", ["pca", "tsne"], horizontal=True) if J > 2 else "pca"
        points = views.scatter_view(model, method)
        event = st.plotly_chart(points, on_select="rerun", selection_mode="points", key="scatter")
        picked = event.selection.points if event and event.selection else []
        if picked:
            index = picked[0]["point_index"]
            st.image(ex.image_png(model.test_images([index])[0], scale=8), caption=f"test image {index}")


explore()
