"""Small data of every kind a user brings, written by the tests themselves: arrays, a CSV, a folder of PNGs, a zip of
them and an IDX folder, all from scikit-learn's bundled 8x8 digits (as grey levels 0-255), so that a VAE learns
something from a few hundred steps."""
from __future__ import annotations

import gzip
import io
import struct
import zipfile
from pathlib import Path

import numpy as np


def digits(n: int = 120) -> tuple[np.ndarray, np.ndarray]:
    """The first n of scikit-learn's digits as 8-bit images (n, 8, 8) and their labels."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return (bunch.images[:n] * 255 / 16).round().astype(np.uint8), bunch.target[:n].astype(np.int64)


def png_bytes(image: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def write_pngs(folder: Path, images: np.ndarray, labels: np.ndarray | None = None) -> Path:
    """One PNG per image, in subfolders named by label when labels are given."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        target = folder / (f"class{labels[i]}" if labels is not None else "") / f"{i:04d}.png"
        target.parent.mkdir(exist_ok=True)
        target.write_bytes(png_bytes(image))
    return folder


def write_zip(path: Path, images: np.ndarray, top: str = "faces") -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for i, image in enumerate(images):
            archive.writestr(f"{top}/{i:04d}.png", png_bytes(image))
        archive.writestr("__MACOSX/._0000.png", b"resource fork")  # what macOS leaves: skipped
    return path


def idx_bytes(array: np.ndarray) -> bytes:
    magic = 2051 if array.ndim == 3 else 2049
    return struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape) + array.astype(np.uint8).tobytes()


def write_idx(folder: Path, images: np.ndarray, labels: np.ndarray, test: int = 20, prefix: str = "") -> Path:
    """Fashion-MNIST's layout: {train,t10k}-{images-idx3,labels-idx1}-ubyte.gz, the last `test` images the test set."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, part in (("train", slice(None, -test)), ("t10k", slice(-test, None))):
        for kind, array in (("images-idx3", images[part]), ("labels-idx1", labels[part])):
            (folder / f"{prefix}{split}-{kind}-ubyte.gz").write_bytes(gzip.compress(idx_bytes(array)))
    (folder / "README.md").write_text("not an IDX file: left alone")
    return folder


def write_csv(path: Path, rows: np.ndarray, header: bool = True) -> Path:
    lines = ([",".join(f"f{j}" for j in range(rows.shape[1]))] if header else []) + [
        ",".join(f"{v:.4f}" for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def every_source(root: Path, n: int = 120) -> dict[str, Path]:
    """Each kind of source, by name: npy, npz (its own split, with labels), csv (vectors, a header), a folder of PNGs
    (labelled by subfolder), a zip of PNGs, an IDX folder (Fashion-MNIST's names)."""
    images, labels = digits(n)
    root.mkdir(parents=True, exist_ok=True)
    np.save(root / "digits.npy", images)
    np.savez(root / "digits.npz", x_train=images[:-20], x_test=images[-20:], y_train=labels[:-20], y_test=labels[-20:])
    return {"npy": root / "digits.npy", "npz": root / "digits.npz",
            "csv": write_csv(root / "features.csv", images.reshape(n, -1)[:, :12] / 255.0),
            "png": write_pngs(root / "pngs", images, labels % 3), "zip": write_zip(root / "digits.zip", images),
            "idx": write_idx(root / "fashion", images, labels)}
