"""Every page through streamlit's AppTest, asserting on what each shows; widgets are found by their keys.

`app` needs no data (digits ships with scikit-learn); `app_with_data` adds the real MNIST and Frey Face."""
import base64
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import PATIENCE, open_tab
from streamlit.testing.v1 import AppTest

from vae_app import session
from vae_app.views import pool
from vae_core import runs
from vae_core.config import TrainConfig
from vae_core.runs import RunState
from vae_core.training import Trainer


def start_app(monkeypatch, tmp_path, repo, data_dir=None) -> AppTest:
    monkeypatch.chdir(repo)
    monkeypatch.setenv("VAE_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # no data in the user's cache either
    monkeypatch.setenv("VAE_OFFLINE", "1")
    if data_dir is None:
        monkeypatch.delenv("VAE_DATA_DIR", raising=False)
    else:
        monkeypatch.setenv("VAE_DATA_DIR", str(data_dir))
    at = AppTest.from_file(str(repo / "dashboard.py"), default_timeout=60)
    at.run()
    return at


@pytest.fixture
def app(monkeypatch, tmp_path, repo):
    return start_app(monkeypatch, tmp_path, repo)


@pytest.fixture
def app_with_data(monkeypatch, tmp_path, repo, data_dir):
    return start_app(monkeypatch, tmp_path, repo, data_dir)


def array_length(field) -> int:
    """Length of an array in a Plotly spec, plain or base64-encoded ({"dtype", "bdata"})."""
    if isinstance(field, dict):
        return len(base64.b64decode(field["bdata"])) // np.dtype(field["dtype"]).itemsize
    return len(field)


def start_digits_run(app, samples: str) -> None:
    """Starts a digits run from the Train page's form, as a user would."""
    app.switch_page("app_pages/train.py").run()
    app.selectbox(key="train.dataset").set_value("digits")
    app.text_input(key="train.samples").set_value(samples)
    app.text_input(key="train.lr").set_value("0.02")
    app.button(key="train.start").click().run()


def texts(at) -> str:
    return "\n".join(e.value for kind in ("markdown", "info", "error", "caption", "subheader", "title")
                     for e in getattr(at, kind))


def test_home_lists_datasets_and_pages(app_with_data):
    app = app_with_data
    assert not app.exception
    assert "Auto-Encoding Variational Bayes" in app.title[0].value
    table = app.dataframe[0].value
    assert table.set_index("dataset")["available"].to_dict() == {"mnist": True, "frey": True, "digits": True}
    frey = table.set_index("dataset").loc["frey"]  # what its spec says
    assert (frey["name"], frey["image"], frey["training points"], frey["decoder p(x|z)"],
            frey["the paper's hidden units"]) == ("Frey Face", "28x20", 1600, "gaussian", "200")
    assert "Latent explorer" in texts(app) and "Runs" in texts(app)


@pytest.mark.parametrize("field, value, words", [
    ("latent_dim", "0", "Latent dimensions J must be a whole number of at least 1, got 0"),
    ("latent_dim", "2.7", "Latent dimensions J must be a whole number, got 2.7"),  # refused, never rounded to 2
    ("seed", "99999999999999999999", "Seed must be a whole number from 0 to 4,294,967,295, got 99999999999999999999"),
    ("samples_per_point", "many", "Samples per datapoint L must be a number, got 'many'"),
    ("hidden", "-5", "hidden layers must be whole numbers of at least 1 unit, got -5"),  # not Python's (-5,)
    ("samples", "-5", "number of samples must be a whole number"),
    ("lr", "fast", "step size must be a positive number or 'auto'"),
    ("batch_size", "5000", "Minibatch M must be at most the 1600 training datapoints of frey"),
])
def test_train_form_rejects_bad_input_with_a_message(app_with_data, field, value, words):
    """Each problem is said once, under its field, in the form's words; the summary names the field."""
    app = app_with_data
    app.switch_page("app_pages/train.py").run()
    assert app.selectbox(key="train.dataset").value == "frey"  # the data is here: the paper's first dataset
    app.text_input(key=f"train.{field}").set_value(value)
    app.button(key="train.start").click().run()
    assert not app.exception
    errors = [e.value for e in app.error]
    assert sum(words in e for e in errors) == 1, errors
    label = app.text_input(key=f"train.{field}").label
    assert errors[-1] == f"Cannot start: see the message under {label}.", errors
    assert session.RUN_DIR not in app.session_state  # nothing started


def shown_progress(app) -> dict:
    """The progress line the Train page's component draws: from the feed it polls, named in its arguments."""
    from vae_app.components import live_chart_dir
    args = json.loads(app.get("component_instance")[0].proto.json_args)
    return json.loads((live_chart_dir() / args["feed"]).read_text())["progress"]


def test_train_page_trains_and_shows_curves_gallery_and_finish(app):
    start_digits_run(app, "30000")
    assert not app.exception and not app.error
    deadline = time.monotonic() + PATIENCE
    while "finished" not in shown_progress(app)["text"] and time.monotonic() < deadline:
        time.sleep(0.5)
        app.run()
    app.run()  # the rerun the component asks for when the feed's state differs from the page's
    bar = shown_progress(app)
    assert "finished: 30,000 / 30,000 samples" in bar["text"] and "test" in bar["text"] and bar["fraction"] == 1.0
    from vae_app.components import FEEDS, live_chart_dir
    args = json.loads(app.get("component_instance")[0].proto.json_args)
    assert args["state"] == "finished"  # what the page drew, so that the component asks for no rerun
    run_dir = app.session_state[session.RUN_DIR]
    assert {k: args[k] for k in ("feed", "active", "log_x", "smoothing")} == {
        "feed": pool().get(run_dir).feed.name, "active": False, "log_x": True, "smoothing": 0.6}
    name = args["feed"].removeprefix(f"{FEEDS}/").removesuffix(".json")  # a secret, not a name made from the run's
    assert len(name) >= 22 and Path(run_dir).name not in name
    feed = json.loads((live_chart_dir() / args["feed"]).read_text())  # what the charts fetch
    rows = pool().get(run_dir).rows
    assert feed["active"] is False and len(feed["minibatch"]) == sum(r["kind"] == "minibatch" for r in rows) > 10
    assert feed["minibatch"][-1][0] == 30_000 and feed["evaluation"][-1][0] == 30_000  # every row, to the last
    assert len(app.get("image")) == 2
    run_dir = app.session_state[session.RUN_DIR]
    assert runs.read_json(f"{run_dir}/{runs.STATUS}")["state"] == "finished"


def test_a_double_click_on_start_makes_one_run(app, tmp_path, monkeypatch):
    """The second click of a double click reaches the server while the first click's run is starting: it starts
    nothing, and Start stays off until that run trains. The worker's follower is held back, so that the run is still
    starting at the second click whatever the timing."""
    from vae_app.workers import TrainingWorker
    monkeypatch.setattr(TrainingWorker, "_follow", lambda self: None)
    start_digits_run(app, "30000")
    worker = pool().get(app.session_state[session.RUN_DIR])
    try:
        assert worker.state == RunState.STARTING
        app.button(key="train.start").click().run()  # the second click
        assert not app.exception and not app.error
        assert [p.name for p in (tmp_path / "runs").iterdir() if not p.name.startswith(".")] == [worker.run_dir.name]
        assert app.session_state[session.RUN_DIR] == str(worker.run_dir)
        assert app.button(key="train.start").disabled
        assert f"{worker.run_dir.name} is starting" in texts(app)
        assert app.subheader[0].value == f"Run {worker.run_dir.name}"  # the live run above the form
        app.switch_page("app_pages/home.py").run()  # and in the sidebar's strip, from any page
        strip = [p.proto.text for p in app.sidebar.get("progress")]
        assert strip == [f"{worker.run_dir.name}: starting, 0%"]
    finally:
        worker.process.kill()
        worker.process.join()
        worker.state = RunState.STOPPED  # the pool, shared by the tests, counts it no more


def test_live_chart_folder_holds_the_page_and_plotly_and_is_made_once(monkeypatch, tmp_path, repo):
    from plotly.offline import get_plotlyjs

    from vae_app.components import live_chart_dir
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    folder = live_chart_dir()
    assert folder.parent.parent == tmp_path / "vae_core"
    assert (folder / "index.html").read_bytes() == (repo / "assets" / "live_chart.html").read_bytes()
    assert (folder / "plotly.min.js").read_text(encoding="utf-8") == get_plotlyjs()
    stamp = (folder / "plotly.min.js").stat().st_mtime_ns
    assert live_chart_dir() == folder and (folder / "plotly.min.js").stat().st_mtime_ns == stamp
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # no staging folder left behind
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))  # the cache cannot be made: the temp folder serves
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    fallback = live_chart_dir()
    assert fallback.parent.parent.parent == tmp_path / "tmp" and (fallback / "index.html").is_file()


def test_runs_page_lists_compares_and_offers_downloads(app, tmp_path):
    for seed in (0, 1):
        Trainer.from_config(TrainConfig(dataset="digits", samples=5000, lr=0.02, seed=seed), runs_dir=tmp_path / "runs").run()
    app.switch_page("app_pages/runs.py").run()
    assert not app.exception
    table = app.dataframe[0].value
    assert len(table) == 2 and set(table["state"]) == {"finished"} and table["test bound"].notna().all()
    from vae_app.views.runs import FIRST_COLUMNS
    assert list(app.dataframe[0].proto.column_order) == list(FIRST_COLUMNS)  # the bounds first, not off to the right
    app.toggle(key="every_column").set_value(True).run()
    assert list(app.dataframe[0].proto.column_order) == []  # every column, on demand
    app.multiselect(key="overlay").set_value(list(table["run"])).run()
    figure = app.get("plotly_chart")[0].proto.spec
    assert all(f'{r}: test"' in figure for r in table["run"])
    labels = [b.proto.label for b in app.get("download_button")]
    assert labels == ["Metrics (CSV)", "Model (safetensors)"]


def test_runs_page_shows_a_run_with_no_metrics_yet(app, tmp_path):
    """A run that has written its config and status but no metrics (opened within a second of Start, or a stopped
    sweep's trial): the page says so where the chart would be, and offers everything below it."""
    run = tmp_path / "runs" / "fresh"
    run.mkdir(parents=True)
    runs.write_json(run / runs.CONFIG, {"train_config": TrainConfig(dataset="digits").to_dict(), "lr": 0.02})
    runs.write_json(run / runs.STATUS, {"state": "stopped", "samples_evaluated": 0, "total_samples": 1000})
    app.switch_page("app_pages/runs.py").run()
    assert not app.exception
    assert "No learning curve to draw" in app.caption[0].value and not app.get("plotly_chart")
    assert app.selectbox(key="run").value == "fresh" and app.button(key="continue")


def test_runs_page_continues_a_finished_run_to_a_larger_budget(app, tmp_path):
    Trainer.from_config(TrainConfig(dataset="digits", samples=3000, lr=0.02), runs_dir=tmp_path / "runs").run()
    app.switch_page("app_pages/runs.py").run()
    budget = app.text_input(key="continue_budget")
    assert budget.value == "30000"  # a finished run: ten times its budget
    budget.set_value("2000")
    app.button(key="continue").click().run()
    assert "already evaluated 3,000 samples" in app.error[0].value
    app.text_input(key="continue_budget").set_value("6000")
    app.button(key="continue").click().run()
    assert not app.exception
    worker = pool().get(app.session_state[session.RUN_DIR])
    assert worker.config["samples"] == 6000
    deadline = time.monotonic() + PATIENCE
    while worker.active and time.monotonic() < deadline:
        time.sleep(0.2)
    assert worker.state == "finished" and worker.rows[-1]["samples_evaluated"] == 6000
    assert shown_progress(app)["text"].startswith("finished: 6,000 / 6,000 samples")  # on the Train page
    evaluations = [r for r in runs.read_run(worker.run_dir).metrics if "test_lower_bound" in r]
    assert evaluations[-1]["samples_evaluated"] == 6000 and evaluations[0]["samples_evaluated"] < 3000


def test_runs_page_with_no_runs_says_how_to_make_one(app):
    app.switch_page("app_pages/runs.py").run()
    assert "No runs yet" in app.info[0].value


def test_latent_explorer_opens_on_the_shipped_frey_model(app_with_data):
    app = app_with_data
    app.switch_page("app_pages/latent_explorer.py").run()
    assert not app.exception
    assert app.selectbox(key="model").value == "shipped: frey-J2"
    assert "10,000,000" in app.expander[0].markdown[0].value  # the model card
    assert [t.label for t in app.tabs] == ["Morph pad", "Manifold (Fig. 4)", "Interpolation", "Samples (Fig. 5)",
                                          "Reconstructions", "Latent scatter"]
    pad = json.loads(json.loads(app.get("component_instance")[0].proto.json_args)["config"])
    assert pad["decoder"]["D"] == 560 and len(pad["points"]) == 365 and len(pad["sigmas"]) == 365
    assert pad["span"] > 4.5  # the Frey encodings reach -4.5: the pad reaches them
    # the open tab is drawn, and Fig. 4 beside it (its chart has the browser load Plotly): not the other tabs
    assert len(app.get("plotly_chart")) == 1 and not app.get("image")
    images = 0
    for label in ("Interpolation", "Samples (Fig. 5)", "Reconstructions"):
        open_tab(app, label)
        images += len(app.get("image"))
        labels = [b.proto.label for b in app.get("download_button")]
        assert labels.count("PNG, high resolution") == labels.count("SVG") == 2  # the tab's grid and Fig. 4's
    assert images >= 3
    open_tab(app, "Manifold (Fig. 4)")
    manifold = app.get("plotly_chart")[0].proto.spec
    assert manifold.count("z = (") == 1 and '"customdata"' in manifold
    assert app.slider(key="grid").value == 12  # Frey Face's spec: fewer, larger faces than the 20 of Fig. 4
    app.slider(key="grid").set_value(6).run()
    assert not app.exception
    spec = json.loads(app.get("plotly_chart")[0].proto.spec)
    assert array_length(spec["data"][1]["x"]) == 36  # one hover point per cell of the 6 x 6 grid
    x_axis, y_axis = spec["layout"]["xaxis"], spec["layout"]["yaxis"]
    assert (x_axis["title"]["text"], y_axis["title"]["text"]) == ("z1", "z2")
    assert len(x_axis["tickvals"]) == 6 and x_axis["tickvals"][0] == 10.0  # the first column's centre (20 wide)
    z1 = [float(t) for t in x_axis["ticktext"]]
    assert z1 == sorted(z1) and z1[0] == -z1[-1] and y_axis["ticktext"][0] == x_axis["ticktext"][-1]  # z2 from the top
    assert [b.proto.label for b in app.get("download_button")] == ["PNG, high resolution", "SVG"]


def test_image_grids_export_as_large_pngs_and_as_svgs_with_their_axes():
    import io
    import xml.etree.ElementTree as ET

    from PIL import Image

    from vae_app import images
    picture = np.linspace(0, 1, 28 * 20 * 12).reshape(28 * 2, 20 * 6)
    exported = Image.open(io.BytesIO(images.png(picture, images.export_scale(picture))))
    assert max(exported.size) >= images.EXPORT_PIXELS and exported.size[0] / exported.size[1] == 120 / 56
    axes = {"x": ("z1", [(10.0, "-1.64"), (110.0, "1.64")]), "y": ("z2", [(14.0, "1.64 <&>")])}
    root = ET.fromstring(images.svg(picture, axes))
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert texts == ["-1.64", "1.64", "1.64 <&>", "z1", "z2"]  # tick text as text, escaped
    [embedded] = root.iter("{http://www.w3.org/2000/svg}image")
    assert embedded.get("href").startswith("data:image/png;base64,") and embedded.get("width") == str(120 * 8)
    assert [t.text for t in ET.fromstring(images.svg(picture)).iter("{http://www.w3.org/2000/svg}text")] == []


def test_image_grids_have_transparent_frames_so_they_read_on_a_dark_page():
    from vae_app import images
    cells = np.stack([np.full((2, 3), 0.0), np.full((2, 3), 1.0), np.full((2, 3), 0.5)])
    grid = images.mosaic(cells, columns=2, scale=2)  # 2 rows x 2 columns of 2x3 cells, 1-pixel frames, doubled
    assert grid.shape == ((2 * 3 + 1) * 2, (2 * 4 + 1) * 2, 4) and grid.dtype == np.uint8
    frame, first, second, third, empty = grid[0, 0], grid[2, 2], grid[2, 10], grid[8, 2], grid[8, 10]
    assert frame[3] == 0 and empty[3] == 0  # frames and the unfilled cell are see-through, not white
    assert list(first) == [0, 0, 0, 255] and list(second) == [255, 255, 255, 255] and list(third) == [128, 128, 128, 255]
    assert (images.mosaic(cells, columns=3, pad=0)[..., 3] == 255).all()  # no frames: wholly opaque
    import io
    import xml.etree.ElementTree as ET

    from PIL import Image
    exported = Image.open(io.BytesIO(images.png(grid / 255.0, scale=3)))  # as the pages' downloads make it
    assert exported.mode == "RGBA" and exported.size == (grid.shape[1] * 3, grid.shape[0] * 3)
    np.testing.assert_array_equal(np.asarray(exported)[::3, ::3], grid)
    [embedded] = ET.fromstring(images.svg(grid / 255.0)).iter("{http://www.w3.org/2000/svg}image")
    assert embedded.get("width") == str(grid.shape[1] * 8)


def test_latent_explorer_shows_mnist_labels_and_samples_side_by_side(app_with_data):
    app = app_with_data
    app.switch_page("app_pages/latent_explorer.py").run()
    app.selectbox(key="model").set_value("shipped: mnist-J2").run()
    assert not app.exception
    open_tab(app, "Samples (Fig. 5)")
    app.multiselect(key="side_by_side").set_value(["shipped: mnist-J2", "shipped: frey-J2"]).run()
    captions = [i.proto.imgs[0].caption for i in app.get("image")]
    assert any("mnist-J2 (J = 2)" in c for c in captions) and any("frey-J2 (J = 2)" in c for c in captions)
    open_tab(app, "Latent scatter")
    spec = json.loads(app.get("plotly_chart")[-1].proto.spec)  # after Fig. 4's, which is always drawn
    scatter = spec["data"][0]
    assert scatter["type"] == "scattergl" and array_length(scatter["x"]) == 10000  # the whole test set
    assert spec["layout"]["xaxis"]["title"]["text"] == "z1, mean of q(z|x)"
    assert array_length(scatter["marker"]["color"]) == 10000  # coloured by label


def measure_on_the_variance_page(app, replicates: str, values: str, compute: str):
    """The untrained digits model measured from the Estimator variance page's form whose widgets' keys are given
    (R, the values of L or K, the button); returns the first table, once the measurement's process has finished."""
    app.switch_page("app_pages/estimator_variance.py").run()
    assert not app.exception
    app.selectbox(key="model").set_value("untrained digits (J = 2)")
    app.text_input(key=replicates).set_value("8")
    app.text_input(key=values).set_value("1 4 16")
    app.button(key=compute).click().run()
    deadline = time.monotonic() + PATIENCE  # the measurement runs in a process of its own
    while not app.dataframe and time.monotonic() < deadline:
        time.sleep(0.5)
        app.run()
    assert not app.exception and not app.error
    return app.dataframe[0].value


def test_estimator_variance_page_computes_and_charts(app):
    from vae_app.views import variance
    variance._paces().clear()  # this server has measured nothing yet
    app.switch_page("app_pages/estimator_variance.py").run()
    app.selectbox(key="model").set_value("untrained digits (J = 2)").run()
    assert "These settings are 1x the work of the defaults on this model" in texts(app)  # the defaults, before any
    table = measure_on_the_variance_page(app, "R", "L", "compute")
    assert set(table["L"]) == {1, 4, 16} and set(table["estimator"]) == {"A", "B", "score", "score-baseline", "stl", "iw"}
    figure = json.loads(app.get("plotly_chart")[0].proto.spec)
    assert [t["name"] for t in figure["data"]] == ["A", "B", "iw", "1/L"]
    assert figure["layout"]["xaxis"]["type"] == figure["layout"]["yaxis"]["type"] == "log"
    assert "B/A variance" in app.markdown[-1].value
    labels = [b.proto.label for b in app.get("download_button")]
    assert labels == ["Download CSV"]
    assert any(c.value.startswith("Measured with M = 10, R = 8, L = 1 4 16, estimators A, B,") for c in app.caption)
    app.switch_page("app_pages/home.py").run()
    app.switch_page("app_pages/estimator_variance.py").run()  # back: the form shows what the results measured
    assert (app.text_input(key="R").value, app.text_input(key="L").value) == ("8", "1 4 16")
    assert "on this model, at the pace of this server's last measurement" in texts(app)  # the cost, now in time


def test_a_measurements_time_left_counts_from_its_start_not_its_loading():
    from vae_app import jobs
    job = jobs.Job.__new__(jobs.Job)  # its state only: no process
    job.started, job.computing_since, job.finished, job.fraction, job.work = 100.0, None, None, 0.0, 1e9
    now = 160.0
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(jobs.time, "monotonic", lambda: now)
        assert job.status() == "loading the model and its data (60 s)" and job.pace is None
        job.computing_since = 150.0
        assert job.status().startswith("measuring the first values")
        job.fraction = 0.25  # 10 s of measuring for a quarter: 30 s left, whatever the 50 s of loading
        assert job.status() == "25% after 1 min 0 s, about 30 s left"
        job.finished, job.fraction = 190.0, 1.0
        assert job.pace == pytest.approx(40.0 / 1e9)


def test_estimator_variance_page_refuses_a_fractional_m(app):
    app.switch_page("app_pages/estimator_variance.py").run()
    app.text_input(key="M").set_value("2.5")
    app.button(key="compute").click().run()
    assert [e.value for e in app.error] == ["Cannot compute: Minibatch M must be a whole number, got 2.5"]


def test_estimator_variance_page_shows_the_k_tradeoff(app):
    """The k trade-off of the chosen model: the SNRs of the decoder's and the encoder's gradients (IWAE and DReG)
    against K with √K and 1/√K lines, the bound against K, and the two sentences that say what they show."""
    table = measure_on_the_variance_page(app, "iw_R", "iw_K", "compute_tradeoff")
    assert set(table["K"]) == {1, 4, 16} and set(table["estimator"]) == {"iwae", "dreg"}
    snr, bound = (json.loads(chart.proto.spec) for chart in app.get("plotly_chart"))
    assert [t["name"] for t in snr["data"]] == ["decoder θ (IWAE and DReG alike)", "encoder φ, IWAE",
                                                "encoder φ, DReG", "√K", "1/√K"]
    assert snr["layout"]["xaxis"]["type"] == snr["layout"]["yaxis"]["type"] == "log"
    assert [t["name"] for t in bound["data"]] == ["IW bound L_K"]
    captions = texts(app)
    assert "Rainforth et al. 2018" in captions and "Tucker et al. 2019" in captions and "Slopes of log SNR" in captions
    app.text_input(key="iw_K").set_value("1 k")
    app.button(key="compute_tradeoff").click().run()
    assert "the values of K must be whole numbers" in app.error[0].value


def test_the_train_form_offers_iwae_with_k(app):
    app.switch_page("app_pages/train.py").run()
    assert "iwae" in app.selectbox(key="train.algorithm").options
    app.selectbox(key="train.dataset").set_value("digits")
    app.selectbox(key="train.algorithm").set_value("iwae")
    app.button(key="train.start").click().run()
    assert "iwae needs IW samples K (iwae)" in texts(app)  # said under the K field, by its label, which is empty until K is given
    assert app.text_input(key="train.iw_k").placeholder == "iwae only, e.g. 5"


def test_estimator_variance_page_rejects_bad_l(app):
    app.switch_page("app_pages/estimator_variance.py").run()
    app.text_input(key="L").set_value("1 two")
    app.button(key="compute").click().run()
    assert not app.exception and "whole numbers" in app.error[0].value


def test_latent_explorer_follows_the_run_training_in_this_session_and_can_freeze(app):
    start_digits_run(app, "1e8")
    worker = pool().get(app.session_state[session.RUN_DIR])
    try:
        deadline = time.monotonic() + PATIENCE
        while worker.snapshot is None and time.monotonic() < deadline:
            time.sleep(0.2)
        app.switch_page("app_pages/latent_explorer.py").run()
        assert not app.exception
        assert app.selectbox(key="model").value.startswith("this session's run")
        first = app.session_state[session.FROZEN]["samples_evaluated"]
        app.toggle(key="follow").set_value(False).run()  # freeze
        frozen = app.session_state[session.FROZEN]["samples_evaluated"]
        deadline = time.monotonic() + PATIENCE
        while worker.snapshot["samples_evaluated"] == frozen and time.monotonic() < deadline:
            time.sleep(0.2)
        app.run()
        assert app.session_state[session.FROZEN]["samples_evaluated"] == frozen < worker.snapshot["samples_evaluated"]
        assert frozen >= first and app.get("component_instance")
    finally:
        worker.stop()


def test_server_config_turns_off_the_full_garbage_collection_after_every_run(repo):
    """Streamlit's default gc.collect() after each fragment run cost ~40% of a core on the live Train page."""
    import tomllib
    config = tomllib.loads((repo / ".streamlit" / "config.toml").read_text())
    assert config["runner"]["postScriptGC"] is False
    assert config["server"]["runOnSave"] is False
    assert config["client"]["toolbarMode"] == "viewer"  # no Deploy button in the toolbar


def test_progress_text_gives_rate_time_left_cores_and_bounds():
    from types import SimpleNamespace

    from vae_app.workers import TrainingWorker
    progress = TrainingWorker.progress_line
    rows = [{"kind": "minibatch", "samples_evaluated": 100, "seconds": 0.5, "samples_per_second": 200.0},
            {"kind": "minibatch", "samples_evaluated": 1000, "seconds": 1.0, "samples_per_second": 1000.0},
            {"kind": "minibatch", "samples_evaluated": 3000, "seconds": 3.0, "samples_per_second": 1000.0},
            {"kind": "evaluation", "samples_evaluated": 5000, "seconds": 6.0, "samples_per_second": 833.3,
             "train_lower_bound": -120.5, "test_lower_bound": -119.25}]
    running = SimpleNamespace(rows=rows, config={"samples": 10000}, state="running", active=True, threads=1, message="")
    shown = progress(running)
    assert shown["fraction"] == 0.5 and shown["state"] == "running"
    # the rate of the last 5 s of training (4,000 samples from 1 s to 6 s), not the average since the start
    assert shown["text"] == (f"running: 5,000 / 10,000 samples, 800 samples/s, 6 s left, on 1 of {os.cpu_count()} "
                             "cores, train -120.50 / test -119.25 nats")
    early = SimpleNamespace(**{**vars(running), "rows": rows[2:]})  # 3 s of training so far
    assert "samples/s, estimating the time left, on 1 of" in progress(early)["text"]
    iwae = SimpleNamespace(**{**vars(running), "rows": [*rows[:-1], {**rows[-1], "train_iw_bound": -115.0,
                                                                       "test_iw_bound": -114.5}]})
    assert progress(iwae)["text"].endswith("train -120.50 / test -119.25 nats, train -115.00 / test -114.50 nats (IW bound)")
    paused = SimpleNamespace(**{**vars(running), "state": "paused"})
    assert "left" not in progress(paused)["text"] and progress(paused)["text"].startswith("paused: 5,000 / 10,000")
    stopped = SimpleNamespace(**{**vars(running), "state": "stopped", "active": False})
    assert progress(stopped)["text"] == ("stopped: 5,000 / 10,000 samples, 800 samples/s, "
                                         "train -120.50 / test -119.25 nats")  # no time left, no cores
    starting = SimpleNamespace(**{**vars(running), "rows": [], "state": RunState.STARTING})
    assert progress(starting)["text"] == "starting: loading the data and building the model"
    trial = SimpleNamespace(**{**vars(running), "rows": [], "state": RunState.CHOOSING_STEP_SIZE,
                               "message": "step size 0.01: mean bound -150.20"})
    assert progress(trial)["text"] == ("choosing the step size by a short trial of each candidate: step size 0.01: "
                                       "mean bound -150.20")


def test_live_curves_keep_their_shape_on_a_log_axis_when_thinned():
    """10,000 minibatch rows become at most 300 points a curve, with the first decades of the log axis still drawn."""
    import plotly.graph_objects as go

    from vae_app import figures as plots
    rows = [{"kind": "minibatch", "samples_evaluated": 100 * (i + 1), "lower_bound": -1000 / (i + 1),
             "reconstruction": -900 / (i + 1), "kl": 100 / (i + 1)} for i in range(10_000)]
    for figure in (plots.learning_curves({"run": rows}),):
        for trace in go.Figure(figure).data:  # plotly checks the plain dict against its schema
            x = np.asarray(trace.x)
            assert len(x) <= 300 and x[0] == 100 and x[-1] == 1_000_000
            per_decade = np.histogram(np.log10(x), bins=[2, 3, 4, 5, 6.01])[0]
            assert per_decade.min() >= 9, per_decade  # evenly spaced alone: 1, 3, 27 and 269


def test_the_live_feed_has_no_nan_for_the_browser_to_choke_on_and_is_written_when_behind(tmp_path):
    """JSON.parse rejects NaN and Infinity, which json.dumps writes for float('nan'): they become gaps (null). The
    feed is rewritten at most every `every` seconds while the run is active, at once when it has ended."""
    from vae_app.components import PART_ROWS, LiveFeed
    feed = LiveFeed(every=60.0, folder=tmp_path)
    rows = [{"kind": "minibatch", "samples_evaluated": 100, "lower_bound": float("nan"), "reconstruction": -90.0,
             "kl": 5.0},
            {"kind": "evaluation", "samples_evaluated": 100, "train_lower_bound": float("-inf"), "test_lower_bound": -100.0},
            {"kind": "started", "samples_evaluated": 0}]
    running, finished = ({"state": state, "fraction": 0.5, "text": state} for state in ("running", "finished"))
    feed.update(rows, "running", lambda: running)
    read = lambda: json.loads(feed.path.read_text(), parse_constant=lambda name: pytest.fail(f"{name} in the feed"))
    assert read() == {"active": True, "progress": running, "parts": 0, "part_rows": PART_ROWS, "minibatch": [[100, None, -90.0, 5.0]],
                      "evaluation": [[100, None, -100.0, None, None, None, None]]}
    rows.append({"kind": "minibatch", "samples_evaluated": 200, "lower_bound": -80.0, "reconstruction": -75.0, "kl": 5.0})
    feed.update(rows, "running", lambda: pytest.fail("the progress line made while the feed waits"))
    assert len(read()["minibatch"]) == 1  # written within the minute: it waits, and makes no progress line
    feed.update(rows, "finished", lambda: finished)
    assert read()["active"] is False and read()["progress"] == finished and read()["minibatch"][-1] == [200, -80.0, -75.0, 5.0]  # ended: at once
    assert [p.name for p in feed.path.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_the_live_feed_seals_older_rows_into_parts_written_once(tmp_path):
    """What is rewritten every second stays small however long the run: every `part_rows` minibatch rows go into a
    part file, written once, before the feed that counts it; the parts, then the feed's rows, are every row in order."""
    from vae_app.components import LiveFeed, part_name
    (tmp_path / "feeds").mkdir()
    feed = LiveFeed(every=0.0, part_rows=10, folder=tmp_path)
    rows = [{"kind": "minibatch", "samples_evaluated": 100 * (i + 1), "lower_bound": -float(i), "reconstruction": -1.0,
             "kl": 1.0} for i in range(25)]
    progress = lambda: {"state": "running", "fraction": 0.5, "text": ""}

    def everything():
        head = json.loads(feed.path.read_text())
        parts = [json.loads(Path(part_name(feed.path, i)).read_text()) for i in range(head["parts"])]
        return head, [r[0] for part in parts for r in part] + [r[0] for r in head["minibatch"]]
    feed.update(rows, "running", progress)
    head, samples = everything()
    assert (head["parts"], head["part_rows"], len(head["minibatch"])) == (2, 10, 5)
    assert samples == [r["samples_evaluated"] for r in rows]
    first = Path(part_name(feed.path, 0))
    written = first.stat().st_mtime_ns
    rows += [{"kind": "minibatch", "samples_evaluated": 2600 + 100 * i, "lower_bound": -1.0, "reconstruction": -1.0,
              "kl": 1.0} for i in range(5)]
    feed.update(rows, "running", progress)
    head, samples = everything()
    assert (head["parts"], head["minibatch"]) == (3, []) and samples == [r["samples_evaluated"] for r in rows]
    assert first.stat().st_mtime_ns == written  # a part is written once


def test_the_variance_summary_explains_what_surprises():
    from vae_app.views.variance import variance_summary
    from vae_core.variance import VarianceResult
    rows = [{"estimator": "A", "L": 1, "value_variance": 1.0, "phi_total_variance": 10.0, "phi_total_variance_dof": 800},
            {"estimator": "B", "L": 1, "value_variance": 3.0, "phi_total_variance": 5.0, "phi_total_variance_dof": 800},
            {"estimator": "score", "L": 1, "phi_total_variance": 1e4, "phi_snr": 0.11}]
    text = variance_summary({"m": VarianceResult(rows, {"L": [1], "R": 100})})
    low, high = 0.5 * math.exp(-1.96 * math.sqrt(4 / 800)), 0.5 * math.exp(1.96 * math.sqrt(4 / 800))
    assert f"B/A variance: value 3, ∇φ lower (0.5, 95% interval {low:.3g} to {high:.3g})" in text
    assert "B's value varies more than A's here" in text and "B's ∇φ variance at L = 1 is lower" in text
    assert "near 1/√R = 0.100" in text
    rows[1]["phi_total_variance"] = 9.9  # a ratio of 0.99, which 800 degrees of freedom cannot tell from 1
    text = variance_summary({"m": VarianceResult(rows, {"L": [1], "R": 100})})
    assert "∇φ variance at L = 1 is not told apart from A's with these replicates (0.99" in text
    assert "lower" not in text
    rows[1]["value_variance"], rows[2]["phi_snr"] = 0.5, 3.0
    text = variance_summary({"m": VarianceResult(rows, {"L": [1], "R": 100})})
    assert "varies more" not in text and "1/√R" not in text


def write_finished_run(folder: Path, config: TrainConfig, train: list[float], samples=(10**4, 10**5, 10**6)) -> None:
    """The files a finished run leaves (config, evaluations, status), without training it."""
    folder.mkdir(parents=True)
    runs.write_json(folder / runs.CONFIG, {"train_config": config.to_dict(), "lr": 0.02})
    runs.write_metrics(folder / runs.METRICS, [
        {"kind": "evaluation", "samples_evaluated": n, "train_lower_bound": b, "test_lower_bound": b + 1, "seconds": 1.0}
        for n, b in zip(samples, train)])
    runs.write_json(folder / runs.STATUS, {"state": "finished", "updated": time.time()})


def test_paper_page_draws_a_sweep_of_three_seeds(app, tmp_path):
    """`sweep --figure 2 --seed 0 1 2` at Frey Face J = 2: every seed is a line, and the claims are judged over all of
    them, where two wake-sleep seeds, one never reaching another's best bound, once stopped the page."""
    sweep_dir = tmp_path / "runs" / "fig2"
    sweep_dir.mkdir(parents=True)
    runs.write_json(sweep_dir / runs.SWEEP_FILE, {"trials": {}})
    for seed, (aevb, ws) in enumerate([([600, 700, 800], [500, 550, 560]), ([620, 720, 820], [500, 540, 550]),
                                       ([610, 710, 810], [510, 545, 570])]):
        for algorithm, train in (("aevb", aevb), ("wake-sleep", ws)):
            write_finished_run(sweep_dir / f"frey-J2-{algorithm}-seed{seed}",
                               TrainConfig(dataset="frey", latent_dim=2, algorithm=algorithm, samples=10**6, seed=seed),
                               train)
    app.switch_page("app_pages/paper.py").run()
    assert not app.exception and not app.error
    figure = next(c.proto.spec for c in app.get("plotly_chart") if '"text":"Frey Face J = 2"' in c.proto.spec)
    assert figure.count('"name":"aevb (train)"') == 3 and figure.count("(seed 2)") == 4  # train and test, each algorithm
    claims = app.dataframe[0].value
    frey = claims[(claims["figure"] == "Fig. 2") & (claims["where"] == "Frey Face J = 2")].set_index("claim")
    assert frey.loc["AEVB reaches a better bound", "verdict"] == "✓ holds"
    assert frey.loc["AEVB reaches a better bound", "evidence"] == (
        "test bound at 1,000,000 samples: AEVB 811.00, wake-sleep 561.00 (the means of 3 and 3 seeds)")
    # 550, the lowest wake-sleep seed's best: AEVB's seeds start above it, wake-sleep's reach it at 10^5, 10^6 and
    # 1.6·10^5 (a fifth of the log way from 545 at 10^5 to 570 at 10^6)
    assert frey.loc["AEVB converges faster", "verdict"] == "✓ holds"
    assert frey.loc["AEVB converges faster", "evidence"] == (
        "wake-sleep's best training bound 550.00 (the lowest of its seeds' bests) was reached by AEVB at 10,000 samples "
        "on average (seed 0: 10,000; seed 1: 10,000; seed 2: 10,000), by wake-sleep at 419,496 on average (seed 0: "
        "100,000; seed 1: 1,000,000; seed 2: 158,489)")
    missing = app.dataframe[1].value
    assert len(missing) == 16 + 6 and not ((missing["dataset"] == "frey") & (missing["J"] == 2)).any()
    assert "runs of 1,000,000 samples" not in texts(app)  # no data here for the missing runs: no cost to say


def test_a_browser_is_known_by_its_xsrf_token_whatever_its_mask():
    """Streamlit re-sends its XSRF cookie at every request with a new mask: the owner id comes from the token
    under it (Streamlit's own encoder makes the cookies), so a reloaded page is the same owner."""
    import secrets

    from streamlit.web.server.starlette import starlette_app_utils

    from vae_app.session import browser_secret
    token = secrets.token_bytes(32)
    first, second = (starlette_app_utils.generate_xsrf_token_string(token, 1_700_000_000) for _ in range(2))
    assert first != second and browser_secret(first) == browser_secret(second) == token
    assert browser_secret(starlette_app_utils.generate_xsrf_token_string(secrets.token_bytes(32), 1)) != token
    assert browser_secret("2|zz|yy|1") is None


def test_runs_overlaid_in_one_chart_never_share_a_colour():
    """A run keeps its own colour (from its name) where it meets no other run of it; two that hash alike get two."""
    import zlib

    from vae_app.figures import PALETTE, run_colours
    names = [f"run{i}" for i in range(200)]
    alike = [n for n in names if zlib.crc32(n.encode()) % len(PALETTE) == zlib.crc32(b"run0") % len(PALETTE)][:3]
    colours = run_colours(alike)
    assert len(set(colours.values())) == 3 and colours[alike[0]] == PALETTE[zlib.crc32(b"run0") % len(PALETTE)]
    assert run_colours(alike[1:2]) == {alike[1]: colours[alike[0]]}  # alone, its own colour
    assert len(set(run_colours(names[:10]).values())) == 10


def test_every_model_picker_shows_the_name_a_run_was_given(app, tmp_path):
    trainer = Trainer.from_config(TrainConfig(dataset="digits", samples=400, batch_size=20, hidden=(16,), lr=0.02),
                                  runs_dir=tmp_path / "runs")
    trainer.run()
    runs.label(trainer.run_dir, name="**lecture** demo")
    expected = f"run: {trainer.run_dir.name} (**lecture** demo)"
    for page in ("app_pages/latent_explorer.py", "app_pages/estimator_variance.py"):
        app.switch_page(page).run()
        assert expected in app.selectbox(key="model").options, page
        app.selectbox(key="model").set_value(expected).run()
        assert not app.exception and not app.error
