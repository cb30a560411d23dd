"""Every page through streamlit's AppTest, asserting on what each shows."""
import time

import pytest
from streamlit.testing.v1 import AppTest

from conftest import REPO
from vae_core import runs
from vae_core.training import TrainConfig, Trainer


@pytest.fixture
def app(monkeypatch, tmp_path, data_dir):
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("VAE_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("VAE_DATA_DIR", str(data_dir))
    at = AppTest.from_file(str(REPO / "dashboard.py"), default_timeout=60)
    at.run()
    return at


def texts(at) -> str:
    return "\n".join(e.value for kind in ("markdown", "info", "error", "caption", "subheader", "title")
                     for e in getattr(at, kind))


def test_home_lists_datasets_and_pages(app):
    assert not app.exception
    assert "Auto-Encoding Variational Bayes" in app.title[0].value
    table = app.dataframe[0].value
    assert table.set_index("dataset")["available"].to_dict() == {"mnist": True, "frey": True, "digits": True}
    assert "Latent explorer" in texts(app) and "Runs" in texts(app)


@pytest.mark.parametrize("page, words", [("pages/latent_explorer.py", "manifold"),
                                         ("pages/estimator_variance.py", "variance")])
def test_placeholder_pages_say_what_is_coming(app, page, words):
    app.switch_page(page).run()
    assert not app.exception and words in app.info[0].value


@pytest.mark.parametrize("field, value, words", [
    ("Latent dimensions J", 0, "latent_dim must be a whole number of at least 1"),
    ("Training samples to evaluate", "-5", "number of samples must be a whole number"),
    ("Step size ('auto' tries 0.01, 0.02, 0.1)", "fast", "step size must be a positive number or 'auto'"),
])
def test_train_form_rejects_bad_input_with_a_message(app, field, value, words):
    app.switch_page("pages/train.py").run()
    widget = next(w for w in [*app.number_input, *app.text_input] if w.label == field)
    widget.set_value(value)
    app.button[0].click().run()
    assert not app.exception
    assert any(words in e.value for e in app.error)


def test_train_page_trains_and_shows_curves_gallery_and_finish(app):
    app.switch_page("pages/train.py").run()
    app.selectbox[0].set_value("digits")
    next(w for w in app.text_input if w.label.startswith("Training samples")).set_value("30000")
    next(w for w in app.text_input if w.label.startswith("Step size")).set_value("0.02")
    app.button[0].click().run()
    assert not app.exception and not app.error
    deadline = time.monotonic() + 90
    while "finished" not in app.get("progress")[0].proto.text and time.monotonic() < deadline:
        time.sleep(0.5)
        app.run()
    bar = app.get("progress")[0].proto.text
    assert "finished: 30,000 / 30,000 samples" in bar and "test" in bar
    assert len(app.get("plotly_chart")) == 2
    assert len(app.get("image")) == 2
    run_dir = app.session_state["run_dir"]
    assert runs.read_json(f"{run_dir}/{runs.STATUS}")["state"] == "finished"


def test_runs_page_lists_compares_and_offers_downloads(app, tmp_path):
    for seed in (0, 1):
        Trainer(TrainConfig(dataset="digits", samples=5000, lr=0.02, seed=seed), runs_dir=tmp_path / "runs").run()
    app.switch_page("pages/runs.py").run()
    assert not app.exception
    table = app.dataframe[0].value
    assert len(table) == 2 and set(table["state"]) == {"finished"} and table["test bound"].notna().all()
    app.multiselect[0].set_value(list(table["run"])).run()
    figure = app.get("plotly_chart")[0].proto.spec
    assert all(f'{r}: test"' in figure for r in table["run"])
    labels = [b.proto.label for b in app.get("download_button")]
    assert labels == ["Metrics (CSV)", "Model (safetensors)"]


def test_runs_page_with_no_runs_says_how_to_make_one(app):
    app.switch_page("pages/runs.py").run()
    assert "No runs yet" in app.info[0].value
