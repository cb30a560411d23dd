"""Images as the pages show them: mosaics of many small images, and PNG bytes."""
from __future__ import annotations

import io
import math

import numpy as np


def mosaic(images: np.ndarray, columns: int, scale: int = 1, pad: int = 1) -> np.ndarray:
    """Images (N, h, w) in [0, 1] tiled into one uint8 picture, each pixel drawn as scale x scale."""
    n, h, w = images.shape
    rows = math.ceil(n / columns)
    canvas = np.ones((rows * (h + pad) + pad, columns * (w + pad) + pad), dtype=np.float32)
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        canvas[pad + r * (h + pad):pad + r * (h + pad) + h, pad + c * (w + pad):pad + c * (w + pad) + w] = image
    canvas = np.kron(canvas, np.ones((scale, scale), dtype=np.float32))
    return (np.clip(canvas, 0, 1) * 255).round().astype(np.uint8)


def scale_for(shape: tuple[int, int], pixels: int) -> int:
    """The whole-number scale that draws an image of `shape` about `pixels` tall."""
    return max(1, pixels // shape[0])


def png(image: np.ndarray, scale: int = 1) -> bytes:
    """A [0, 1] grey image as PNG bytes."""
    from PIL import Image

    pixels = (np.clip(np.kron(image, np.ones((scale, scale))), 0, 1) * 255).round().astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()
