"""Numbers as people read them, for the CLI, the report and the app alike."""
from __future__ import annotations

import math


def format_duration(seconds: float) -> str:
    """A time as people read it: "42 s", "3 min 20 s", "1 h 11 min"; "?" while it is unknown."""
    if not math.isfinite(seconds):
        return "?"
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"
