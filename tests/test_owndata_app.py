"""Your own data in the app, through AppTest: each source given on the Train page (uploaded, or as a path on the
server), inspected before Start, trained, then opened in the Latent explorer (images as images, rows of numbers as
plots), listed on the Runs page and measured on the variance page; a user's names never render as Markdown, and
data that changed since a run trained is refused with the reason."""
import time
from pathlib import Path

import pytest
from conftest import PATIENCE, open_tab
from own_data import digits, every_source, write_pngs
from test_app import start_app

from vae_app import session
from vae_app.text import plain
from vae_app.views import pool
from vae_core.config import TrainConfig
from vae_core.training import Trainer
from vae_core.userdata import WHAT_TO_GIVE

UPLOADED = {"npy", "npz", "csv", "zip"}  # what the uploader takes; folders are given by their path on the server


@pytest.fixture
def app(monkeypatch, tmp_path, repo):
    return start_app(monkeypatch, tmp_path, repo)


@pytest.fixture
def sources(tmp_path):
    return every_source(tmp_path / "data")


def trained(config: TrainConfig, tmp_path: Path) -> Path:
    """A finished run of `config` in the app's runs folder."""
    trainer = Trainer.from_config(config, runs_dir=tmp_path / "runs")
    trainer.run()
    return trainer.run_dir


def give(app, source: str, path: Path) -> None:
    """The user's data on the Train page: uploaded, or its path typed."""
    app.switch_page("app_pages/train.py").run()
    if source in UPLOADED:
        app.file_uploader(key="own_upload").upload(path.name, path.read_bytes()).run()
    else:
        app.radio(key="own_from").set_value("a path on this server").run()
        app.text_input(key="own_path").set_value(str(path)).run()


def inspected(app) -> dict[str, str]:
    table = next(d.value for d in app.dataframe if "about" in d.value.columns)
    return dict(zip(table["about"], table["what the project makes of it"]))


def train_here(app) -> str:
    """Starts training from the form with small settings; waits for the run to end; its folder."""
    app.text_input(key="train.batch_size").set_value("20")
    app.text_input(key="train.samples").set_value("400")
    app.text_input(key="train.lr").set_value("0.02")
    app.text_input(key="train.hidden").set_value("16")
    app.button(key="train.start").click().run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    worker = pool().get(app.session_state[session.RUN_DIR])
    deadline = time.monotonic() + PATIENCE
    while worker.active and time.monotonic() < deadline:
        time.sleep(0.2)
    assert worker.state == "finished", worker.message
    return str(worker.run_dir)


@pytest.mark.parametrize("source", ["npy", "npz", "csv", "zip", "png", "idx"])
def test_each_source_from_the_train_page_to_the_explorer(app, sources, source):
    path = sources[source]
    give(app, source, path)
    assert not app.exception and not app.error, [e.value for e in app.error]
    about = inspected(app)
    assert about["datapoints"].startswith("120: ")
    assert about["decoder p(x|z)"].startswith("bernoulli")
    image = source != "csv"
    assert about["each"] == ("an image of 8x8 pixels, D = 64" if image else "a vector of 12 numbers, D = 12")
    assert (len(app.get("image")) == 1) == image and (len(app.get("plotly_chart")) == 1) != image  # the preview
    dataset = app.selectbox(key="train.dataset")
    name = Path(dataset.value).name
    assert dataset.value.endswith(path.name if source in UPLOADED else str(path))  # the form trains on it now
    assert dataset.format_func(dataset.value) == f"your data: {name}"
    run_dir = train_here(app)
    assert Path(run_dir).name.split("-")[2] == name.split(".")[0]

    app.switch_page("app_pages/latent_explorer.py").run()
    app.selectbox(key="model").set_value(f"run: {Path(run_dir).name}").run()
    assert not app.exception and not app.error and not app.info, [e.value for e in (*app.error, *app.info)]
    if image:
        assert [t.label for t in app.tabs][:2] == ["Morph pad", "Manifold (Fig. 4)"]
        assert len(app.get("component_instance")) == 1  # the morph pad, over the encoded test set
        images = 0
        for label in ("Interpolation", "Samples (Fig. 5)", "Reconstructions"):
            open_tab(app, label)
            assert not app.exception and not app.error
            images += len(app.get("image"))
        assert images >= 3  # the interpolation, samples and reconstructions
    else:
        assert [t.label for t in app.tabs] == ["Decoder", "Samples", "Reconstructions", "Latent scatter"]
        charts = 0
        for label in ("Samples", "Reconstructions", "Latent scatter", "Decoder"):
            open_tab(app, label)
            assert not app.exception and not app.error and not app.get("image")
            charts += len(app.get("plotly_chart"))
        assert charts == 4
        app.slider(key="vector z1").set_value(2.0).run()
        assert not app.exception

    app.switch_page("app_pages/runs.py").run()
    table = app.dataframe[0].value.set_index("run")
    assert table.loc[Path(run_dir).name, "dataset"] == f"{name} (your data)"
    app.selectbox(key="run").set_value(Path(run_dir).name).run()
    assert not app.warning and app.button(key="continue")  # the same data: it can be continued


def test_the_variance_page_measures_a_run_on_the_users_data(app, sources, tmp_path):
    run_dir = trained(TrainConfig(dataset=str(sources["zip"]), samples=400, batch_size=20, hidden=(16,), lr=0.02),
                      tmp_path)
    app.switch_page("app_pages/estimator_variance.py").run()
    app.selectbox(key="model").set_value(f"run: {run_dir.name}")
    app.text_input(key="R").set_value("4")
    app.text_input(key="L").set_value("1 4")
    app.button(key="compute").click().run()
    deadline = time.monotonic() + PATIENCE
    while not app.dataframe and not app.error and time.monotonic() < deadline:
        time.sleep(0.5)
        app.run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    assert set(app.dataframe[0].value["L"]) == {1, 4}


def test_a_name_in_markdown_is_shown_as_text(app, tmp_path):
    odd = "**bold** _x_ [link](y) :red[red] $x$"
    folder = write_pngs(tmp_path / odd, digits(30)[0])
    give(app, "png", folder)
    assert not app.exception and not app.error
    assert inspected(app)["data"] == f"a folder of images: {folder}"  # in a table: text
    assert app.selectbox(key="train.dataset").format_func(str(folder)) == f"your data: {odd}"
    empty = tmp_path / odd / "empty"
    empty.mkdir()
    app.text_input(key="own_path").set_value(str(empty)).run()
    message = app.error[0].value
    assert message == plain(f"{empty} holds no images (PNG, JPEG) and no IDX files: put the data in it, or give "
                              f"{WHAT_TO_GIVE}.")
    assert "\\*\\*bold\\*\\*" in message and "\\[link\\]" in message and "\\:red\\[red\\]" in message  # escaped


def test_data_that_changed_since_the_run_is_refused_with_the_reason(app, tmp_path):
    folder = write_pngs(tmp_path / "faces", digits(30)[0])
    run_dir = trained(TrainConfig(dataset=str(folder), samples=400, batch_size=20, hidden=(16,), lr=0.02), tmp_path)
    (folder / "late.png").write_bytes((folder / "0000.png").read_bytes())
    app.switch_page("app_pages/runs.py").run()
    app.selectbox(key="run").set_value(run_dir.name).run()
    assert "has changed since this run trained on it" in app.warning[0].value.replace("\\", "")
    assert not [b for b in app.button if b.key == "continue"]  # no continuing on other data
    app.switch_page("app_pages/latent_explorer.py").run()
    app.selectbox(key="model").set_value(f"run: {run_dir.name}").run()
    assert not app.exception and not app.error
    assert app.get("component_instance")  # the pad needs no data
    open_tab(app, "Manifold (Fig. 4)")
    assert app.get("plotly_chart")  # nor does the manifold
    open_tab(app, "Reconstructions")
    shown = " ".join(i.value for i in app.info).replace("\\", "")
    assert "cannot be read: " in shown and "faces has changed since this run trained on it" in shown
