"""The VAE_* environment variables this project reads, each read here and checked against its range: a bad value
is a ValueError naming the variable, what it may hold and what it holds, never a number taken silently."""
from __future__ import annotations

import math
import os


def whole_number(name: str, default: int, low: int, high: int) -> int:
    """$`name` as a whole number from `low` to `high`; `default` when it is unset or empty."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise ValueError(f"${name} must be a whole number from {low:,} to {high:,}, got {text!r}; unset it for the "
                         f"default ({default:,})")
    return value


def byte_count(name: str) -> int | None:
    """$`name` as a number of bytes above 0 (1e9 and 1000000000 alike); None when it is unset or empty."""
    text = os.environ.get(name, "").strip()
    if not text:
        return None
    try:
        value = float(text.replace("_", ""))
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 1:
        raise ValueError(f"${name} must be a number of bytes of at least 1, e.g. 8e9, got {text!r}; unset it for the "
                         f"default")
    return int(value)


def folder(name: str, default: str) -> str:
    """$`name` as a folder path; `default` when it is unset or empty (an empty value is not the current folder)."""
    return os.environ.get(name, "").strip() or default
