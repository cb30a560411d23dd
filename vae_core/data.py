"""Datasets of the paper (MNIST, Frey Face) and scikit-learn's bundled 8x8 digits, the offline default.

Each dataset is one `DatasetSpec` in `DATASETS`: its image shape, likelihood, training-set size, the paper's network
for it, its canonical files with their checksums, and its reader. The loader, the configuration's checks, the memory
and cost estimates, the sweep and the pages all read it there.

Files are looked up in `--data-dir` (if given, and only there), else `$VAE_DATA_DIR/<name>/`, then the
per-user cache (`$XDG_CACHE_HOME/vae_core/<name>/`), and are otherwise downloaded from their canonical
sources into the cache (never with `VAE_OFFLINE=1`). Every file is checked against the SHA-256 of its decompressed content; a
file that fails is moved aside and never used.

A name that is not in `DATASETS` is the path of the user's own data (`userdata.py`): its spec is found when it is read.
"""
from __future__ import annotations

import functools
import gzip
import hashlib
import math
import os
import stat
import struct
import tempfile
import urllib.request
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from . import userdata

DATA_DIR_ENV = "VAE_DATA_DIR"
OFFLINE_ENV = "VAE_OFFLINE"  # set to 1 to never download
Progress = Callable[[str, int, int | None], None]  # (file name, bytes so far, total bytes or None)


MANIFOLD_GRID = 20  # images per side of Fig. 4's manifold


class DataError(RuntimeError):
    """A dataset file is missing, damaged or malformed; the message says which file and what to do."""


@dataclass(frozen=True)
class DataFile:
    name: str
    sha256: str  # of the decompressed content
    urls: tuple[str, ...]


@dataclass(frozen=True)
class DatasetSpec:
    """What is known of a dataset before its files are read. A dataset found at run time is one too: a spec with its
    own files and reader."""
    name: str  # also its folder in the data directories
    title: str  # as the paper and the pages name it
    image_shape: tuple[int, int]  # (rows, columns) of an image; D = rows x columns
    likelihood: str  # the decoder p(x|z) the paper pairs with the data: "bernoulli" or "gaussian"
    train_size: int  # N, datapoints in the training set
    hidden: tuple[int, ...]  # the paper's network for it: units of each hidden layer (Section 5)
    files: tuple[DataFile, ...]  # its canonical files, each with the checksum it must pass; none: bundled
    read: Callable[[DatasetSpec, dict[str, Path]], Dataset]  # the data from its verified files, by file name
    manifold_grid: int = MANIFOLD_GRID  # images per side of the explorer's Fig. 4 manifold at first
    source: userdata.Source | None = None  # the user's own data: what was read and done to it; None in DATASETS

    @property
    def data_dim(self) -> int:
        return math.prod(self.image_shape)

    @property
    def is_image(self) -> bool:
        return is_image(self.image_shape)


def is_image(shape: tuple[int, ...]) -> bool:
    """Whether data of this shape is drawn as images; (1, D) is a vector of D numbers (a row of a CSV, say)."""
    return len(shape) == 2 and min(shape) > 1


SMALL_DATASET = 10_000  # training points below which the paper's rule gives a dataset the narrower network


def paper_hidden(train_size: int) -> tuple[int, ...]:
    """The paper's network width for a dataset of N training points. Section 5 gives MNIST (N = 60,000) 500 hidden
    units and Frey Face (N = 1,965) 200, the fewer because it is a much smaller dataset (to keep it from overfitting):
    the width follows N, not D. Between its two sizes the paper says nothing; this project's rule puts the line at
    10,000, near their geometric mean (about 10,900): 500 units from there up, 200 below (digits, N = 1,797: 200)."""
    return (500,) if train_size >= SMALL_DATASET else (200,)


@dataclass(frozen=True)
class Dataset:
    """Train and test images of the dataset `spec` as float32 arrays (N, D) in [0, 1], with labels where the data
    has them."""
    spec: DatasetSpec
    train: np.ndarray
    test: np.ndarray
    train_labels: np.ndarray | None = None
    test_labels: np.ndarray | None = None

    def __post_init__(self):
        (rows, columns), D = self.spec.image_shape, self.spec.data_dim
        for split, images in (("train", self.train), ("test", self.test)):
            if images.ndim != 2 or images.shape[1] != D:
                raise DataError(f"{self.spec.name}: the {split} images have shape {images.shape}, but an image of "
                                f"{rows}x{columns} has {D} pixels")

    @property
    def name(self) -> str:
        return self.spec.name


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


def _verified_content(path: Path, file: DataFile) -> bytes:
    content = _decompressed(path)
    digest = hashlib.sha256(content).hexdigest()
    if digest != file.sha256:
        aside = path.with_name(path.name + ".corrupt")
        try:
            os.replace(path, aside)
            where = f"It was moved aside to {aside}."
        except OSError:
            where = "It could not be moved aside (read-only folder): replace or delete it yourself."
        raise DataError(f"{path} failed its checksum (sha256 {digest}, expected {file.sha256}). {where} "
                        f"Run `python -m vae_core data --dataset {path.parent.name}` to fetch a good copy.")
    return content


def _download(file: DataFile, target: Path, progress: Progress | None) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    errors = []
    for url in file.urls:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{file.name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=30) as response:
                total = int(response.headers.get("Content-Length") or 0) or None
                done = 0
                while chunk := response.read(1 << 16):
                    out.write(chunk)
                    done += len(chunk)
                    if progress:
                        progress(file.name, done, total)
            _verified_content(Path(tmp), file)  # a bad download never reaches the final name
            os.replace(tmp, target)  # atomic: readers see the whole file or none
            return
        except (OSError, DataError) as e:
            errors.append(f"{url}: {e}")
        finally:
            for leftover in (tmp, tmp + ".corrupt"):
                if os.path.exists(leftover):
                    os.remove(leftover)
    raise DataError(f"{file.name} is not on this machine and could not be downloaded ({'; '.join(errors)}). "
                    f"Put the file at {target}, or point ${DATA_DIR_ENV} at a folder holding "
                    f"{target.parent.name}/{file.name}, or train on the bundled `digits` dataset.")


def locate_file(name: str, file: DataFile, data_dir: str | os.PathLike | None = None) -> Path:
    """Where the file is on this machine; DataError saying where it was looked for when it is not."""
    dirs = _search_dirs(name, data_dir)
    path = next((d / file.name for d in dirs if _present(d / file.name)), None)
    if path is None:
        raise DataError(f"{file.name} was not found in {', '.join(map(str, dirs))}. Run "
                        f"`python -m vae_core data --dataset {name}`, set ${DATA_DIR_ENV}, or use `digits`.")
    return path


def locate(name: str, data_dir: str | os.PathLike | None = None, download: bool = True,
           progress: Progress | None = None) -> dict[str, Path]:
    """Paths of the dataset's files, downloading those that are missing (unless `download` is False)."""
    found = {}
    for file in dataset_spec(name).files:
        try:
            found[file.name] = locate_file(name, file, data_dir)
        except DataError:
            if not download or os.environ.get(OFFLINE_ENV, "") not in ("", "0") or _something_there(name, file, data_dir):
                raise
            found[file.name] = _search_dirs(name, data_dir)[-1] / file.name
            _download(file, found[file.name], progress)
    return found


def _something_there(name: str, file: DataFile, data_dir) -> bool:
    """Whether a path of the file's name exists in a searched folder (a folder, a link): not to be downloaded over."""
    return any(os.path.lexists(d / file.name) for d in _search_dirs(name, data_dir))


IDX_MAGIC = {"images": 2051, "labels": 2049}  # unsigned bytes in 3 dimensions (N, rows, columns), and in 1 (N,)


def parse_idx(content: bytes, path: Path, magic: int) -> np.ndarray:
    """An IDX file of unsigned bytes (MNIST's format: a magic number, then each dimension's size, then the bytes) as
    an array of the shape its header gives; DataError naming the file when the header or the length is wrong."""
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(content) < header or struct.unpack(">I", content[:4])[0] != magic:
        raise DataError(f"{path} is not an IDX file of unsigned bytes in {ndim} dimensions (bad magic number).")
    dims = struct.unpack(f">{ndim}I", content[4:header])
    if len(content) != header + math.prod(dims):
        raise DataError(f"{path}: its header gives shape {dims}, {math.prod(dims):,} bytes, but it holds "
                        f"{len(content) - header:,}: the file is truncated or not an IDX file.")
    return np.frombuffer(content, dtype=np.uint8, offset=header).reshape(dims)


def _idx(path: Path, file: DataFile, magic: int, count: int, item_shape: tuple[int, ...]) -> np.ndarray:
    array = parse_idx(_verified_content(path, file), path, magic)
    if array.shape != (count, *item_shape):
        raise DataError(f"{path} holds shape {array.shape}, expected {(count, *item_shape)}.")
    return array


SPLIT_SEED = 0  # the seed of every split this project makes (Frey Face, digits, the user's data without a test set)


def _seeded_split(n: int, n_train: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(SPLIT_SEED).permutation(n)  # fixed, so every run sees the same split
    return order[:n_train], order[n_train:]


def _read_mnist(spec: DatasetSpec, paths: dict[str, Path]) -> Dataset:
    files = {f.name: f for f in spec.files}
    parts = {}
    for split, count in (("train", spec.train_size), ("t10k", 10000)):
        image_file, label_file = f"{split}-images-idx3-ubyte.gz", f"{split}-labels-idx1-ubyte.gz"
        images = _idx(paths[image_file], files[image_file], IDX_MAGIC["images"], count, spec.image_shape)
        labels = _idx(paths[label_file], files[label_file], IDX_MAGIC["labels"], count, ())
        parts[split] = (images.reshape(count, -1).astype(np.float32) / 255.0, labels.astype(np.int64))
    return Dataset(spec, parts["train"][0], parts["t10k"][0], parts["train"][1], parts["t10k"][1])


def _read_frey(spec: DatasetSpec, paths: dict[str, Path]) -> Dataset:
    import io

    import scipy.io

    file = spec.files[0]
    path = paths[file.name]
    content = _verified_content(path, file)
    try:
        mat = scipy.io.loadmat(io.BytesIO(content))
    except Exception as e:  # scipy raises several types for a malformed file
        raise DataError(f"{path} is not a readable MATLAB file ({e}).") from e
    if "ff" not in mat:
        raise DataError(f"{path} has no variable `ff` (found {sorted(k for k in mat if not k.startswith('__'))}).")
    faces = mat["ff"]
    if faces.shape != (spec.data_dim, 1965):
        raise DataError(f"{path}: `ff` has shape {faces.shape}, expected {(spec.data_dim, 1965)}.")
    images = faces.T.astype(np.float32) / 256.0  # (1965, D), a row an upright face; the paper's /256
    train, test = _seeded_split(len(images), spec.train_size)
    return Dataset(spec, images[train], images[test])


def _read_digits(spec: DatasetSpec, paths: dict[str, Path]) -> Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = bunch.data.astype(np.float32) / 16.0
    train, test = _seeded_split(len(images), spec.train_size)
    labels = bunch.target.astype(np.int64)
    return Dataset(spec, images[train], images[test], labels[train], labels[test])


_MNIST_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
_MNIST_SHA256 = {
    "train-images-idx3-ubyte.gz": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte.gz": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte.gz": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte.gz": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
# Section 5: a Bernoulli decoder for MNIST, a Gaussian one for Frey Face's grey levels; 500 hidden units for MNIST,
# 200 for Frey Face (less data, less overfitting); digits, small too, takes Frey Face's 200 (`paper_hidden`'s rule).
DATASETS: dict[str, DatasetSpec] = {spec.name: spec for spec in (
    DatasetSpec("mnist", "MNIST", (28, 28), "bernoulli", train_size=60000, hidden=(500,),
                files=tuple(DataFile(n, h, tuple(m + n for m in _MNIST_MIRRORS)) for n, h in _MNIST_SHA256.items()),
                read=_read_mnist),
    DatasetSpec("frey", "Frey Face", (28, 20), "gaussian", train_size=1600, hidden=(200,),
                files=(DataFile("frey_rawface.mat", "265a83a23adb081755cd3de375509828e690324d1d60f076b8ecebc840d59c64",
                                ("https://cs.nyu.edu/~roweis/data/frey_rawface.mat",)),),
                read=_read_frey, manifold_grid=12),  # fewer, larger faces
    DatasetSpec("digits", "scikit-learn's 8x8 digits", (8, 8), "bernoulli", train_size=1500, hidden=(200,),
                files=(), read=_read_digits),  # bundled with scikit-learn
)}


def dataset_spec(name: str, image_size: str | None = None, scale: str = "auto") -> DatasetSpec:
    """The dataset of that name, or the spec of the user's data at that path, read with `image_size` and `scale`
    (`userdata.user_dataset`); DataError saying what is wrong when there is neither."""
    if name in DATASETS:
        _only_for_own_data(name, image_size, scale)
        return DATASETS[name]
    return _user_data(name, image_size, scale).spec


def _only_for_own_data(name: str, image_size: str | None, scale: str) -> None:
    given = [f"{option} {value}" for option, value, default in (("image_size", image_size, None),
                                                                ("scale", scale, "auto")) if value != default]
    if given:
        raise DataError(f"{' and '.join(given)} apply to your own data (a path), not to {name}, which is read as the "
                        f"paper reads it")


def _user_data(path: str, image_size: str | None, scale: str, sha256: str | None = None) -> Dataset:
    from .userdata import user_dataset

    dataset = user_dataset(path, image_size, scale)
    found = dataset.spec.source.sha256 if dataset.spec.source is not None else None
    if sha256 is not None and found != sha256:
        raise DataError(f"{path} has changed since this run trained on it (its SHA-256 was {sha256}, it is now "
                        f"{found}): the run's numbers would not be of the same data. Put the data "
                        f"back as it was, or train a new run on it as it is now.")
    return dataset


@functools.lru_cache(maxsize=4)
def _load_cached(spec: DatasetSpec, files: tuple[tuple[str, Path, int, int], ...]) -> Dataset:
    dataset = spec.read(spec, {file: path for file, path, _, _ in files})
    for array in (dataset.train, dataset.test):
        array.setflags(write=False)  # shared between callers through the cache
    return dataset


def load(name: str, data_dir: str | os.PathLike | None = None, download: bool = True,
         progress: Progress | None = None, image_size: str | None = None, scale: str = "auto",
         sha256: str | None = None) -> Dataset:
    """Loads a dataset by name (a key of DATASETS), or the user's data at the path `name`, read with `image_size` and
    `scale`, refused when its content's SHA-256 is not `sha256` (when given: the data a run trained on); raises
    DataError with advice if it cannot."""
    if name not in DATASETS:
        return _user_data(name, image_size, scale, sha256)
    _only_for_own_data(name, image_size, scale)
    paths = locate(name, data_dir, download, progress)
    files = tuple(sorted((file, path, path.stat().st_mtime_ns, path.stat().st_size) for file, path in paths.items()))
    return _load_cached(dataset_spec(name), files)  # a file replaced in place is read again


def verify(name: str, data_dir: str | os.PathLike | None = None) -> dict[str, str | None]:
    """Checks every file of the dataset on this machine (none is downloaded): file name -> what is wrong, or None
    when it is present and passes its checksum. Unlike `load`, it goes on past the first bad file."""
    problems: dict[str, str | None] = {}
    for file in dataset_spec(name).files:
        try:
            path = locate_file(name, file, data_dir)
            _verified_content(path, file)
            problems[file.name] = None
        except DataError as e:
            problems[file.name] = str(e)
    return problems


def available(name: str, data_dir: str | os.PathLike | None = None) -> bool:
    """Whether the dataset's files are on this machine (nothing is downloaded); for the user's data, whether its path
    is there."""
    if name not in DATASETS:
        return os.path.exists(name)
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
