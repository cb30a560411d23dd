"""What the app keeps in a browser session's Session State: every key's name, written here once, and the values more
than one page reads or writes.

Widgets keep their own keys where they are drawn (tests find widgets by them); a widget's key is here only when a
page also sets its value itself, as MODEL is from a shared link.
"""
from __future__ import annotations

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
IW_TRADEOFF = "iw_tradeoff"  # the same page's request for the k trade-off: the model name and the settings


def owner() -> str:
    """This session's id, made on first use."""
    return st.session_state.setdefault(OWNER, uuid.uuid4().hex)


def run_dir() -> str:
    """The folder of the run this session follows; "" for none."""
    return st.session_state.get(RUN_DIR, "")


def follow(run_dir: Path | str) -> None:
    """From now on the session follows this run (the Train page shows it, the pickers offer it)."""
    st.session_state[RUN_DIR] = str(run_dir)
