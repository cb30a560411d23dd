"""The house's rooms: the engine imports no dashboard library, the pages sit in `app_pages/` and import no torch,
and every interface to the training configuration (the CLI's flags, the Train form) is derived from TrainConfig's
fields, missing none."""
import dataclasses
import re
import subprocess
import sys

import pytest

from vae_core.cli import build_parser
from vae_core.config import TrainConfig, flag, settings


def test_the_engine_and_its_cli_load_no_dashboard_library(repo):
    probe = ("import sys, vae_core, vae_core.cli, vae_core.variance, vae_core.latent, vae_core.training; "
             "print(sorted(m for m in ('streamlit', 'plotly', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=repo, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert "vae_core" in subprocess.run([sys.executable, "-c", "import vae_app.views; print('vae_core' if 'vae_core' "
                                         "in __import__('sys').modules else '')"], cwd=repo, capture_output=True,
                                        text=True).stdout  # the app does load the engine: a probe with teeth


def test_the_pages_sit_in_app_pages_all_routed_and_none_imports_torch(repo):
    """A `pages/` folder beside the entrypoint turns on Streamlit's old multipage mode (it lists and runs each file
    on its own); the pages call vae_core and vae_app for numbers, tables and images, never torch."""
    assert not (repo / "pages").exists()
    pages = sorted((repo / "app_pages").glob("*.py"))
    navigation = (repo / "dashboard.py").read_text()
    assert len(pages) == 6 and all(f'st.Page("app_pages/{page.name}"' in navigation for page in pages)
    imports_torch = re.compile(r"^\s*(import|from) torch\b", re.M)
    assert [p.name for p in [*pages, repo / "dashboard.py"] if imports_torch.search(p.read_text())] == []


def test_session_state_keys_are_named_in_one_place(repo):
    """vae_app/session.py names every key the app keeps in Session State; the pages and the glue use its names."""
    literal = re.compile(r"""session_state(\[|\.get\(|\.setdefault\()\s*f?["']|["']\s+(not\s+)?in\s+st\.session_state""")
    files = [repo / "dashboard.py", *(repo / "app_pages").glob("*.py"), *(repo / "vae_app").rglob("*.py")]
    assert [p.name for p in files if literal.search(p.read_text())] == []


def train_actions():
    train = next(a for a in build_parser()._subparsers._group_actions[0].choices.items() if a[0] == "train")[1]
    return {a.dest: a for a in train._actions}


def test_every_setting_has_a_cli_flag_with_its_help_and_choices():
    actions = train_actions()
    for name, setting in settings().items():
        action = actions[name]
        assert flag(name) in action.option_strings
        assert action.help.startswith(setting.help)
        assert tuple(action.choices or ()) == tuple(setting.choices or ())


@pytest.mark.parametrize("argv, expected", [
    (["--hidden", "200", "200", "--activation", "relu", "--no-weight-decay", "--lr", "1e-3", "--samples", "6e5"],
     {"hidden": (200, 200), "activation": "relu", "weight_decay": False, "lr": 0.001, "samples": 600_000}),
    ([], {}),
])
def test_cli_flags_become_the_config_with_the_dataclass_defaults_elsewhere(argv, expected):
    from vae_core.cli import _config_from
    args = build_parser().parse_args(["train", *argv])
    assert dataclasses.asdict(_config_from(args)) == dataclasses.asdict(TrainConfig(**expected))


def test_bad_flag_values_are_argparse_messages_not_tracebacks(capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["train", "--samples", "1e99"])
    assert exit_.value.code == 2 and "at most 1e+12" in capsys.readouterr().err


def test_the_train_form_draws_one_widget_per_setting(monkeypatch, tmp_path, repo):
    from streamlit.testing.v1 import AppTest
    monkeypatch.chdir(repo)
    monkeypatch.setenv("VAE_RUNS_DIR", str(tmp_path))
    at = AppTest.from_file(str(repo / "dashboard.py"), default_timeout=60)
    at.run()
    at.switch_page("app_pages/train.py").run()
    keys = {w.key for kind in ("selectbox", "number_input", "text_input", "checkbox") for w in getattr(at, kind)}
    assert {f"train.{name}" for name in settings()} <= keys
    labels = {w.key: w.label for kind in ("selectbox", "number_input", "text_input", "checkbox") for w in getattr(at, kind)}
    assert all(labels[f"train.{name}"] == s.label for name, s in settings().items())
