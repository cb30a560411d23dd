"""The Train form, derived from the fields of the engine's TrainConfig: one widget per setting, with the
setting's label, help and choices, and each problem shown under the widget it belongs to. The settings of the
section "your data" (how the user's own data is read) are drawn beside its inspection, outside the form, so that the
inspection follows them as they change (`data_widgets`).

Every widget's key is `train.<field name>`, which tests and `fill` use.
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import streamlit as st

from vae_core import data
from vae_core.config import TrainConfig, settings

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
    """Every setting but the switches and the choices is typed: numbers too, so that what was typed is what is checked
    (a number field of the browser rounds 2.7 to 2 and wraps a seed of 20 digits round to -1)."""
    return not isinstance(default, bool) and not settings()[name].choices or settings()[name].parse is not None


def parse_number(label: str, text: str, kind: type = int) -> int | float:
    """The number typed into the field `label`, of its kind: a whole one is whole (2.7 is refused, never rounded)."""
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{label} must be a number, got {text!r}" if text else f"{label} needs a value") from None
    if kind is int:
        if not value.is_integer():
            raise ValueError(f"{label} must be a whole number, got {text}")
        return int(text) if re.fullmatch(r"[+-]?\d+", text) else int(value)  # 20 digits stay exact; 1e3 is 1000
    return value


def in_words(message: str) -> str:
    """A problem as the form says it: each setting by its label (Latent dimensions J), not by its field name."""
    for name, s in settings().items():
        letter = s.label.rsplit(" ", 1)[-1]  # "batch_size M" reads "Minibatch M"
        pattern = rf"\b{name}\b( {re.escape(letter)}\b)?" if "_" in name else rf"^{name}(?= must| applies)"
        message = re.sub(pattern, s.label, message)
    return message


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
        default = getattr(TrainConfig, name)
        if _uses_text(name, default):
            text = str(value).strip()
            try:
                if s.parse:
                    value = s.parse(text)
                elif isinstance(default, (int, float)):
                    value = parse_number(s.label, text, type(default))
                else:
                    value = text or None
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
    else:
        container.text_input(s.label, **({} if filled else {"value": as_text(name, default)}), help=s.help, key=key,
                             placeholder=s.placeholder)
    if problem:
        container.error(plain(in_words(problem)), icon=":material/error:")  # it quotes what was typed


OWN_PROBLEMS = ("dataset", "image_size", "scale")  # how the user's data is read


def data_widgets(columns, defaults: TrainConfig, problems: dict[str, str] | None = None) -> None:
    """The settings of how the user's data is read (image size, scaling), one per column given."""
    names = [f.name for f in dataclasses.fields(TrainConfig) if settings()[f.name].section == OWN_DATA]
    for column, name in zip(columns, names):
        _widget(column, name, getattr(defaults, name), (problems or {}).get(name))


def train_form(defaults: TrainConfig, starting: str | None = None) -> TrainConfig | None:
    """Draws the form; returns a config that passed every check when the user starts training, else None. While
    `starting` names a run this session has started and not yet heard train, Start is off, and a click that reached
    the server before the button went off (a double click) starts nothing: one run per click."""
    submitted = bool(st.session_state.get(START)) and starting is None
    config, problems = _check() if submitted else (None, {})
    with st.form(KEY):
        columns = dict(zip(SECTIONS, st.columns(len(SECTIONS))))
        advanced = st.expander("Advanced settings", expanded=any(settings()[n].section == "advanced" for n in problems
                                                                  if n in settings()))
        for f in dataclasses.fields(TrainConfig):
            section = settings()[f.name].section
            if section != OWN_DATA:
                _widget(columns.get(section, advanced), f.name, getattr(defaults, f.name), problems.get(f.name))
        unplaced = [name for name in ("memory", "form", *(n for n in OWN_PROBLEMS if n != "dataset")) if name in problems]
        for name in unplaced:
            st.error(plain(in_words(problems[name])))
        if problems:
            marked = [settings()[n].label for n in problems if n in settings() and n not in unplaced]
            st.error("Cannot start" + (f": see the message under {_and(marked)}" if marked else "") + ".")
        st.form_submit_button("Start training", type="primary", key=START, disabled=starting is not None)
        if starting is not None:
            st.caption(f"{plain(starting)} is starting; Start comes back once it trains.")
    return config


def _and(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]
