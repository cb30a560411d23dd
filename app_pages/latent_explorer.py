import dataclasses

import streamlit as st

from vae_app import figures, images, session
from vae_app.components import morph_pad
from vae_app.guard import guarded
from vae_app.sources import LiveRun, model_sources
from vae_app.views import explorer as views
from vae_app.views import pool

st.title("Latent explorer")
sources = model_sources(pool().get(session.run_dir()))
if not sources:
    st.info("No model yet: ship one in assets/models, or train one on the Train page.")
    st.stop()
shared = st.query_params.get("model")  # a shared link names its model
if session.MODEL not in st.session_state and shared in sources:
    st.session_state[session.MODEL] = shared
name = st.selectbox("Model", list(sources), help="a shipped pretrained model, a saved run, or the run training now",
                    key=session.MODEL)
st.query_params["model"] = name
live = isinstance(sources[name], LiveRun)
follow = live and st.toggle("Follow the training live", value=True, key="follow",
                            help="redraw with the run's newest parameters every two seconds; off: keep this snapshot")
if live:  # frozen: keep the snapshot seen when the toggle went off
    if follow or session.FROZEN not in st.session_state:
        st.session_state[session.FROZEN] = sources[name].snapshot
    sources[name] = dataclasses.replace(sources[name], snapshot=st.session_state[session.FROZEN])


@st.fragment(run_every=2.0 if follow else None)
@guarded
def explore():
    """The chosen model's latent space, in six tabs; while following a live run, redrawn with its newest parameters."""
    source = sources[name]
    if follow:  # the worker's latest snapshot
        worker = pool().get(source.run_dir)
        source = dataclasses.replace(source, snapshot=worker.snapshot)
    space = views.latent_space(source)
    if source.card:
        with st.expander("Model card"):
            st.markdown(source.card)
    if space.is_image:
        tabs = {"Morph pad": morph_pad_tab, "Manifold (Fig. 4)": manifold_tab, "Interpolation": interpolation_tab,
                "Samples (Fig. 5)": samples_tab, "Reconstructions": reconstructions_tab, "Latent scatter": scatter_tab}
    else:  # rows of numbers, not images: plots of them
        tabs = {"Decoder": vector_decoder_tab, "Samples": vector_samples_tab, "Reconstructions": vector_reconstructions_tab,
                "Latent scatter": scatter_tab}
    # The open tab is drawn (a click on another reruns this fragment), and Fig. 4's beside it: its chart is what makes
    # the browser load Plotly, two seconds the first time, better spent while the pad is in view than after a click
    drawn = st.tabs(list(tabs), key=session.EXPLORER_TAB if space.is_image else session.EXPLORER_VECTOR_TAB,
                    on_change="rerun")
    for tab, (label, draw) in zip(drawn, tabs.items()):
        if tab.open or label == "Manifold (Fig. 4)":
            with tab:
                draw(space)


def morph_pad_tab(space):
    """The browser decodes as the pointer moves over a plane of z; its position is in the link, to share."""
    plane, around = "", 0
    if space.latent_dim > 2:
        left, right = st.columns(2)
        plane = left.selectbox("Pad moves", views.pad_plane_choices(space), key="plane")
        if space.has_test_set:
            around = right.number_input("around the encoding of test image", 0, space.test_size - 1, 0, key="around",
                                        help="the pad's centre: the mean of q(z|x) for this test image")
    base, directions, dims_text = views.pad_plane(space, plane, around)
    st.caption(f"Drag on the pad (moving {dims_text}) or the sliders: the browser decodes as you move. Click a "
               f"test point to pick it: its q(z|x) is drawn at 1σ and 2σ."
               + ("" if space.has_test_set else " The encoded test set is not drawn beneath it: its data is not here."))
    view = f"{name}|{plane}|{around}"  # while it stays the same, the pad keeps its position
    position = views.pad_position(st.query_params.get("pad", ""))
    moved = morph_pad()(config=views.pad(space, base, directions, view, position), key="pad", default=None)
    if moved and moved["view"] == view:
        st.query_params["pad"] = f"{moved['a']:.3f},{moved['b']:.3f}"  # shareable, and kept over a reload


def manifold_tab(space):
    """Fig. 4: the decoded grid over z, at first as many images a side as the dataset's spec says; a clicked cell
    shown large with its z."""
    left, right = st.columns(2)
    grid = left.slider("Grid size", 5, 30, space.manifold_grid, key="grid",
                       help="images per side of the grid (Fig. 4 uses 20)")
    edge = right.slider("Range (quantile at the edge)", 0.01, 0.2, 0.05, key="edge",
                        help="Fig. 4: a linear grid on the unit square mapped through the inverse CDF of N(0, 1); "
                             "this is where the grid starts and ends, as a quantile of the prior")
    figure, mosaic, axes, zs, cells = figures.manifold_figure(space, grid, edge)
    event = st.plotly_chart(figure, on_select="rerun", selection_mode="points", key="manifold")
    downloads(mosaic, f"{space.label}-manifold", "manifold", axes)
    index = views.picked_point(event)
    if index is not None:
        st.image(images.png(cells[index], scale=8), caption=f"z = {views.format_z(zs[index])}")


def downloads(picture, stem: str, key: str, axes: dict | None = None) -> None:
    """An image grid (in [0, 1]) for a lecture: a PNG at least 2400 pixels on its longer side, and an SVG (with the
    grid's axes, when it has them), each made when its button is clicked."""
    left, right = st.columns(2)
    left.download_button("PNG, high resolution", lambda: images.png(picture, images.export_scale(picture)),
                         file_name=f"{stem}.png", mime="image/png", key=f"{key} png")
    right.download_button("SVG", lambda: images.svg(picture, axes), file_name=f"{stem}.svg", mime="image/svg+xml",
                          key=f"{key} svg")


def interpolation_tab(space):
    """The decoded straight line in z between the encodings of two test images."""
    if not space.has_test_set:
        st.info(views.needs_test_set(space))
        return
    left, right = st.columns(2)
    first = left.number_input("From test image", 0, space.test_size - 1, 0, key="from",
                              help="the path starts at this image's encoding (the mean of q(z|x))")
    second = right.number_input("To test image", 0, space.test_size - 1, min(1, space.test_size - 1), key="to",
                                help="and goes in a straight line in z to this one's")
    path = views.strip(space.interpolation(first, second, 12), space.image_shape)
    st.image(path, caption="decoded path")
    downloads(path / 255.0, f"{space.label}-interpolation-{first}-{second}", "interpolation")


def samples_tab(space):
    """Fig. 5: samples from the prior, of this model and of others beside it, all from one seed."""
    seed = st.session_state.setdefault(session.SEED, 0)
    if st.button("Reseed", key="reseed"):
        seed = st.session_state[session.SEED] = seed + 1
    chosen = st.multiselect("Side by side (Fig. 5)", list(sources), default=[name], key="side_by_side")
    for column, other in zip(st.columns(max(1, len(chosen))), chosen):
        other_space = views.latent_space(sources[other])
        if other_space.is_image:
            samples = views.sample_mosaic(other_space, seed)
            column.image(samples, caption=f"{other} (J = {other_space.latent_dim})")
            with column:
                downloads(samples / 255.0, f"{other_space.label}-samples-seed{seed}", f"samples {other}")
        else:
            column.plotly_chart(views.vector_samples(other_space, seed), key=f"samples {other}")


def reconstructions_tab(space):
    if not space.has_test_set:
        st.info(views.needs_test_set(space))
        return
    pairs = views.reconstruction_mosaic(space)
    st.image(pairs, caption="test images (odd rows) and reconstructions (even rows)")
    downloads(pairs / 255.0, f"{space.label}-reconstructions", "reconstructions")


def scatter_tab(space):
    """The encoded test set (for J > 2 projected to two dimensions); a clicked point shown as its image."""
    if not space.has_test_set:
        st.info(views.needs_test_set(space))
        return
    method = st.radio("Projection", ["pca", "tsne"], horizontal=True, key="projection",
                      help="J > 2: the encodings' first two principal components, or a t-SNE map of 2000 of them"
                      ) if space.latent_dim > 2 else "pca"
    event = st.plotly_chart(figures.scatter_figure(space, method), on_select="rerun", selection_mode="points",
                            key="scatter")
    index = views.picked_point(event)
    if index is not None and space.is_image:
        st.image(images.png(space.test_images([index])[0], scale=8), caption=f"test image {index}")
    elif index is not None:
        st.plotly_chart(figures.vectors_figure({f"test point {index}": space.test_images([index])[0]},
                                               f"test point {index}"), key="picked")


def vector_samples_tab(space):
    st.plotly_chart(views.vector_samples(space, st.session_state.setdefault(session.SEED, 0)), key="samples")


def vector_decoder_tab(space):
    """The decoder's mean for a z the sliders set: the morph pad of data that is not images."""
    st.caption("Move z: the plot is the decoder's mean p(x|z) for it, each of the data's numbers a bar or a point.")
    shown = min(space.latent_dim, views.VECTOR_SLIDERS)
    columns = st.columns(min(shown, 4))
    z = [columns[j % len(columns)].slider(f"z{j + 1}", -3.0, 3.0, 0.0, 0.1, key=f"vector z{j + 1}") for j in range(shown)]
    if space.latent_dim > shown:
        st.caption(f"z{shown + 1} to z{space.latent_dim} stay at 0.")
    st.plotly_chart(views.vector_decoded(space, z), key="decoded")


def vector_reconstructions_tab(space):
    if not space.has_test_set:
        st.info(views.needs_test_set(space))
        return
    index = st.number_input("Test point", 0, space.test_size - 1, 0, key="recon_point")
    st.plotly_chart(views.vector_reconstruction(space, index), key="reconstruction")


explore()
