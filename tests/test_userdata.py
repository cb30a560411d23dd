"""Your own data (vae_core/userdata.py): each source read, checked and described; each end to end through the CLI
(train, resume, evaluate), on small data the tests write (tests/own_data.py). The bad inputs are rows of
tests/test_faults.py's table."""
import contextlib
import io
import json
import os
import zipfile

import numpy as np
import pytest
from own_data import digits, every_source, png_bytes, write_idx, write_pngs

from vae_core import data, runs
from vae_core.cli import main
from vae_core.config import TrainConfig
from vae_core.data import DataError
from vae_core.userdata import describe, parse_image_size, summary


@pytest.fixture
def sources(tmp_path):
    return every_source(tmp_path / "data")


def cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = main(list(argv))
    return code, out.getvalue()


def test_each_source_becomes_a_dataset_with_its_shape_split_labels_and_values(sources):
    expected = {  # train, test, shape, labelled, format
        "npy": (108, 12, (8, 8), False, "npy"), "npz": (100, 20, (8, 8), True, "npz"),
        "csv": (108, 12, (1, 12), False, "csv"), "png": (108, 12, (8, 8), True, "images"),
        "zip": (108, 12, (8, 8), False, "zip"), "idx": (100, 20, (8, 8), True, "idx")}
    images, labels = digits()
    for name, path in sources.items():
        dataset = data.load(str(path))
        train, test, shape, labelled, kind = expected[name]
        assert (len(dataset.train), len(dataset.test), dataset.spec.image_shape) == (train, test, shape), name
        assert (dataset.train_labels is not None, dataset.spec.source.format) == (labelled, kind), name
        assert dataset.train.dtype == np.float32 and 0 <= dataset.train.min() and dataset.train.max() <= 1
        assert dataset.spec.name == str(path) and dataset.spec.title == path.name
        assert dataset.spec.likelihood == "bernoulli" and dataset.spec.hidden == (200,)  # N < 10,000: Frey Face's
        pool = np.concatenate([dataset.train, dataset.test])
        if shape == (8, 8):  # every source of the digits holds the same images, whatever the order
            assert sorted(map(bytes, (pool * 255).round().astype(np.uint8))) == sorted(map(bytes, images.reshape(120, -1)))
    npz = data.load(str(sources["npz"]))
    assert np.array_equal(npz.test, images[-20:].reshape(20, -1) / np.float32(255))  # its own split, in order
    assert npz.spec.source.classes == tuple(str(c) for c in range(10)) and np.array_equal(npz.test_labels, labels[-20:])
    png = data.load(str(sources["png"]))
    assert png.spec.source.classes == ("class0", "class1", "class2")  # labelled by subfolder


def test_the_split_is_seeded_and_said(sources):
    first, again = data.load(str(sources["npy"])), data.load(str(sources["npy"]), scale="range")
    assert np.array_equal(first.test > 0, again.test > 0)  # the same 12 held out whatever else changes
    assert "a seeded split: 10% held out to test, by seed 0" in first.spec.source.split
    assert data.load(str(sources["idx"])).spec.source.split == "the data's own split"


def test_scaling_is_stated_and_values_outside_are_refused_unless_range_is_asked(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "unit.npy", rng.random((20, 3)))
    np.save(tmp_path / "bytes.npy", rng.integers(0, 256, (20, 3)).astype(np.float64))  # whole numbers as floats
    np.save(tmp_path / "wide.npy", rng.normal(5, 3, (20, 3)))
    np.save(tmp_path / "binary.npy", rng.integers(0, 2, (20, 3)).astype(bool))
    assert "used as they are" in data.load(str(tmp_path / "unit.npy")).spec.source.steps[0]
    assert "divided by 255" in data.load(str(tmp_path / "bytes.npy")).spec.source.steps[0]
    with pytest.raises(DataError, match=r"wide\.npy: its values run from -?[\d.]+ to [\d.]+, outside .* --scale range"):
        data.load(str(tmp_path / "wide.npy"))
    wide = data.load(str(tmp_path / "wide.npy"), scale="range")
    assert min(wide.train.min(), wide.test.min()) == 0 and max(wide.train.max(), wide.test.max()) == 1
    assert "mapped from the data's own range" in wide.spec.source.steps[0]
    binary = describe(data.load(str(tmp_path / "binary.npy")))
    assert binary["values"] == "binary" and binary["likelihood"] == "bernoulli"
    assert binary["likelihood_reason"] == "the values are binary"


def test_images_of_several_sizes_are_resized_only_when_asked(tmp_path):
    images, _ = digits(6)
    folder = write_pngs(tmp_path / "mixed", images)
    from PIL import Image
    Image.fromarray(np.zeros((10, 12), np.uint8)).save(folder / "wide.png")
    with pytest.raises(DataError, match=r"2 sizes, 8x8 \(6 images\), 10x12 \(1 image\); .*wide\.png is 10x12\. Give "
                                        r"--image-size 8x8 \(the most common\)"):
        data.load(str(folder))
    auto = data.load(str(folder), image_size="auto")
    assert auto.spec.image_shape == (8, 8) and "1 resized to 8x8 (the most common size; Lanczos)" in auto.spec.source.steps
    asked = data.load(str(folder), image_size="16x12")
    assert asked.spec.image_shape == (16, 12) and asked.train.shape[1] == 192


def test_colour_becomes_grey_and_channels_first_are_read(tmp_path):
    rng = np.random.default_rng(0)
    colour = rng.integers(0, 256, (10, 6, 5, 3), dtype=np.uint8)
    np.save(tmp_path / "rgb.npy", colour)
    np.save(tmp_path / "chw.npy", colour.transpose(0, 3, 1, 2))
    grey = (colour @ np.array([0.299, 0.587, 0.114])).round() / 255
    for name in ("rgb.npy", "chw.npy"):
        dataset = data.load(str(tmp_path / name))
        assert dataset.spec.image_shape == (6, 5)
        pool = np.concatenate([dataset.train, dataset.test])
        assert np.allclose(np.sort(pool.sum(1)), np.sort(grey.reshape(10, -1).sum(1)), atol=1e-4)
    folder = tmp_path / "pngs"
    folder.mkdir()
    for i, image in enumerate(colour):
        (folder / f"{i}.png").write_bytes(png_bytes(image))
    assert "10 in colour converted to grey" in "; ".join(data.load(str(folder)).spec.source.steps)


def test_rows_of_a_csv_become_images_when_given_a_shape_that_holds_them(sources):
    csv = str(sources["csv"])
    assert data.load(csv, image_size="3x4").spec.image_shape == (3, 4)
    with pytest.raises(DataError, match=r"a row of 12 values cannot be an image of 5x5 \(25 pixels\)"):
        data.load(csv, image_size="5x5")
    assert parse_image_size(" 28 X 20 ") == "28x20" and parse_image_size("") is None and parse_image_size("auto") == "auto"
    with pytest.raises(ValueError, match="rows x columns"):
        parse_image_size("big")


def test_emnist_images_are_turned_upright_and_several_idx_sets_are_refused(tmp_path):
    images, labels = digits(40)
    folder = write_idx(tmp_path / "emnist", images, labels, prefix="emnist-letters-")
    dataset = data.load(str(folder))
    assert np.array_equal(dataset.train[0].reshape(8, 8), images[0].T / np.float32(255))
    assert "EMNIST stores its images transposed: turned back upright" in dataset.spec.source.steps
    write_idx(folder, images, labels, prefix="emnist-digits-")
    with pytest.raises(DataError, match=r"holds 2 IDX datasets \(emnist-digits-train-images..., emnist-letters-"):
        data.load(str(folder))


def test_data_is_read_again_when_it_changes_and_a_recorded_sha256_is_checked(sources):
    path = sources["npy"]
    first = data.load(str(path))
    assert data.load(str(path)) is first  # cached while the file stays the same
    sha = first.spec.source.sha256
    assert data.load(str(path), sha256=sha) is first
    images, _ = digits(130)
    np.save(path, images)
    os.utime(path, ns=(1, 1))  # another time stamp, whatever the clock's resolution
    with pytest.raises(DataError, match=r"digits\.npy has changed since this run trained on it \(its SHA-256 was "
                                        rf"{sha}, it is now [0-9a-f]{{64}}\)"):
        data.load(str(path), sha256=sha)
    assert len(data.load(str(path)).train) == 117


def test_no_pickle_is_ever_loaded(tmp_path):
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}, {"b": 2}], dtype=object), allow_pickle=True)
    np.savez(tmp_path / "objects.npz", x=np.array([{"a": 1}], dtype=object))
    import pickle
    (tmp_path / "pickled.npy").write_bytes(pickle.dumps([1, 2, 3]))
    for name in ("objects.npy", "objects.npz", "pickled.npy"):
        with pytest.raises(DataError, match="Python objects \\(pickled data\\), which this project never loads"):
            data.load(str(tmp_path / name))


def test_a_zip_of_images_is_read_in_place_and_only_images_are_allowed(tmp_path):
    images, _ = digits(5)
    with zipfile.ZipFile(tmp_path / "mixed.zip", "w") as archive:
        for i, image in enumerate(images):
            archive.writestr(f"{i}.png", png_bytes(image))
        archive.writestr("notes/readme.txt", "hello")
    with pytest.raises(DataError, match=r"mixed\.zip: notes/readme\.txt is not an image"):
        data.load(str(tmp_path / "mixed.zip"))


def test_the_paper_rule_for_hidden_units_gives_each_registered_dataset_its_width():
    """Section 5: 500 units for MNIST (N = 60,000), 200 for Frey Face (1,965, "considerably smaller"); the width follows
    N. The project's line between them, 10,000, gives digits (1,500 training points) Frey Face's 200 too."""
    for spec in data.DATASETS.values():
        assert data.paper_hidden(spec.train_size) == spec.hidden, spec.name
    assert data.paper_hidden(9_999) == (200,) and data.paper_hidden(10_000) == (500,)


def test_the_configuration_takes_a_path_keeps_it_absolute_and_names_its_runs_safely(sources, tmp_path, monkeypatch):
    monkeypatch.chdir(sources["png"].parent)
    config = TrainConfig(dataset="./pngs", batch_size=20)
    assert config.dataset == str(sources["png"]) and config.own_data and config.problems() == {}
    assert config.spec.image_shape == (8, 8) and config.model_config().data_dim == 64
    assert TrainConfig(dataset="digits").run_label == "digits-J2"
    odd = tmp_path / "**my** [faces](x) ü.npy"
    odd.write_bytes(sources["npy"].read_bytes())
    assert TrainConfig(dataset=str(odd), latent_dim=5).run_label == "my_faces_x-J5"  # a name is data, never a path
    assert TrainConfig(dataset="./pngs", likelihood="gaussian", batch_size=20).model_config().likelihood == "gaussian"
    assert TrainConfig(dataset="mnist", scale="range").problems(machine=False)["scale"] == (
        "scale applies to your own data (a path), not to mnist, which is read as the paper reads it")
    assert TrainConfig(dataset="./pngs", batch_size=500).problems()["batch_size"].startswith(
        "batch_size M must be at most the 108 training datapoints of")
    gone = TrainConfig(dataset=str(tmp_path / "gone.npy"))
    assert gone.problems(machine=False) == {}  # a saved run's settings are checked without its data
    assert gone.problems()["dataset"].startswith(f"{tmp_path / 'gone.npy'} does not exist: check the path")


def test_inspect_says_what_the_project_would_make_of_the_data(sources):
    code, text = cli("data", "--inspect", str(sources["png"]))
    assert code == 0, text
    lines = dict(line.split(":", 1) for line in text.splitlines() if ":" in line and not line.startswith("train on"))
    assert lines["data"].strip() == f"a folder of images: {sources['png']}"
    assert lines["datapoints"].strip().startswith("120: 108 to train, 12 to test (a seeded split")
    assert lines["each"].strip() == "an image of 8x8 pixels, D = 64"
    assert lines["values"].strip().startswith("grey levels in [0, 1] (found from 0 to 255)")
    assert lines["labels"].strip() == "3 classes" and lines["decoder p(x|z)"].strip().startswith("bernoulli: grey values")
    assert f"train on it: python -m vae_core train --dataset {sources['png']} --latent-dim 2" in text
    code, text = cli("data", "--inspect", str(sources["csv"]), "--likelihood", "gaussian", "--json")
    about = json.loads(text.strip().splitlines()[-1])
    assert (about["image"], about["D"], about["likelihood"], about["likelihood_reason"]) == (
        False, 12, "gaussian", "as asked (--likelihood gaussian)")
    assert about["preprocessing"][0] == "its first line, a header of names, skipped"
    assert dict(summary(about))["each"] == "a vector of 12 numbers, D = 12"
    code, text = cli("data", "--inspect", "digits")
    assert code == 0 and "scikit-learn's 8x8 digits" in text


@pytest.mark.parametrize("source", ["npy", "npz", "csv", "png", "zip", "idx"])
def test_each_source_trains_resumes_and_evaluates_through_the_cli(sources, source, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VAE_RUNS_DIR", str(tmp_path / "runs"))
    path = sources[source]
    code, text = cli("train", "--dataset", str(path), "--latent-dim", "2", "--hidden", "16", "--batch-size", "20",
                     "--samples", "400", "--lr", "0.02", "--json")
    assert code == 0, text
    result = json.loads(text.strip().splitlines()[-1])
    run_dir = result["run_dir"]
    assert os.path.basename(run_dir).split("-")[2] == path.stem.replace(".", "_")  # named after the data, safely
    recorded = runs.read_json(f"{run_dir}/{runs.CONFIG}")
    assert recorded["train_config"]["dataset"] == str(path)
    assert recorded["data"]["source"] == str(path) and recorded["data"]["sha256"] == data.load(str(path)).spec.source.sha256
    assert recorded["data"]["split"] and recorded["data"]["preprocessing"]
    code, text = cli("train", "--resume", run_dir, "--samples", "800")
    assert code == 0, text
    assert runs.checkpoint_samples(run_dir) == 800
    code, text = cli("evaluate", run_dir, "--iw-samples", "5", "--json")
    assert code == 0, text
    scores = json.loads(text.strip().splitlines()[-1])
    assert np.isfinite(scores["test_lower_bound"]) and scores["test_log_likelihood"] >= scores["test_lower_bound"] - 5
    code, text = cli("variance", run_dir, "--L", "1", "2", "--repeats", "4", "--batch-size", "5", "--estimators", "A",
                     "B", "--json")
    assert code == 0, text
