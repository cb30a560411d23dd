"""The Train form, derived from the fields of the engine's TrainConfig: one widget per setting, with the
setting's label, help and choices, and each problem shown under the widget it belongs to. The settings of the
section "your data" (how the user's own data is read) are drawn beside its inspection, outside the form, so that the
inspection follows them as they change (`data_widgets`).

Every widget's key is `train.<field name>`, which tests and `fill` use.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import streamlit as st

from vae_core import data
from vae_core.config import ConfigError, TrainConfig, settings

from . import session
from .text import plain

SECTIONS = ("data and model", "objective", "optimisation")  # three columns; "advanced" goes in an expander
OWN_DATA = "your data"  # the section drawn with the inspection of the user's data, outside the form
KEY = "train"


def widget_key(name: str) -> str:
    return f"{KEY}.{name}"


START = widget_key("start")  # the form's submit button


def as_text(name: str, value) -> str:
    """A setting's value as the form's text field shows it."""
    if value is None:
        return ""
    if name == "hidden":
        return " ".join(map(str, value))
    if name == "samples" and value >= 1000 and str(value).rstrip("0") == "1":
        return f"1e{len(str(value)) - 1}"
    return str(value)


def _uses_text(name: str, default) -> bool:
    return settings()[name].parse is not None or default is None or isinstance(default, str) and not settings()[name].choices


def fill(config: TrainConfig) -> None:
    """Shows `config` in the form (the settings of the run the page is attached to)."""
    for name in settings():
        value = getattr(config, name)
        st.session_state[widget_key(name)] = as_text(name, value) if _uses_text(name, getattr(TrainConfig, name)) else value


def _values() -> dict:
    """The form's values as the engine takes them, and the problems of the text fields that do not parse."""
    values, problems = {}, {}
    for name, s in settings().items():
        if widget_key(name) not in st.session_state:
            continue
        value = st.session_state[widget_key(name)]
        if _uses_text(name, getattr(TrainConfig, name)):
            text = str(value).strip()
            try:
                value = s.parse(text) if s.parse else (text or None)
            except ValueError as e:
                problems[name] = str(e)
                continue
        values[name] = value
    return values, problems


def _check() -> tuple[TrainConfig | None, dict[str, str]]:
    values, problems = _values()
    try:
        config = TrainConfig(**values)
    except TypeError as e:
        return None, {"form": str(e)}
    problems = {**config.problems(), **problems}
    if "dataset" not in problems and not config.own_data and not data.available(config.dataset, config.data_dir):
        problems["dataset"] = (f"the {config.dataset} data is not on this machine. Run `python -m vae_core data "
                               f"--dataset {config.dataset}` (or set VAE_DATA_DIR to a folder holding {config.dataset}/), "
                               f"or pick `digits`, which needs no download.")
    return (None if problems else config), problems


def dataset_label(value: str) -> str:
    """How the dataset picker names a dataset: this project's by name, the user's by its file or folder's name."""
    return value if value in data.DATASETS else f"your data: {Path(value).name}"


def _dataset_choices(suggested: tuple) -> list[str]:
    """This project's datasets, then the user's data inspected on this page and the one the form shows (a run's)."""
    own = [st.session_state.get(session.OWN_DATA), st.session_state.get(widget_key("dataset"))]
    return list(dict.fromkeys([*suggested, *(v for v in own if v)]))


def _widget(container, name: str, default, problem: str | None) -> None:
    s = settings()[name]
    key = widget_key(name)
    filled = key in st.session_state  # the value comes from Session State (`fill`, or the user's last entry)
    if s.suggestions:  # the dataset: this project's, or the user's (a path: shown by its name, as text)
        choices = _dataset_choices(s.suggestions)
        container.selectbox(s.label, choices, **({} if filled else {"index": choices.index(default)}),
                            format_func=dataset_label, help=s.help, key=key)
    elif isinstance(default, bool):
        container.checkbox(s.label, **({} if filled else {"value": default}), help=s.help, key=key)
    elif s.choices:
        container.selectbox(s.label, s.choices, **({} if filled else {"index": s.choices.index(default)}),
                            help=s.help, key=key)
    elif _uses_text(name, default):
        container.text_input(s.label, **({} if filled else {"value": as_text(name, default)}), help=s.help, key=key,
                             placeholder=s.placeholder)
    else:
        container.number_input(s.label, **({} if filled else {"value": default}), step=type(default)(1),
                               help=s.help, key=key)
    if problem:
        container.error(plain(problem), icon=":material/error:")  # it quotes what was typed


OWN_PROBLEMS = ("dataset", "image_size", "scale")  # how the user's data is read


def data_widgets(columns, defaults: TrainConfig, problems: dict[str, str] | None = None) -> None:
    """The settings of how the user's data is read (image size, scaling), one per column given."""
    names = [f.name for f in dataclasses.fields(TrainConfig) if settings()[f.name].section == OWN_DATA]
    for column, name in zip(columns, names):
        _widget(column, name, getattr(defaults, name), (problems or {}).get(name))


def train_form(defaults: TrainConfig) -> TrainConfig | None:
    """Draws the form; returns a config that passed every check when the user starts training, else None."""
    submitted = bool(st.session_state.get(START))
    config, problems = _check() if submitted else (None, {})
    with st.form(KEY):
        columns = dict(zip(SECTIONS, st.columns(len(SECTIONS))))
        advanced = st.expander("Advanced settings")
        for f in dataclasses.fields(TrainConfig):
            section = settings()[f.name].section
            if section != OWN_DATA:
                _widget(columns.get(section, advanced), f.name, getattr(defaults, f.name), problems.get(f.name))
        for name in ("memory", "form", *(n for n in OWN_PROBLEMS if n != "dataset")):
            if name in problems:
                st.error(plain(problems[name]))
        if problems:
            st.error(f"Cannot start: {plain(ConfigError(problems))}")  # it quotes what was typed
        st.form_submit_button("Start training", type="primary", key=START)
    return config
