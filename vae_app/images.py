"""Images as the pages show them: mosaics of many small images, and PNG bytes."""
from __future__ import annotations

import io
import math

import numpy as np


def mosaic(images: np.ndarray, columns: int, scale: int = 1, pad: int = 1) -> np.ndarray:
    """Images (N, h, w) in [0, 1] tiled into one RGBA uint8 picture (grey images, transparent frames between them, so
    the grid reads on a light and a dark page alike), each pixel drawn as scale x scale."""
    n, h, w = images.shape
    rows = math.ceil(n / columns)
    canvas = np.zeros((rows * (h + pad) + pad, columns * (w + pad) + pad), dtype=np.float32)
    opaque = np.zeros(canvas.shape, dtype=bool)
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        cell = np.s_[pad + r * (h + pad):pad + r * (h + pad) + h, pad + c * (w + pad):pad + c * (w + pad) + w]
        canvas[cell], opaque[cell] = image, True
    grey = (np.clip(np.kron(canvas, np.ones((scale, scale), dtype=np.float32)), 0, 1) * 255).round().astype(np.uint8)
    alpha = np.kron(opaque, np.ones((scale, scale), dtype=bool)).astype(np.uint8) * 255
    return np.stack([grey, grey, grey, alpha], axis=-1)


def scale_for(shape: tuple[int, int], pixels: int) -> int:
    """The whole-number scale that draws an image of `shape` about `pixels` tall."""
    return max(1, pixels // shape[0])


EXPORT_PIXELS = 2400  # the longer side of an exported image grid, at least: sharp on a lecture hall's projector


def export_scale(image: np.ndarray) -> int:
    """The whole-number scale that draws `image` (its pixels as squares) at least EXPORT_PIXELS on its longer side."""
    return max(1, math.ceil(EXPORT_PIXELS / max(image.shape)))


def svg(image: np.ndarray, axes: dict | None = None) -> bytes:
    """An image in [0, 1] (as `png` takes) as an SVG: the pixels as an embedded PNG drawn unsmoothed at any size, and
    with `axes` ({"x": (title, [(pixel, text), ...]), "y": ...}, pixels from the image's left and top) its axes as
    vector text."""
    import base64
    from xml.sax.saxutils import escape

    h, w = image.shape[:2]
    scale = 8  # the SVG's own units: 8 per pixel, so that its text is small beside the image
    left, bottom = (70, 60) if axes else (0, 0)
    width, height = w * scale + left, h * scale + bottom
    encoded = base64.b64encode(png(image)).decode()
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
             f'font-family="sans-serif" font-size="20">',
             f'<image x="{left}" y="0" width="{w * scale}" height="{h * scale}" style="image-rendering:pixelated" '
             f'preserveAspectRatio="none" href="data:image/png;base64,{encoded}"/>']
    if axes:
        x_title, x_ticks = axes["x"]
        y_title, y_ticks = axes["y"]
        for pixel, text in x_ticks:
            parts.append(f'<text x="{left + pixel * scale}" y="{h * scale + 24}" text-anchor="middle">{escape(text)}</text>')
        for pixel, text in y_ticks:
            parts.append(f'<text x="{left - 8}" y="{pixel * scale + 7}" text-anchor="end">{escape(text)}</text>')
        parts.append(f'<text x="{left + w * scale / 2}" y="{h * scale + 52}" text-anchor="middle">{escape(x_title)}</text>')
        parts.append(f'<text x="18" y="{h * scale / 2}" text-anchor="middle" transform="rotate(-90 18 {h * scale / 2})">'
                     f'{escape(y_title)}</text>')
    parts.append("</svg>")
    return "\n".join(parts).encode()


def png(image: np.ndarray, scale: int = 1) -> bytes:
    """An image in [0, 1], grey (h, w) or RGBA (h, w, 4) as a `mosaic` divided by 255, as PNG bytes, each pixel drawn
    as scale x scale."""
    from PIL import Image

    pixels = (np.clip(image, 0, 1) * 255).round().astype(np.uint8).repeat(scale, axis=0).repeat(scale, axis=1)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()
