"""Datasets of the paper (MNIST, Frey Face) and scikit-learn's bundled 8x8 digits, the offline default.

Files are looked up in `--data-dir` (if given, and only there), else `$VAE_DATA_DIR/<name>/`, then the
per-user cache (`$XDG_CACHE_HOME/vae_core/<name>/`), and are otherwise downloaded from their canonical
sources into the cache (never with `VAE_OFFLINE=1`). Every file is checked against the SHA-256 of its decompressed content; a
file that fails is moved aside and never used.
"""
from __future__ import annotations

import functools
import gzip
import hashlib
import os
import stat
import struct
import tempfile
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

DATA_DIR_ENV = "VAE_DATA_DIR"
OFFLINE_ENV = "VAE_OFFLINE"  # set to 1 to never download
Progress = Callable[[str, int, int | None], None]  # (file name, bytes so far, total bytes or None)


class DataError(RuntimeError):
    """A dataset file is missing, damaged or malformed; the message says which file and what to do."""


@dataclass(frozen=True)
class DataFile:
    name: str
    sha256: str  # of the decompressed content
    urls: tuple[str, ...]


_MNIST_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
_MNIST_SHA256 = {
    "train-images-idx3-ubyte.gz": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte.gz": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte.gz": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte.gz": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
SOURCES: dict[str, tuple[DataFile, ...]] = {
    "mnist": tuple(DataFile(n, h, tuple(m + n for m in _MNIST_MIRRORS)) for n, h in _MNIST_SHA256.items()),
    "frey": (DataFile("frey_rawface.mat", "265a83a23adb081755cd3de375509828e690324d1d60f076b8ecebc840d59c64",
                      ("https://cs.nyu.edu/~roweis/data/frey_rawface.mat",)),),
    "digits": (),  # bundled with scikit-learn
}
DATASETS = tuple(SOURCES)
TRAIN_SIZES = {"mnist": 60000, "frey": 1600, "digits": 1500}  # datapoints in each training set (N)
LIKELIHOODS = {"mnist": "bernoulli", "frey": "gaussian", "digits": "bernoulli"}  # the decoder the paper pairs with each
IMAGE_SHAPES = {"mnist": (28, 28), "frey": (28, 20), "digits": (8, 8)}
DEFAULT_HIDDEN = {"mnist": 500, "frey": 200, "digits": 200}  # Section 5: 500 for MNIST, 200 for Frey Face


@dataclass(frozen=True)
class Dataset:
    """Train and test images as float32 arrays (N, D) in [0, 1], with labels where the data has them."""
    name: str
    train: np.ndarray
    test: np.ndarray
    train_labels: np.ndarray | None
    test_labels: np.ndarray | None
    image_shape: tuple[int, int]
    likelihood: str | None = None  # the decoder the paper pairs with this data (default: by its name)

    def __post_init__(self):
        if self.likelihood is None:
            object.__setattr__(self, "likelihood", LIKELIHOODS[self.name])

    @property
    def data_dim(self) -> int:
        return self.train.shape[1]


def binarized(x: np.ndarray, seed: int) -> np.ndarray:
    """A fixed binarisation of grey pixels in [0, 1]: each pixel 1 with its intensity as probability, drawn once with
    `seed`, so that every evaluation of a run scores the same binary images."""
    return (np.random.default_rng(seed).random(x.shape, dtype=np.float32) < x).astype(np.float32)


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "vae_core"


def _search_dirs(name: str, data_dir: str | os.PathLike | None) -> list[Path]:
    if data_dir is not None:
        return [Path(data_dir) / name]
    dirs = [Path(os.environ[DATA_DIR_ENV]) / name] if os.environ.get(DATA_DIR_ENV) else []
    return dirs + [cache_dir() / name]


def _fetch_hint(path: Path) -> str:
    return f"`python -m vae_core data --dataset {path.parent.name}`"


def _read(path: Path) -> bytes:
    """The file's bytes; DataError naming the file when it cannot be read."""
    try:
        return path.read_bytes()
    except OSError as e:
        raise DataError(f"{path} cannot be read ({e.strerror or e}). Check that it is a file you may read, or delete "
                        f"it and run {_fetch_hint(path)} to fetch a fresh copy.") from None


def _decompressed(path: Path) -> bytes:
    raw = _read(path)
    if not path.name.endswith(".gz"):
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, gzip.BadGzipFile, OSError, zlib.error) as e:
        raise DataError(f"{path} is truncated, corrupted or not a gzip file ({e}). Delete it and run "
                        f"{_fetch_hint(path)} to fetch a fresh copy.") from None


def _present(path: Path) -> bool:
    """Whether a dataset file is at `path`; DataError when something else is there (a folder, a broken or looping
    link), which would otherwise read as a missing file."""
    if not os.path.lexists(path):
        return False
    try:
        mode = path.stat().st_mode
    except OSError as e:
        raise DataError(f"{path} cannot be opened ({e.strerror or e}): a broken or looping link? Replace it with the "
                        f"file, or delete it and run {_fetch_hint(path)}.") from None
    if not stat.S_ISREG(mode):
        kind = "a folder" if stat.S_ISDIR(mode) else "not a regular file"
        raise DataError(f"{path} is {kind}, where the dataset file {path.name} should be. Move it away and run "
                        f"{_fetch_hint(path)}.")
    return True


def _verified_content(path: Path, spec: DataFile) -> bytes:
    content = _decompressed(path)
    digest = hashlib.sha256(content).hexdigest()
    if digest != spec.sha256:
        aside = path.with_name(path.name + ".corrupt")
        try:
            os.replace(path, aside)
            where = f"It was moved aside to {aside}."
        except OSError:
            where = "It could not be moved aside (read-only folder): replace or delete it yourself."
        raise DataError(f"{path} failed its checksum (sha256 {digest}, expected {spec.sha256}). {where} "
                        f"Run `python -m vae_core data --dataset {path.parent.name}` to fetch a good copy.")
    return content


def _download(spec: DataFile, target: Path, progress: Progress | None) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    errors = []
    for url in spec.urls:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{spec.name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=30) as response:
                total = int(response.headers.get("Content-Length") or 0) or None
                done = 0
                while chunk := response.read(1 << 16):
                    out.write(chunk)
                    done += len(chunk)
                    if progress:
                        progress(spec.name, done, total)
            _verified_content(Path(tmp), spec)  # a bad download never reaches the final name
            os.replace(tmp, target)  # atomic: readers see the whole file or none
            return
        except (OSError, DataError) as e:
            errors.append(f"{url}: {e}")
        finally:
            for leftover in (tmp, tmp + ".corrupt"):
                if os.path.exists(leftover):
                    os.remove(leftover)
    raise DataError(f"{spec.name} is not on this machine and could not be downloaded ({'; '.join(errors)}). "
                    f"Put the file at {target}, or point ${DATA_DIR_ENV} at a folder holding "
                    f"{target.parent.name}/{spec.name}, or train on the bundled `digits` dataset.")


def locate_file(name: str, spec: DataFile, data_dir: str | os.PathLike | None = None) -> Path:
    """Where the file is on this machine; DataError saying where it was looked for when it is not."""
    dirs = _search_dirs(name, data_dir)
    path = next((d / spec.name for d in dirs if _present(d / spec.name)), None)
    if path is None:
        raise DataError(f"{spec.name} was not found in {', '.join(map(str, dirs))}. Run "
                        f"`python -m vae_core data --dataset {name}`, set ${DATA_DIR_ENV}, or use `digits`.")
    return path


def locate(name: str, data_dir: str | os.PathLike | None = None, download: bool = True,
           progress: Progress | None = None) -> dict[str, Path]:
    """Paths of the dataset's files, downloading those that are missing (unless `download` is False)."""
    if name not in SOURCES:
        raise DataError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    found = {}
    for spec in SOURCES[name]:
        try:
            found[spec.name] = locate_file(name, spec, data_dir)
        except DataError:
            if not download or os.environ.get(OFFLINE_ENV, "") not in ("", "0") or _something_there(name, spec, data_dir):
                raise
            found[spec.name] = _search_dirs(name, data_dir)[-1] / spec.name
            _download(spec, found[spec.name], progress)
    return found


def _something_there(name: str, spec: DataFile, data_dir) -> bool:
    """Whether a path of the file's name exists in a searched folder (a folder, a link): not to be downloaded over."""
    return any(os.path.lexists(d / spec.name) for d in _search_dirs(name, data_dir))


def _idx(path: Path, spec: DataFile, magic: int, count: int, item_shape: tuple[int, ...]) -> np.ndarray:
    content = _verified_content(path, spec)
    ndim = len(item_shape) + 1
    header = 4 + 4 * ndim
    if len(content) < header or struct.unpack(">I", content[:4])[0] != magic:
        raise DataError(f"{path} is not an IDX file of {ndim} dimensions (bad magic number).")
    dims = struct.unpack(f">{ndim}I", content[4:header])
    if dims != (count, *item_shape) or len(content) != header + int(np.prod(dims)):
        raise DataError(f"{path} holds shape {dims}, expected {(count, *item_shape)}.")
    return np.frombuffer(content, dtype=np.uint8, offset=header).reshape(dims)


def _seeded_split(n: int, n_train: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(0).permutation(n)  # fixed, so every run sees the same split
    return order[:n_train], order[n_train:]


def _load_mnist(paths: dict[str, Path]) -> Dataset:
    spec = {s.name: s for s in SOURCES["mnist"]}
    parts = {}
    for split, count in (("train", TRAIN_SIZES["mnist"]), ("t10k", 10000)):
        images = _idx(paths[f"{split}-images-idx3-ubyte.gz"], spec[f"{split}-images-idx3-ubyte.gz"], 2051, count, (28, 28))
        labels = _idx(paths[f"{split}-labels-idx1-ubyte.gz"], spec[f"{split}-labels-idx1-ubyte.gz"], 2049, count, ())
        parts[split] = (images.reshape(count, -1).astype(np.float32) / 255.0, labels.astype(np.int64))
    return Dataset("mnist", parts["train"][0], parts["t10k"][0], parts["train"][1], parts["t10k"][1], (28, 28))


def _load_frey(paths: dict[str, Path]) -> Dataset:
    import io

    import scipy.io

    path = paths["frey_rawface.mat"]
    content = _verified_content(path, SOURCES["frey"][0])
    try:
        mat = scipy.io.loadmat(io.BytesIO(content))
    except Exception as e:  # scipy raises several types for a malformed file
        raise DataError(f"{path} is not a readable MATLAB file ({e}).") from e
    if "ff" not in mat:
        raise DataError(f"{path} has no variable `ff` (found {sorted(k for k in mat if not k.startswith('__'))}).")
    faces = mat["ff"]
    if faces.shape != (560, 1965):
        raise DataError(f"{path}: `ff` has shape {faces.shape}, expected (560, 1965).")
    images = faces.T.astype(np.float32) / 256.0  # (1965, 560), rows of 28x20 upright faces; the paper's /256
    train, test = _seeded_split(len(images), TRAIN_SIZES["frey"])
    return Dataset("frey", images[train], images[test], None, None, (28, 20))


def _load_digits() -> Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = bunch.data.astype(np.float32) / 16.0
    train, test = _seeded_split(len(images), TRAIN_SIZES["digits"])
    labels = bunch.target.astype(np.int64)
    return Dataset("digits", images[train], images[test], labels[train], labels[test], (8, 8))


@functools.lru_cache(maxsize=4)
def _load_cached(name: str, files: tuple[tuple[str, Path, int, int], ...]) -> Dataset:
    paths = {file: path for file, path, _, _ in files}
    dataset = _load_digits() if name == "digits" else {"mnist": _load_mnist, "frey": _load_frey}[name](paths)
    for array in (dataset.train, dataset.test):
        array.setflags(write=False)  # shared between callers through the cache
    return dataset


def load(name: str, data_dir: str | os.PathLike | None = None, download: bool = True,
         progress: Progress | None = None) -> Dataset:
    """Loads a dataset by name ("mnist", "frey" or "digits"); raises DataError with advice if it cannot."""
    paths = locate(name, data_dir, download, progress)
    files = tuple(sorted((file, path, path.stat().st_mtime_ns, path.stat().st_size) for file, path in paths.items()))
    return _load_cached(name, files)  # a file replaced in place is read again


def verify(name: str, data_dir: str | os.PathLike | None = None) -> dict[str, str | None]:
    """Checks every file of the dataset on this machine (none is downloaded): file name -> what is wrong, or None
    when it is present and passes its checksum. Unlike `load`, it goes on past the first bad file."""
    problems: dict[str, str | None] = {}
    for spec in SOURCES[name]:
        try:
            path = locate_file(name, spec, data_dir)
            _verified_content(path, spec)
            problems[spec.name] = None
        except DataError as e:
            problems[spec.name] = str(e)
    return problems


def available(name: str, data_dir: str | os.PathLike | None = None) -> bool:
    """Whether the dataset's files are on this machine (nothing is downloaded)."""
    try:
        locate(name, data_dir, download=False)
        return True
    except DataError:
        return False


def availability(data_dir: str | os.PathLike | None = None) -> dict[str, str]:
    """For each dataset, where its files are, or what is missing, without downloading anything."""
    status = {}
    for name in DATASETS:
        try:
            paths = locate(name, data_dir, download=False)
            status[name] = str(next(iter(paths.values())).parent) if paths else "bundled with scikit-learn"
        except DataError as e:
            status[name] = f"missing: {e}"
    return status
