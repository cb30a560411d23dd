"""Loaders on the verified copies in ../shared/data, and on damaged copies in a temporary folder."""
import dataclasses
import gzip
import hashlib
import http.server
import math
import shutil
import threading

import numpy as np
import pytest
import scipy.io

from vae_core import data
from vae_core.config import TrainConfig
from vae_core.data import DataError, DataFile
from vae_core.models import VAE, ModelConfig


def with_files(spec, *files):
    """The dataset's spec with other files (other URLs or checksums)."""
    return dataclasses.replace(spec, files=files)


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """No VAE_DATA_DIR, an empty cache, and download URLs that refuse at once (this machine is offline)."""
    monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    dead = {name: with_files(spec, *(DataFile(f.name, f.sha256, (f"http://127.0.0.1:9/{f.name}",)) for f in spec.files))
            for name, spec in data.DATASETS.items()}
    monkeypatch.setattr(data, "DATASETS", dead)
    data._load_cached.cache_clear()
    yield tmp_path
    data._load_cached.cache_clear()


def copy_dataset(data_dir, name, target):
    shutil.copytree(data_dir / name, target / name)
    for f in (target / name).iterdir():
        f.chmod(0o644)
    return target / name


def test_mnist_counts_shapes_and_statistics(data_dir):
    mnist = data.load("mnist", data_dir)
    assert mnist.train.shape == (60000, 784) and mnist.test.shape == (10000, 784)
    assert mnist.train.dtype == np.float32 and mnist.train.min() == 0.0 and mnist.train.max() == 1.0
    assert mnist.train.mean() == pytest.approx(0.1307, abs=5e-5)
    assert mnist.train.std() == pytest.approx(0.3081, abs=5e-5)
    assert np.bincount(mnist.train_labels).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert np.bincount(mnist.test_labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_frey_shapes_statistics_and_fixed_split(data_dir):
    frey = data.load("frey", data_dir)
    assert frey.train.shape == (1600, 560) and frey.test.shape == (365, 560) and frey.spec.image_shape == (28, 20)
    pixels = np.concatenate([frey.train, frey.test]) * 256
    assert pixels.min() == pytest.approx(8) and pixels.max() == pytest.approx(238)
    assert pixels.mean() == pytest.approx(154.46, abs=0.01) and pixels.std() == pytest.approx(44.90, abs=0.01)
    raw = scipy.io.loadmat(data_dir / "frey" / "frey_rawface.mat")["ff"].T / 256.0
    rows = {r.tobytes() for r in raw.astype(np.float32)}
    assert all(r.tobytes() in rows for r in frey.test)  # the split is a partition of the real faces
    assert not {r.tobytes() for r in frey.train} & {r.tobytes() for r in frey.test}


def test_digits_is_available_offline(isolated):
    digits = data.load("digits")
    assert digits.train.shape == (1500, 64) and digits.test.shape == (297, 64)
    assert digits.train.max() == 1.0 and digits.spec.likelihood == "bernoulli"


def test_every_spec_holds_its_real_data(data_dir):
    """Each spec against its dataset's files: D is its image shape's pixels, N its training points, and every file
    passes its checksum; the networks are Section 5's (MNIST Bernoulli with 500 hidden units, Frey Face Gaussian with
    200; digits, small too, 200)."""
    for name, spec in data.DATASETS.items():
        loaded = data.load(name, data_dir)
        assert loaded.spec == spec and spec.name == name
        assert math.prod(spec.image_shape) == spec.data_dim == loaded.train.shape[1] == loaded.test.shape[1]
        assert len(loaded.train) == spec.train_size
        assert all(problem is None for problem in data.verify(name, data_dir).values())
    assert {name: (s.image_shape, s.likelihood, s.hidden, s.train_size) for name, s in data.DATASETS.items()} == {
        "mnist": ((28, 28), "bernoulli", (500,), 60000), "frey": ((28, 20), "gaussian", (200,), 1600),
        "digits": ((8, 8), "bernoulli", (200,), 1500)}


def test_a_spec_gives_the_paper_network_and_its_size():
    """ModelConfig.for_dataset: the spec's D, shape, decoder and hidden layers; decoder_outputs and parameter_count
    are those of the network built from it (the Gaussian decoder's 2D outputs: a mean and a log-variance a pixel)."""
    outputs = {}
    for name, spec in data.DATASETS.items():
        config = ModelConfig.for_dataset(spec, 3)
        model = VAE(config)
        assert (config.data_dim, config.image_shape, config.hidden) == (spec.data_dim, spec.image_shape, spec.hidden)
        assert model.decoder.out.out_features == config.decoder_outputs
        assert config.parameter_count() == sum(p.numel() for p in model.parameters())
        outputs[name] = config.decoder_outputs
    assert outputs == {"mnist": 784, "frey": 1120, "digits": 64}
    encoder, decoder = (560 + 1) * 200 + (200 + 1) * 2 * 2, (2 + 1) * 200 + (200 + 1) * 2 * 560  # Frey Face, J = 2
    assert ModelConfig.for_dataset(data.DATASETS["frey"], 2).parameter_count() == encoder + decoder
    assert ModelConfig.for_dataset(data.DATASETS["mnist"], 2, (10, 20)).hidden == (10, 20)


def test_a_registered_spec_is_what_the_configuration_checks(monkeypatch):
    """A spec put in the registry (as a dataset found at run time would be) sets the configuration's limits, its
    network and its memory estimate."""
    before = TrainConfig(dataset="digits").memory_needed()
    monkeypatch.setitem(data.DATASETS, "digits", dataclasses.replace(data.DATASETS["digits"], train_size=100,
                                                                     likelihood="gaussian", hidden=(7,)))
    problems = TrainConfig(dataset="digits", batch_size=101, binarize=True).problems(machine=False)
    assert problems["batch_size"] == "batch_size M must be at most the 100 training datapoints of digits, got 101"
    assert problems["binarize"] == "binarize applies to Bernoulli data (mnist), not digits"
    network = TrainConfig(dataset="digits").model_config()
    assert network.hidden == (7,) and network.decoder_outputs == 128
    assert TrainConfig(dataset="digits").memory_needed() < before  # 7 hidden units, not 200
    with pytest.raises(DataError, match="unknown dataset 'cifar'; choose one of mnist, frey, digits"):
        data.dataset_spec("cifar")


def test_data_of_another_width_than_its_spec_is_refused():
    with pytest.raises(DataError, match=r"test images have shape \(2, 10\), but an image of 8x8 has 64 pixels"):
        data.Dataset(data.DATASETS["digits"], np.zeros((3, 64), np.float32), np.zeros((2, 10), np.float32))


def test_lookup_order_env_then_cache(isolated, data_dir, monkeypatch):
    monkeypatch.setenv(data.DATA_DIR_ENV, str(data_dir))
    assert data.locate("frey")["frey_rawface.mat"].parent == data_dir / "frey"
    monkeypatch.delenv(data.DATA_DIR_ENV)
    cached = copy_dataset(data_dir, "frey", data.cache_dir())
    assert data.locate("frey")["frey_rawface.mat"].parent == cached


def test_missing_while_offline_says_where_to_put_files(isolated):
    with pytest.raises(DataError) as e:
        data.load("frey")
    message = str(e.value)
    assert "frey_rawface.mat" in message and str(data.cache_dir() / "frey") in message
    assert "VAE_DATA_DIR" in message and "digits" in message
    assert not data.available("frey") and data.available("digits")
    assert not list((data.cache_dir() / "frey").glob("*.part"))  # no half-written download left behind


def test_checksum_mismatch_moves_the_file_aside(isolated, data_dir):
    folder = copy_dataset(data_dir, "frey", isolated / "d")
    content = bytearray((folder / "frey_rawface.mat").read_bytes())
    content[-1] ^= 0xFF
    (folder / "frey_rawface.mat").write_bytes(bytes(content))
    with pytest.raises(DataError, match="failed its checksum") as e:
        data.load("frey", isolated / "d")
    assert "moved aside" in str(e.value)
    assert not (folder / "frey_rawface.mat").exists() and (folder / "frey_rawface.mat.corrupt").exists()


def test_truncated_gzip_is_named(isolated, data_dir):
    folder = copy_dataset(data_dir, "mnist", isolated / "d")
    path = folder / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz is truncated"):
        data.load("mnist", isolated / "d")


def _trust(monkeypatch, name, file_name, content):
    """Declares `content` the verified file, to reach the parser's own checks behind the checksum."""
    spec = data.DATASETS[name]
    monkeypatch.setitem(data.DATASETS, name, with_files(spec, *(
        DataFile(f.name, hashlib.sha256(content).hexdigest() if f.name == file_name else f.sha256, f.urls)
        for f in spec.files)))


def test_mat_without_ff_is_named(isolated, monkeypatch):
    folder = isolated / "d" / "frey"
    folder.mkdir(parents=True)
    scipy.io.savemat(folder / "frey_rawface.mat", {"faces": np.zeros((560, 1965), np.uint8)})
    _trust(monkeypatch, "frey", "frey_rawface.mat", (folder / "frey_rawface.mat").read_bytes())
    with pytest.raises(DataError, match="no variable `ff`.*faces"):
        data.load("frey", isolated / "d")


def test_wrong_shapes_are_named(isolated, data_dir, monkeypatch):
    folder = isolated / "d" / "frey"
    folder.mkdir(parents=True)
    scipy.io.savemat(folder / "frey_rawface.mat", {"ff": np.zeros((560, 100), np.uint8)})
    _trust(monkeypatch, "frey", "frey_rawface.mat", (folder / "frey_rawface.mat").read_bytes())
    with pytest.raises(DataError, match=r"shape \(560, 100\), expected \(560, 1965\)"):
        data.load("frey", isolated / "d")
    mnist = copy_dataset(data_dir, "mnist", isolated / "d")
    labels = gzip.decompress((mnist / "t10k-labels-idx1-ubyte.gz").read_bytes())
    short = labels[:4] + (9999).to_bytes(4, "big") + labels[8:-1]
    (mnist / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(short))
    _trust(monkeypatch, "mnist", "t10k-labels-idx1-ubyte.gz", short)
    with pytest.raises(DataError, match=r"holds shape \(9999,\), expected \(10000,\)"):
        data.load("mnist", isolated / "d")


def test_download_verifies_and_lands_atomically_in_the_cache(isolated, data_dir, monkeypatch):
    served = isolated / "served"
    served.mkdir()
    shutil.copy(data_dir / "frey" / "frey_rawface.mat", served / "frey_rawface.mat")
    (served / "bad.mat").write_bytes(b"not a face")
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(served), **k)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    spec, file = data.DATASETS["frey"], data.DATASETS["frey"].files[0]
    # The first mirror serves a bad file: it is rejected and the second mirror is used.
    mirrors = (base + "bad.mat", base + "frey_rawface.mat")
    monkeypatch.setitem(data.DATASETS, "frey", with_files(spec, DataFile(file.name, file.sha256, mirrors)))
    seen = []
    try:
        frey = data.load("frey", progress=lambda name, done, total: seen.append((done, total)))
    finally:
        server.shutdown()
    assert frey.train.shape == (1600, 560)
    target = data.cache_dir() / "frey"
    assert sorted(p.name for p in target.iterdir()) == ["frey_rawface.mat"]  # nothing partial or corrupt left
    assert seen[-1] == (1100584, 1100584)
