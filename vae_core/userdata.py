"""Your own data: a NumPy file (.npy, or .npz with x_train and x_test, or one array), a CSV of numbers, a folder or
.zip of images (PNG, JPEG and the other formats Pillow reads), or a folder of IDX files in MNIST's format
(Fashion-MNIST, KMNIST, EMNIST), made into a dataset like the paper's at run time, from its path.

`user_dataset(path, image_size, scale)` reads it once (again only when its files change) into a `data.Dataset`
whose `DatasetSpec` comes from the data: its shape, N, the decoder (Bernoulli: for binary data, and for grey data as
the paper treats MNIST's) and the paper's network for its N (`data.paper_hidden`). The spec's `Source` records what
was read and done: the format, the SHA-256 of the content, and the scaling, resizing and split as sentences, which
`data --inspect`, the Train page and a run's config.json show (`describe`).

Every check comes before anything is trained or written; a failure is a `DataError` naming the file and saying what
to do: a path that is not there or cannot be read, an empty folder, a file that is not an image among images, images
of several sizes (unless `image_size` says what to resize them to), NaN or infinite values, values outside [0, 1] and
0-255 (unless `scale` is "range"), a single datapoint, text in a CSV, and data larger than the memory allowed
(refused from its size, before it is read). No pickle: NumPy files are read with allow_pickle=False.
"""
from __future__ import annotations

import csv
import functools
import gzip
import hashlib
import io
import os
import re
import struct
import warnings
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from .data import (
    DATASETS,
    IDX_MAGIC,
    SMALL_DATASET,
    SPLIT_SEED,
    DataError,
    DataFile,
    Dataset,
    DatasetSpec,
    _seeded_split,
    paper_hidden,
    parse_idx,
)

FORMATS = {"npy": "a NumPy array (.npy)", "npz": "NumPy arrays (.npz)", "csv": "a CSV of numbers",
           "images": "a folder of images", "zip": "a .zip of images", "idx": "a folder of IDX files (MNIST's format)"}
SUFFIXES = {".npy": "npy", ".npz": "npz", ".csv": "csv", ".tsv": "csv", ".txt": "csv", ".zip": "zip"}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
IGNORED = ("__MACOSX", "Thumbs.db", "desktop.ini")  # with hidden names (.DS_Store): what systems leave among files
SCALES = ("auto", "range")
TEST_FRACTION = 0.1  # of data without a test set of its own, held out by a seeded split
IMAGE_SIDE_LIMIT = 4096
BYTES_PER_VALUE = 12  # reading: a float64 while it is checked and scaled, then the float32 kept
WHAT_TO_GIVE = ("a .npy or .npz file, a .csv of numbers, a .zip of images, or a folder of images (PNG, JPEG) or of "
                "IDX files (train-images-idx3-ubyte.gz, as Fashion-MNIST ships)")
_IDX_NAME = re.compile(r"(?P<prefix>.*?)(?P<split>train|t10k|test)[-_.](?P<kind>images|labels)[-_.]idx(?P<dims>[13])"
                       r"[-_.]ubyte(?P<gz>\.gz)?", re.IGNORECASE)


@dataclass(frozen=True)
class Source:
    """What the user's data is and what was done to it, as `describe` says it."""
    path: str  # absolute
    format: str  # a key of FORMATS
    sha256: str  # of the content read: the file's bytes; for a folder, each file's name and bytes, in order
    image_size: str | None  # the options it was read with
    scale: str
    value_range: tuple[float, float]  # the values as found, before scaling
    binary: bool  # every value 0 or 1 once scaled
    split: str  # where the test set came from
    steps: tuple[str, ...]  # the preprocessing, in order, as sentences
    classes: tuple[str, ...] = ()  # the labels' names, where the data has labels


def parse_image_size(text: str | None) -> str | None:
    """An image size as people write it: "28x28" (rows x columns), "28 x 20", "auto" (the most common size of a
    folder's images), or empty for none; ValueError says what is wrong."""
    text = "" if text is None else str(text).strip().lower()
    if text in ("", "auto"):
        return text or None
    try:
        rows, columns = (int(part) for part in re.split(r"\s*[x×,]\s*|\s+", text))
    except ValueError:
        raise ValueError(f"the image size must be rows x columns, e.g. 28x28, or auto, got {text!r}") from None
    if not (1 <= rows <= IMAGE_SIDE_LIMIT and 1 <= columns <= IMAGE_SIDE_LIMIT):
        raise ValueError(f"the image size must be from 1x1 to {IMAGE_SIDE_LIMIT}x{IMAGE_SIDE_LIMIT}, got {text!r}")
    return f"{rows}x{columns}"


def _size(image_size: str | None) -> tuple[int, ...] | str | None:
    """`image_size` as the readers take it: None, "auto", or (rows, columns)."""
    try:
        text = parse_image_size(image_size)
    except ValueError as e:
        raise DataError(str(e)) from None
    return tuple(int(v) for v in text.split("x")) if text not in (None, "auto") else text


def user_dataset(path: str, image_size: str | None = None, scale: str = "auto") -> Dataset:
    """The user's data at `path`, read, checked and scaled to [0, 1]; read again only when its files change."""
    target = _existing(path)
    _size(image_size)
    if scale not in SCALES:
        raise DataError(f"scale must be one of {', '.join(SCALES)}, got {scale!r}")
    return _read(str(target), _fingerprint(target), image_size or None, scale)


def _reread(spec: DatasetSpec, paths: dict[str, Path]) -> Dataset:
    """A user spec's reader: its data again, as it was read."""
    if spec.source is None:
        raise DataError(f"{spec.name} is one of this project's datasets, read by its own reader")
    return user_dataset(spec.name, spec.source.image_size, spec.source.scale)


def _existing(text: str) -> Path:
    if not str(text).strip():
        raise DataError(f"no data given: name one of this project's datasets ({', '.join(DATASETS)}) or give the path "
                        f"of your own: {WHAT_TO_GIVE}")
    path = Path(os.path.abspath(os.path.expanduser(str(text))))
    try:
        path.stat()
    except FileNotFoundError:
        if os.sep in str(text) or str(text).startswith(("~", ".")):
            raise DataError(f"{text} does not exist: check the path (was the data moved or deleted?); give "
                            f"{WHAT_TO_GIVE}.") from None
        raise DataError(f"unknown dataset {str(text)!r}; choose one of {', '.join(DATASETS)}, or give the path of your "
                        f"own data (no file or folder of that name is here): {WHAT_TO_GIVE}.") from None
    except OSError as e:
        raise DataError(f"{text} cannot be opened ({e.strerror or e}): check that you may read it.") from None
    return path


def _ignored(name: str) -> bool:
    return name.startswith(".") or name in IGNORED


def _files_in(root: Path) -> list[tuple[str, Path]]:
    """Every file under `root` but hidden ones and what systems leave behind, by relative name, in order; DataError
    when a folder cannot be read."""
    def refuse(error: OSError):
        raise DataError(f"{error.filename or root} cannot be read ({error.strerror or error}): check that you may read "
                        f"the folder and everything in it (e.g. chmod -R u+rX {root}).")
    found = []
    for folder, folders, files in os.walk(root, onerror=refuse):
        folders[:] = sorted(f for f in folders if not _ignored(f))
        found += [((Path(folder) / name).relative_to(root).as_posix(), Path(folder) / name)
                  for name in files if not _ignored(name)]
    return sorted(found)


def _fingerprint(path: Path) -> tuple:
    """What changes when the data does: the size and time of the file, or of every file in the folder."""
    def stamp(p: Path) -> tuple[int, int]:
        try:
            s = p.stat()
        except OSError as e:
            raise DataError(f"{p} cannot be read ({e.strerror or e}): check that you may read it.") from None
        return s.st_size, s.st_mtime_ns
    if path.is_dir():
        return tuple((name, *stamp(p)) for name, p in _files_in(path))
    return stamp(path)


def _bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise DataError(f"{path} cannot be read ({e.strerror or e}): check that you may read it.") from None


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    except OSError as e:
        raise DataError(f"{path} cannot be read ({e.strerror or e}): check that you may read it.") from None
    return digest.hexdigest()


def _named_sha256(contents: list[tuple[str, bytes]]) -> str:
    """The SHA-256 of several files: each one's name and content, in order (a file renamed, added or removed counts)."""
    digest = hashlib.sha256()
    for name, content in contents:
        digest.update(name.encode() + b"\0" + hashlib.sha256(content).digest())
    return digest.hexdigest()


def _count(n: int, what: str) -> str:
    return f"{n:,} {what}" + ("" if n == 1 else "s")


def _human(size: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"


def _check_memory(path: Path, on_disk: int, values: int) -> None:
    """Refuses data whose reading would take more memory than a setting may (config.memory_allowed), before it is
    read: `values` numbers, each taking BYTES_PER_VALUE bytes while read, besides the `on_disk` bytes of the files."""
    from .config import MEMORY_ENV, memory_allowed

    needed, allowed = on_disk + BYTES_PER_VALUE * values, memory_allowed()
    if needed > allowed:
        raise DataError(f"{path} is {_human(on_disk)} ({values:,} values): reading it would take about "
                        f"{needed / 2**30:.1f} GiB of memory, more than the {allowed / 2**30:.1f} GiB allowed here "
                        f"(half of what is available; set ${MEMORY_ENV} in bytes to change that). Nothing was read: "
                        f"train on a part of it (fewer or smaller datapoints), or on a machine with more memory.")


@dataclass
class _Raw:
    """What a reader found: arrays of numbers (N, ...) by split ("train", and "test" where the data has its own),
    before any check of their values."""
    format: str
    sha256: str
    parts: dict[str, np.ndarray]
    where: dict[str, str]  # the file each part came from, for messages
    labels: dict[str, np.ndarray] = field(default_factory=dict)  # by split, (N,) class codes
    classes: tuple[str, ...] = ()
    steps: list[str] = field(default_factory=list)
    sized: bool = False  # images already brought to one size by the reader


def _reader(path: Path) -> Callable[[Path, tuple | str | None], _Raw]:
    if path.is_dir():
        return _read_idx if any(_IDX_NAME.fullmatch(p.name) for _, p in _files_in(path)) else _read_image_folder
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise DataError(f"{path} is a {path.suffix or 'suffix-less'} file, which this project does not read: give "
                        f"{WHAT_TO_GIVE}.")
    return {"npy": _read_npy, "npz": _read_npz, "csv": _read_csv, "zip": _read_zip}[kind]


@functools.lru_cache(maxsize=4)
def _read(path: str, fingerprint: tuple, image_size: str | None, scale: str) -> Dataset:
    target = Path(path)
    raw = _reader(target)(target, _size(image_size))
    dataset = _made(target, raw, image_size, scale)
    for array in (dataset.train, dataset.test):
        array.setflags(write=False)  # shared between callers through the cache
    return dataset


# The readers: each finds the arrays, after checking their size against the memory allowed.

def _npy_header(path: Path):
    """The array of a .npy file, mapped (its header read, none of its data)."""
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except OSError as e:
        raise DataError(f"{path} cannot be read ({e.strerror or e}): check that you may read it.") from None
    except EOFError:
        raise DataError(f"{path} is empty or cut short: not a whole NumPy .npy file. Save it again with np.save.") from None
    except ValueError as e:
        if "pickle" in str(e) or "Python objects" in str(e):
            raise DataError(f"{path} holds Python objects (pickled data), which this project never loads: save an array "
                            f"of numbers, e.g. np.save(path, x.astype(np.float32)).") from None
        raise DataError(f"{path} is not a whole NumPy .npy file ({e}). Save it again with np.save.") from None


def _read_npy(path: Path, size) -> _Raw:
    mapped = _npy_header(path)
    _check_memory(path, path.stat().st_size, mapped.size)
    return _Raw("npy", _file_sha256(path), {"train": np.array(mapped)}, {"train": str(path)})


def _read_npz(path: Path, size) -> _Raw:
    try:
        with zipfile.ZipFile(path) as archive:
            headers = {}
            for info in archive.infolist():
                with archive.open(info) as member:
                    version = np.lib.format.read_magic(member)
                    read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                                   else np.lib.format.read_array_header_2_0)
                    headers[info.filename.removesuffix(".npy")] = read_header(member)  # (shape, fortran, dtype)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise DataError(f"{path} is not a readable NumPy .npz file ({e}). Save it again with np.savez.") from None
    pickled = [name for name, (_, _, dtype) in headers.items() if dtype.hasobject]
    if pickled:
        raise DataError(f"{path}: its array {pickled[0]} holds Python objects (pickled data), which this project never "
                        f"loads: save arrays of numbers.")
    names = set(headers)
    if {"x_train", "x_test"} <= names:
        chosen = {"train": "x_train", "test": "x_test"}
        label_names = {"train": "y_train", "test": "y_test"}
    elif len(names - {"y"}) == 1:
        chosen = {"train": next(iter(names - {"y"}))}
        label_names = {"train": "y"}
    else:
        raise DataError(f"{path} holds the arrays {', '.join(sorted(names))}: give x_train and x_test (and, if you have "
                        f"them, labels y_train and y_test), or a single array for this project to split.")
    used = [*chosen.values(), *(n for n in label_names.values() if n in names)]
    _check_memory(path, path.stat().st_size, sum(int(np.prod(headers[n][0])) for n in used))
    with np.load(path, allow_pickle=False) as arrays:
        parts = {split: arrays[name] for split, name in chosen.items()}
        labels = {split: arrays[name] for split, name in label_names.items() if name in names}
    where = {split: f"{path} ({name})" for split, name in chosen.items()}
    raw = _Raw("npz", _file_sha256(path), parts, where)
    _take_labels(raw, labels, {split: f"{path} ({label_names[split]})" for split in labels})
    return raw


def _take_labels(raw: _Raw, labels: dict[str, np.ndarray], where: dict[str, str]) -> None:
    """Labels of any kind (numbers, names) as class codes, once each set's count matches its datapoints'."""
    for split, values in labels.items():
        if values.ndim != 1 or len(values) != len(raw.parts[split]):
            raise DataError(f"{where[split]}: {values.shape[0] if values.ndim else 0} labels of shape {values.shape} "
                            f"for {len(raw.parts[split])} datapoints; give one label per datapoint, or none.")
    if labels:
        classes, codes = np.unique(np.concatenate([labels[s] for s in labels]), return_inverse=True)
        raw.classes = tuple(str(c) for c in classes)
        offsets = np.cumsum([0, *(len(labels[s]) for s in labels)])
        raw.labels = {s: codes[a:b].astype(np.int64) for s, a, b in zip(labels, offsets, offsets[1:])}


def _number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _read_csv(path: Path, size) -> _Raw:
    on_disk = path.stat().st_size
    _check_memory(path, on_disk, on_disk // 2)  # at most one number in every two characters ("1,")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            first = next((line for line in f if line.strip() and not line.startswith("#")), "")
    except OSError as e:
        raise DataError(f"{path} cannot be read ({e.strerror or e}): check that you may read it.") from None
    except UnicodeDecodeError:
        raise DataError(f"{path} is not a text file (UTF-8): a CSV here is numbers, one row a datapoint.") from None
    delimiter = next((d for d in (",", ";", "\t") if d in first), None)  # None: spaces between numbers
    header = not all(_number(cell) for cell in (first.split(delimiter) if delimiter else first.split()))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an empty file: "input contained no data", said below as no datapoints
            values = np.loadtxt(path, delimiter=delimiter, skiprows=_header_lines(path) if header else 0, ndmin=2,
                                dtype=np.float64, encoding="utf-8-sig", quotechar='"', comments="#")
    except ValueError as e:
        raise _csv_problem(path, delimiter, header, e) from None
    raw = _Raw("csv", _file_sha256(path), {"train": values}, {"train": str(path)})
    if header:
        raw.steps.append("its first line, a header of names, skipped")
    return raw


def _header_lines(path: Path) -> int:
    """The lines up to the header, and it: loadtxt's skiprows counts the blank and comment lines before it too."""
    with open(path, encoding="utf-8-sig") as f:
        return next((n for n, line in enumerate(f, 1) if line.strip() and not line.startswith("#")), 0)


def _csv_problem(path: Path, delimiter: str | None, header: bool, error: ValueError) -> DataError:
    """What is wrong in a CSV that NumPy cannot read as numbers: the line, the column and the text found there."""
    advice = ("A CSV here is numbers only, one row a datapoint (a first line of names is skipped as a header): remove "
              "or encode the columns of text, and fill in missing values.")
    width, seen_first = None, False
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = csv.reader(f, delimiter=delimiter) if delimiter else ([c for c in line.split()] for line in f)
        for number, row in enumerate(rows, 1):
            if not row or not "".join(row).strip() or row[0].startswith("#"):
                continue
            if not seen_first:
                seen_first = True
                if header:
                    continue
            if width is not None and len(row) != width:
                return DataError(f"{path}, line {number}: {len(row)} values where the rows before have {width}. "
                                 f"{advice}")
            width = len(row)
            for column, cell in enumerate(row, 1):
                if not _number(cell):
                    what = "is empty (a missing value)" if not cell.strip() else f"holds {cell.strip()[:40]!r}, not a number"
                    return DataError(f"{path}, line {number}, column {column} {what}. {advice}")
    return DataError(f"{path} cannot be read as numbers ({error}). {advice}")


def _read_image_folder(folder: Path, size) -> _Raw:
    files = _files_in(folder)
    others = [name for name, p in files if p.suffix.lower() not in IMAGE_SUFFIXES]
    if others:
        more = f" (and {len(others) - 1} more files that are not images)" if len(others) > 1 else ""
        raise DataError(f"{folder / others[0]} is not an image{more}: a folder of data holds images only (PNG, JPEG). "
                        f"Move it out of {folder}, or give its own path if it is the data.")
    if not files:
        raise DataError(f"{folder} holds no images (PNG, JPEG) and no IDX files: put the data in it, or give {WHAT_TO_GIVE}.")
    _check_memory(folder, sum(p.stat().st_size for _, p in files), 0)
    contents = [(name, _bytes(p)) for name, p in files]
    return _decoded_images(folder, "images", _named_sha256(contents), contents, lambda name: str(folder / name), size)


def _read_zip(path: Path, size) -> _Raw:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise DataError(f"{path} is not a readable .zip file ({e}).") from None
    with archive:
        infos = [i for i in archive.infolist()
                 if not i.is_dir() and not any(_ignored(part) for part in PurePosixPath(i.filename).parts)]
        others = [i.filename for i in infos if PurePosixPath(i.filename).suffix.lower() not in IMAGE_SUFFIXES]
        if others:
            raise DataError(f"{path}: {others[0]} is not an image: a .zip of data holds images only (PNG, JPEG). "
                            f"Take it out of the archive.")
        if not infos:
            raise DataError(f"{path} holds no images: put PNG or JPEG images in the archive.")
        _check_memory(path, sum(i.file_size for i in infos), 0)
        try:
            contents = sorted((i.filename, archive.read(i)) for i in infos)
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as e:
            raise DataError(f"{path} is damaged ({e}): make the archive again.") from None
    return _decoded_images(path, "zip", _file_sha256(path), contents, lambda name: f"{path}: {name}", size)


def _decoded_images(root: Path, kind: str, sha256: str, contents: list[tuple[str, bytes]],
                    where: Callable[[str], str], size) -> _Raw:
    """Images as one array of grey levels (N, rows, columns), all of one size: their own when they share it, else the
    size asked for (`size`: (rows, columns), or "auto", the most common)."""
    from PIL import Image, UnidentifiedImageError

    headers = []
    for name, content in contents:
        try:
            with Image.open(io.BytesIO(content)) as image:
                headers.append((image.size, image.mode))  # size is (columns, rows)
        except UnidentifiedImageError:
            raise DataError(f"{where(name)} is not an image Pillow can read (PNG, JPEG, ...): it is damaged or of another "
                            f"kind; replace it or remove it.") from None
        except (OSError, ValueError, Image.DecompressionBombError) as e:
            raise DataError(f"{where(name)} is not a readable image ({e}): replace it or remove it.") from None
    sizes = Counter(s for s, _ in headers)
    (common, _), *others = sizes.most_common()
    if size is None and others:
        odd = next(i for i, (s, _) in enumerate(headers) if s != common)
        listed = ", ".join(f"{r}x{c} ({_count(n, 'image')})" for (c, r), n in sizes.most_common(4))
        (columns, rows), _ = headers[odd]
        raise DataError(f"{root}: the images are of {len(sizes)} sizes, {listed}{', ...' if len(sizes) > 4 else ''}; "
                        f"{where(contents[odd][0])} is {rows}x{columns}. Give --image-size {common[1]}x{common[0]} (the "
                        f"most common), --image-size auto (the same) or another size to resize them all to one (the "
                        f"Train page: Image size); or remove the odd ones.")
    target = common if size in (None, "auto") else (size[1], size[0])
    _check_memory(root, sum(len(c) for _, c in contents), len(contents) * target[0] * target[1])
    images = np.empty((len(contents), target[1], target[0]), dtype=np.uint8)
    for i, (name, content) in enumerate(contents):
        try:
            with Image.open(io.BytesIO(content)) as image:
                if image.mode.startswith("I"):  # 16 or 32 bits of grey: to 8, rounded
                    grey = Image.fromarray(np.clip(np.asarray(image, np.float64) / 257, 0, 255).round().astype(np.uint8))
                else:
                    grey = image.convert("L")
                if grey.size != target:
                    grey = grey.resize(target, Image.Resampling.LANCZOS)
                images[i] = np.asarray(grey)
        except (OSError, ValueError) as e:
            raise DataError(f"{where(name)} cannot be decoded ({e}): replace it or remove it.") from None
    raw = _Raw(kind, sha256, {"train": images}, {"train": str(root)}, sized=True)
    raw.steps.append(f"{len(contents):,} images read")
    colour = sum(mode not in ("1", "L", "I", "I;16", "I;16B", "F") for _, mode in headers)
    if colour:
        raw.steps.append(f"{colour:,} in colour converted to grey (Pillow's luma, 0.299 R + 0.587 G + 0.114 B)")
    resized = sum(s != target for s, _ in headers)
    if resized:
        why = "the most common size" if size in (None, "auto") else "as asked"
        raw.steps.append(f"{resized:,} resized to {target[1]}x{target[0]} ({why}; Lanczos)")
    _labels_from_folders(raw, [name for name, _ in contents])
    return raw


def _labels_from_folders(raw: _Raw, names: list[str]) -> None:
    """Images sorted into subfolders (one a class, as torchvision's ImageFolder reads them) are labelled by them."""
    parents = [PurePosixPath(n).parent for n in names]
    common = PurePosixPath(os.path.commonpath([str(p) for p in parents])) if parents else PurePosixPath(".")
    relative = [p.relative_to(common).parts for p in parents]
    if len(set(parents)) < 2 or any(not parts for parts in relative):
        return
    _take_labels(raw, {"train": np.array([parts[0] for parts in relative])}, {"train": "the subfolders"})
    raw.steps.append(f"labelled by their {len(raw.classes)} subfolders ({', '.join(raw.classes[:5])}"
                     f"{', ...' if len(raw.classes) > 5 else ''})")


def _uncompressed_size(path: Path) -> int:
    size = path.stat().st_size
    if path.suffix.lower() != ".gz" or size < 4:
        return size
    with open(path, "rb") as f:  # gzip's trailer holds the content's size (modulo 2^32)
        f.seek(-4, os.SEEK_END)
        return max(size, struct.unpack("<I", f.read(4))[0])


def _read_idx(folder: Path, size) -> _Raw:
    """A folder of IDX files, MNIST's format, read by MNIST's reader (`data.parse_idx`): the training images (and
    labels), and the test set where there is one (t10k- or test-), under any prefix (emnist-letters-, ...)."""
    found: dict[str, dict[tuple[str, str], Path]] = {}
    for _, p in _files_in(folder):
        if m := _IDX_NAME.fullmatch(p.name):
            split = "train" if m["split"].lower() == "train" else "test"
            found.setdefault(m["prefix"], {}).setdefault((split, m["kind"].lower()), p)
    sets = sorted(prefix for prefix, files in found.items() if ("train", "images") in files)
    if not sets:
        raise DataError(f"{folder} holds IDX files but no training images: a file named like train-images-idx3-ubyte.gz "
                        f"(Fashion-MNIST's and KMNIST's name; EMNIST's emnist-letters-train-images-idx3-ubyte.gz).")
    if len(sets) > 1:
        raise DataError(f"{folder} holds {len(sets)} IDX datasets ({', '.join(s + 'train-images...' for s in sets)}): give "
                        f"the path of a folder that holds one.")
    files = found[sets[0]]
    _check_memory(folder, sum(_uncompressed_size(p) for p in files.values()),
                  sum(_uncompressed_size(p) for (_, kind), p in files.items() if kind == "images"))
    contents, arrays = [], {}
    for (split, kind), p in sorted(files.items()):
        content = _bytes(p)
        contents.append((p.name, content))
        if p.suffix.lower() == ".gz":
            try:
                content = gzip.decompress(content)
            except (EOFError, gzip.BadGzipFile, OSError, zlib.error) as e:
                raise DataError(f"{p} is truncated, corrupted or not a gzip file ({e}): fetch it again.") from None
        arrays[split, kind] = parse_idx(content, p, IDX_MAGIC[kind])
    parts = {split: arrays[split, "images"] for split in ("train", "test") if (split, "images") in arrays}
    where = {split: str(files[split, "images"]) for split in parts}
    raw = _Raw("idx", _named_sha256(contents), parts, where)
    raw.steps.append(", ".join(f"{files[split, 'images'].name} ({len(a):,} images of {a.shape[1]}x{a.shape[2]})"
                               for split, a in parts.items()) + " read as MNIST's are")
    if "emnist" in sets[0].lower():
        raw.parts = {split: a.transpose(0, 2, 1) for split, a in parts.items()}
        raw.steps.append("EMNIST stores its images transposed: turned back upright")
    labels = {split: arrays[split, "labels"] for split in parts if (split, "labels") in arrays}
    _take_labels(raw, labels, {split: str(files[split, "labels"]) for split in labels})
    return raw


# The checks every source goes through, and the dataset they make.

def _numbers(array: np.ndarray, where: str) -> np.ndarray:
    """The array as datapoints (N, D) or grey images (N, rows, columns) of real numbers; colour becomes grey."""
    if array.dtype.kind not in "biuf":
        what = {"U": "text", "S": "text", "c": "complex numbers", "M": "dates", "m": "durations", "V": "records"}
        raise DataError(f"{where} holds {what.get(array.dtype.kind, array.dtype.name)} (dtype {array.dtype}), not real "
                        f"numbers: give an array of numbers.")
    if array.dtype.kind == "b":
        array = array.astype(np.uint8)
    if array.ndim == 4 and array.shape[1] in (1, 3) and array.shape[3] not in (1, 3, 4):
        array = array.transpose(0, 2, 3, 1)  # channels first, as PyTorch keeps images
    if array.ndim == 4 and array.shape[3] == 1:
        array = array[..., 0]
    elif array.ndim == 4 and array.shape[3] in (3, 4):
        luma = array[..., :3] @ np.array([0.299, 0.587, 0.114])
        array = luma.round().astype(array.dtype) if array.dtype.kind in "iu" else luma
    if array.ndim not in (2, 3):
        raise DataError(f"{where} holds an array of shape {array.shape}: give one datapoint a row, (N, D), or images "
                        f"(N, rows, columns), or colour images (N, rows, columns, 3).")
    return array


def _finite(array: np.ndarray, where: str) -> None:
    if array.dtype.kind != "f":
        return
    bad = ~np.isfinite(array.reshape(len(array), -1))
    if bad.any():
        row, column = (int(v) for v in np.argwhere(bad)[0])
        raise DataError(f"{where} holds {_count(int(bad.sum()), 'NaN or infinite value')} (the first in datapoint {row}, "
                        f"value {column}): remove those datapoints or replace the values, then try again.")


def _scaled(parts: dict[str, np.ndarray], scale: str, path: Path, steps: list[str]) -> tuple[dict, tuple[float, float]]:
    """The values in [0, 1] as float32: as they are when they lie there, divided by 255 when they are whole numbers
    from 0 to 255 (8-bit pixels), the data's own range mapped to [0, 1] with scale "range"; otherwise refused."""
    low = min(float(a.min()) for a in parts.values())
    high = max(float(a.max()) for a in parts.values())
    if low == high:
        raise DataError(f"{path}: every value is {low:g}, so there is nothing to learn.")
    if scale == "range":
        span = high - low
        if not np.isfinite(span):
            raise DataError(f"{path}: its values run from {low:g} to {high:g}, a range too wide to scale.")
        steps.append(f"mapped from the data's own range [{low:g}, {high:g}] to [0, 1]")
        return {s: ((a - low) / span).astype(np.float32) for s, a in parts.items()}, (low, high)
    if low >= 0 and high <= 1:
        steps.append(f"values from {low:g} to {high:g}, in [0, 1]: used as they are")
        return {s: a.astype(np.float32) for s, a in parts.items()}, (low, high)
    whole = all(a.dtype.kind in "iu" or np.array_equal(a, np.round(a)) for a in parts.values())
    if low >= 0 and high <= 255 and whole:
        steps.append(f"whole numbers from {low:g} to {high:g}: divided by 255, as 8-bit pixels")
        return {s: (a / 255.0).astype(np.float32) for s, a in parts.items()}, (low, high)
    raise DataError(f"{path}: its values run from {low:g} to {high:g}, outside both [0, 1] and the whole numbers 0 to "
                    f"255 of 8-bit pixels. Give --scale range to map the data's own range to [0, 1] (the Train page: "
                    f"Scaling), or scale it yourself.")


def _shaped(array: np.ndarray, size, raw: _Raw, where: str) -> tuple[np.ndarray, tuple[int, ...]]:
    """Datapoints as rows (N, D) and their shape: images as they are, or resized to `size`; rows as vectors (1, D),
    or read as images of `size` when it holds D pixels."""
    if array.ndim == 3:
        shape = array.shape[1:]
        if isinstance(size, tuple) and size != shape and not raw.sized:
            from PIL import Image
            array = np.stack([np.asarray(Image.fromarray(image.astype(np.float32), mode="F").resize(
                (size[1], size[0]), Image.Resampling.LANCZOS)) for image in array]).clip(0.0, 1.0)
            raw.steps.append(f"resized from {shape[0]}x{shape[1]} to {size[0]}x{size[1]} (as asked; Lanczos)")
            shape = size
        return array.reshape(len(array), -1), tuple(int(v) for v in shape)
    if isinstance(size, tuple):
        if size[0] * size[1] != array.shape[1]:
            raise DataError(f"{where}: a row of {array.shape[1]:,} values cannot be an image of {size[0]}x{size[1]} "
                            f"({size[0] * size[1]:,} pixels); give a size that holds {array.shape[1]:,}, or none.")
        raw.steps.append(f"each row read as an image of {size[0]}x{size[1]}, row by row")
        return array, size
    return array, (1, array.shape[1])


def _made(path: Path, raw: _Raw, image_size: str | None, scale: str) -> Dataset:
    size = _size(image_size)
    parts = {split: _numbers(a, raw.where[split]) for split, a in raw.parts.items()}
    if len({a.shape[1:] for a in parts.values()}) > 1:
        raise DataError(f"{path}: its training and test datapoints differ in shape "
                        f"({', '.join(f'{s} {a.shape[1:]}' for s, a in parts.items())}); give them one shape.")
    total = sum(len(a) for a in parts.values())
    if total < 2:
        raise DataError(f"{path} holds {_count(total, 'datapoint')}: a VAE needs at least two, one to train on and one "
                        f"to test on. Give more data.")
    empty = [raw.where[s] for s, a in parts.items() if len(a) == 0]
    if empty:
        raise DataError(f"{empty[0]} holds no datapoints: give it some, or leave it out for this project to split.")
    for split, a in parts.items():
        _finite(a, raw.where[split])
    parts, value_range = _scaled(parts, scale, path, raw.steps)
    shaped = {split: _shaped(a, size, raw, raw.where[split]) for split, a in parts.items()}
    parts, shape = {s: a for s, (a, _) in shaped.items()}, next(iter(shaped.values()))[1]
    labels = raw.labels
    if "test" in parts:
        split = "the data's own split" + (" (x_train, x_test)" if raw.format == "npz" else "")
    else:
        n = len(parts["train"])
        held = max(1, round(n * TEST_FRACTION))
        train, test = _seeded_split(n, n - held)
        parts = {"train": parts["train"][train], "test": parts["train"][test]}
        labels = {"train": labels["train"][train], "test": labels["train"][test]} if labels else {}
        split = f"a seeded split: {TEST_FRACTION:.0%} held out to test, by seed {SPLIT_SEED}, the same for every run"
    binary = all(bool(np.isin(a, (0.0, 1.0)).all()) for a in parts.values())
    train, test = (np.ascontiguousarray(parts[s], dtype=np.float32) for s in ("train", "test"))
    source = Source(str(path), raw.format, raw.sha256, image_size, scale, value_range, binary, split,
                    tuple(raw.steps), raw.classes)
    rows, columns = shape  # (1, D) for rows of numbers
    spec = DatasetSpec(str(path), path.name or str(path), (rows, columns), "bernoulli", len(train),
                       paper_hidden(len(train)),
                       (DataFile(path.name or str(path), raw.sha256, ()),), _reread, source=source)
    return Dataset(spec, train, test, labels.get("train"), labels.get("test"))


# What the project makes of a dataset, for people (`data --inspect`, the Train page) and for the run's config.json.

def describe(dataset: Dataset, likelihood: str = "auto") -> dict:
    """The dataset as data --inspect prints it (with --json, as it is here) and a run's config.json records it: its
    size, shape, values, the decoder and network it gets (with `likelihood` "auto", its spec's), and for the user's
    data where it came from (path, SHA-256) and what was done to it."""
    spec = dataset.spec
    chosen = spec.likelihood if likelihood == "auto" else likelihood
    about = {"dataset": spec.name, "title": spec.title, "train_size": len(dataset.train), "test_size": len(dataset.test),
             "shape": list(spec.image_shape), "image": spec.is_image, "D": spec.data_dim, "likelihood": chosen,
             "hidden": list(spec.hidden), "labelled": dataset.train_labels is not None}
    source = spec.source
    if source is None:
        return about
    if likelihood != "auto":
        why = f"as asked (--likelihood {likelihood})"
    elif source.binary:
        why = "the values are binary"
    else:
        why = ("grey values in [0, 1] take the Bernoulli decoder by default, as the paper treats MNIST's grey pixels; "
               "--likelihood gaussian gives the Gaussian decoder, as the paper's Frey Face")
    hidden = (f"the paper's rule for N = {len(dataset.train):,} training points: 500 units from {SMALL_DATASET:,} up "
              f"(as MNIST), 200 below (as Frey Face)")
    return {**about, "source": source.path, "format": FORMATS[source.format], "sha256": source.sha256,
            "image_size": source.image_size, "scale": source.scale, "value_range": list(source.value_range),
            "values": "binary" if source.binary else "grey levels in [0, 1]" if spec.is_image else "in [0, 1]",
            "split": source.split,
            "preprocessing": list(source.steps), "classes": list(source.classes), "likelihood_reason": why,
            "hidden_reason": hidden}


def summary(about: dict) -> list[tuple[str, str]]:
    """`describe`'s answer as lines for people: (what, what it is)."""
    shape = about["shape"]
    each = f"an image of {shape[0]}x{shape[1]} pixels" if about["image"] else f"a vector of {about['D']:,} numbers"
    if not about["image"] and about["D"] >= 4 and round(about["D"] ** 0.5) ** 2 == about["D"]:
        side = round(about["D"] ** 0.5)
        each += f" (if each row is an image: --image-size {side}x{side})"
    lines = [("data", about.get("format", "one of this project's datasets") + f": {about['source']}"
              if "source" in about else about["title"]),
             ("datapoints", f"{about['train_size'] + about['test_size']:,}: {about['train_size']:,} to train, "
                            f"{about['test_size']:,} to test" + (f" ({about['split']})" if "split" in about else "")),
             ("each", f"{each}, D = {about['D']:,}")]
    if "source" in about:
        low, high = about["value_range"]
        lines += [("values", f"{about['values']} (found from {low:g} to {high:g})"),
                  ("preprocessing", "; ".join(about["preprocessing"])),
                  ("labels", f"{len(about['classes'])} classes" if about["classes"] else "none")]
    lines.append(("decoder p(x|z)", about["likelihood"] + (f": {about['likelihood_reason']}"
                                                          if "likelihood_reason" in about else "")))
    lines.append(("hidden units", " ".join(map(str, about["hidden"])) + (f": {about['hidden_reason']}"
                                                                        if "hidden_reason" in about else "")))
    if "sha256" in about:
        lines.append(("sha256", about["sha256"]))
    return lines
