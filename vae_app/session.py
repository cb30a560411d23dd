"""What the app keeps in a browser session's Session State: every key's name, written here once, and the values more
than one page reads or writes.

Widgets keep their own keys where they are drawn (tests find widgets by them); a widget's key is here only when a
page also sets its value itself, as MODEL is from a shared link.
"""
from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import streamlit as st

OWNER = "owner"  # this session's id: the runs and sweeps it starts are its own
RUN_DIR = "run_dir"  # the run this session follows: started, continued or re-attached to here
FORM_SHOWS = "form_shows"  # the run whose settings the Train form shows
MODEL = "model"  # the Latent explorer's model picker
FROZEN = "frozen"  # the Latent explorer's snapshot of a live run, kept while it does not follow the training
SEED = "seed"  # the seed of the Latent explorer's samples; Reseed adds one
VARIANCE = "variance"  # the Estimator variance page's request: the model names and the settings
OWN_DATA = "own_data"  # the path of the user's data last inspected on the Train page (an upload's copy, or theirs)
UPLOADED = "uploaded"  # the Train page's last upload: (its file id, where the server keeps it)
EXPLORER_TAB = "explorer_tab"  # the Latent explorer's open tab (only it is drawn), for image data
EXPLORER_VECTOR_TAB = "explorer_vector_tab"  # and for rows of numbers
IW_TRADEOFF = "iw_tradeoff"  # the same page's request for the k trade-off: the model name and the settings


XSRF_COOKIE = "_streamlit_xsrf"  # the cookie Streamlit's server sets in each browser, kept across its reloads


def browser_secret(cookie: str) -> bytes | None:
    """The token of Streamlit's XSRF cookie, the same at every request of one browser: the cookie is re-sent masked
    ("2|mask|masked token|time", Tornado's and Streamlit's version 2), so its text changes while its token does not."""
    value = cookie.strip("\"'")
    try:
        if value.startswith("2|"):
            _, mask_hex, masked_hex, _ = value.split("|")
            mask, masked = bytes.fromhex(mask_hex), bytes.fromhex(masked_hex)
            return bytes(b ^ mask[i % len(mask)] for i, b in enumerate(masked)) if mask else None  # a repeated 4-byte mask
    except ValueError:
        return None
    return value.encode() or None


def owner() -> str:
    """This browser's id: a hash of the token of the XSRF cookie Streamlit keeps in it, so that a reloaded page owns
    the runs it started at once (the token itself is never shown or kept); a random id where there is none (AppTest)."""
    if OWNER not in st.session_state:
        cookie = st.context.cookies.get(XSRF_COOKIE)
        secret = browser_secret(cookie) if isinstance(cookie, str) else None
        st.session_state[OWNER] = hashlib.sha256(secret).hexdigest()[:32] if secret else uuid.uuid4().hex
    return st.session_state[OWNER]


def run_dir() -> str:
    """The folder of the run this session follows; "" for none."""
    return st.session_state.get(RUN_DIR, "")


def follow(run_dir: Path | str) -> None:
    """From now on the session follows this run (the Train page shows it, the pickers offer it)."""
    st.session_state[RUN_DIR] = str(run_dir)
