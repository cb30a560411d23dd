"""The training configuration: one dataclass whose fields carry their help, choices and limits.

The CLI's `train` flags (`cli.py`) and the dashboard's Train form are both derived from these fields, and
`TrainConfig.problems()` is the one place where a configuration is checked, with a message per setting.
Defaults follow Section 5 of the paper.
"""
from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import algorithms, environment
from . import data as data_module
from .algorithms import ALGORITHMS, fast_step_unavailable
from .estimators import IW_GRADIENTS
from .models import ACTIVATIONS, INITIALISATIONS, LIKELIHOODS, ModelConfig
from .userdata import SCALES, parse_image_size

STEP_SIZE_CANDIDATES = {  # `lr auto` tries these for a few steps each and keeps the best (Section 5)
    "adagrad": (0.01, 0.02, 0.1),  # the paper's set
    "adam": (1e-4, 3e-4, 1e-3),  # around Adam's usual 1e-3 (Kingma & Ba 2015)
    "sgd": (1e-4, 1e-3, 1e-2),  # momentum 0.9: an effective step ten times these
}
OPTIMIZERS = tuple(STEP_SIZE_CANDIDATES)
EVALUATIONS = ("bound", "marginal")
STEPS = ("auto", *algorithms.STEPS)  # how the gradient is computed; auto: fast wherever it applies
DEVICES = ("auto", "cpu", "cuda")
MEMORY_ENV = "VAE_MAX_MEMORY"  # bytes a setting may ask for; by default half of the memory available now

# Upper bounds, checked before anything is allocated (docs/RELIABILITY.md).
LIMITS: dict[str, Any] = {"latent_dim": 1024, "hidden_units": 16384, "hidden_layers": 8, "samples_per_point": 10_000,
          "samples": 10**12, "seed": 2**32 - 1, "trial_steps": 10_000, "iw_k": 10_000,
          "vb_logvar": (-80.0, 10.0)}  # full VB's initial log σ² of q(θ): σ from 4e-18 (θ as good as fixed) to 148


def _datasets_help() -> str:
    """The datasets as the `dataset` setting's help lists them, from their specs."""
    return ", ".join(f"{s.name} ({s.title}{'' if s.files else ', bundled, needs no download'})"
                     for s in data_module.DATASETS.values())


def _paper_networks() -> str:
    """The paper's hidden layers for each dataset (its spec's), as help text says them: "500 for mnist, ..."."""
    return (", ".join(f"{' '.join(map(str, s.hidden))} for {s.name}" for s in data_module.DATASETS.values())
            + f", for your own data 500 from N = {data_module.SMALL_DATASET:,} training points up, 200 below")


def _data_folders() -> str:
    """The folders a data directory holds, one for each dataset with files to fetch: "mnist/ and frey/"."""
    return " and ".join(f"{s.name}/" for s in data_module.DATASETS.values() if s.files)


def parse_sample_count(text: str | int | float) -> int:
    """A budget of samples as people write it: 1e6, 1_000_000 or 1000000; ValueError says what is wrong."""
    try:
        value = float(str(text).strip().replace("_", ""))
    except ValueError:
        raise ValueError(f"{text!r} is not a number of samples (write e.g. 1e6 or 1000000)") from None
    if not math.isfinite(value) or not value.is_integer() or value < 1:
        raise ValueError(f"the number of samples must be a whole number of at least 1, got {text!r}")
    if value > LIMITS["samples"]:
        raise ValueError(f"the number of samples must be at most {LIMITS['samples']:.0e}, got {text!r}")
    return int(value)


def parse_step_size(text: str | float) -> float | str:
    """A step size: a positive number, or "auto" for the trial of Section 5."""
    if isinstance(text, str) and text.strip().lower() == "auto":
        return "auto"
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"the step size must be a positive number or 'auto', got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"the step size must be a positive number or 'auto', got {text!r}")
    return value


def parse_optional_count(text: str | int | None) -> int | None:
    """A whole number, or nothing (empty) for "all"."""
    if text is None or str(text).strip() == "":
        return None
    try:
        return int(str(text).strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a whole number (leave it empty for all)") from None


def parse_hidden(text: str | list | tuple | None) -> tuple[int, ...] | None:
    """Hidden layers as units per layer: "500", "200 200" (or a list of them); empty for the paper's size."""
    parts = (text.replace(",", " ").split() if isinstance(text, str) else list(text)) if text is not None else []
    if not parts:
        return None
    try:
        return tuple(int(p) for p in parts)
    except (TypeError, ValueError):
        raise ValueError(f"hidden layers must be whole numbers of units, e.g. 500 or 200 200, got {text!r}") from None


@dataclass(frozen=True)
class Setting:
    """How one field of TrainConfig appears to people: its help, CLI flag, form label and section, its choices,
    and the parser for the text a person types (CLI and form alike)."""
    help: str
    label: str
    section: str  # the form's section: "data and model", "objective", "optimisation", "advanced"
    choices: tuple | None = None
    parse: Callable[[str], Any] | None = None
    metavar: str | None = None
    flag: str | None = None  # default: --field-name
    nargs: str | None = None  # "+": the CLI takes several values (hidden layers)
    placeholder: str | None = None  # what the form's empty field says
    suggestions: tuple | None = None  # values offered first where other values are allowed too (a dataset's path)


def setting(default, help: str, label: str, section: str, **kw):
    return field(default=default, metadata={"setting": Setting(help, label, section, **kw)})


def settings() -> dict[str, Setting]:
    """Every field of TrainConfig with its Setting, in the dataclass's order."""
    return {f.name: f.metadata["setting"] for f in dataclasses.fields(TrainConfig)}


def flag(name: str) -> str:
    """The CLI flag of a field: booleans that default to on are switched off by --no-<name>."""
    explicit = settings()[name].flag
    if explicit:
        return explicit
    dashed = name.replace("_", "-")
    return f"--no-{dashed}" if getattr(TrainConfig, name, None) is True else f"--{dashed}"


class ConfigError(ValueError):
    """A configuration that cannot be trained; `problems` maps each setting at fault to what is wrong."""

    def __init__(self, problems: dict[str, str]):
        self.problems = problems
        super().__init__("; ".join(problems.values()))

    def __reduce__(self):  # pickled by Ray between a trial and the driver: rebuilt from its problems, not its message
        return ConfigError, (self.problems,)


@dataclass
class TrainConfig:
    """Defaults follow Section 5 of the paper; `hidden=None` takes the paper's size for the dataset."""
    dataset: str = setting("digits", f"the data: {_datasets_help()}; or the path of your own: a .npy or .npz file, a "
                           ".csv of numbers, a .zip of images, or a folder of images or IDX files (a name of this "
                           "project's is the dataset, ./name the path)", "Dataset", "data and model",
                           suggestions=tuple(data_module.DATASETS), metavar="NAME|PATH")
    likelihood: str = setting("auto", "the decoder p(x|z): auto (the paper's for its datasets; Bernoulli for your own "
                              "data, binary or grey, as the paper treats MNIST's grey pixels), bernoulli or gaussian",
                              "Decoder p(x|z)", "data and model", choices=("auto", *LIKELIHOODS))
    image_size: str | None = setting(None, "your own data: rows x columns to resize every image to (e.g. 28x28), or "
                                     "auto, the most common size among them; for rows of numbers, the image each row "
                                     "is (empty: images as they are, which must then share one size; rows as vectors)",
                                     "Image size", "your data", parse=parse_image_size, metavar="RxC|auto",
                                     placeholder="as they are")
    scale: str = setting("auto", "your own data: how its values become [0, 1]: auto (as they are when in [0, 1], "
                         "divided by 255 when whole numbers from 0 to 255, otherwise refused) or range (the data's own "
                         "minimum and maximum to 0 and 1)", "Scaling to [0, 1]", "your data", choices=SCALES)
    latent_dim: int = setting(2, "J, the dimensions of the latent variable z", "Latent dimensions J",
                              "data and model", metavar="J")
    hidden: tuple[int, ...] | None = setting(
        None, f"units of each hidden layer, e.g. 500 or 200 200 (empty: the paper's network for the dataset, "
        f"{_paper_networks()}); the decoder mirrors the encoder", "Hidden units per layer", "data and model",
        parse=parse_hidden, metavar="H", nargs="+", placeholder=f"the paper's: {_paper_networks()}")
    activation: str = setting("tanh", "the hidden units' nonlinearity (the paper: tanh)", "Activation",
                              "data and model", choices=tuple(ACTIVATIONS))
    init: str = setting("paper", "initial parameters: paper draws each from N(0, 0.01²) (Section 5); default is "
                        "PyTorch's layer initialisation", "Initialisation", "data and model",
                        choices=INITIALISATIONS)
    algorithm: str = setting("aevb", "the learning algorithm: " + "; ".join(
                             f"{name}, {cls.help}" for name, cls in ALGORITHMS.items()), "Algorithm",
                             "objective", choices=tuple(ALGORITHMS))
    estimator: str = setting("B", "SGVB estimator: B, with the analytic KL (eq. 7), or A (eq. 6)", "Estimator",
                             "objective", choices=("B", "A"))
    samples_per_point: int = setting(1, "L, samples of z per datapoint in each step", "Samples per datapoint L",
                                     "objective", metavar="L")
    iw_k: int | None = setting(None, "iwae: K, the samples per datapoint of the importance-weighted bound it trains on "
                               "(Burda et al. 2016: 5 and 50; K = 1 is aevb with estimator A); iwae only, and it needs "
                               "it", "IW samples K (iwae)", "objective", metavar="K", parse=parse_optional_count,
                               placeholder="iwae only, e.g. 5")
    iw_gradient: str = setting("plain", "iwae: the encoder's gradient, plain (through the bound itself) or dreg, "
                               "doubly reparameterised (Tucker et al. 2019), whose signal does not fade as K grows",
                               "IW encoder gradient (iwae)", "objective", choices=IW_GRADIENTS)
    batch_size: int = setting(100, "M, datapoints per minibatch", "Minibatch M", "objective", metavar="M")
    samples: int = setting(1_000_000, "the budget: training samples evaluated (minibatches x M), the paper's x axis, "
                           "e.g. 1e6", "Training samples to evaluate", "optimisation", parse=parse_sample_count,
                           metavar="N")
    optimizer: str = setting("adagrad", "adagrad (the paper), adam, or sgd with momentum 0.9", "Optimizer",
                             "optimisation", choices=OPTIMIZERS)
    lr_schedule: str = setting("constant", "constant, or iwae: the IWAE paper's schedule (Burda et al. 2016), 3^i "
                               "epochs at lr·10^(-i/7) for i = 0 to 7, then the last", "Step-size schedule",
                               "optimisation", choices=("constant", "iwae"))
    lr: float | str = setting("auto", "the step size, or auto: a short trial of each candidate for the optimizer "
                              "(adagrad 0.01, 0.02, 0.1 as in Section 5)", "Step size", "optimisation",
                              parse=parse_step_size, metavar="LR|auto")
    weight_decay: bool = setting(True, "MAP under the prior p(θ) = N(0, I): weight decay 1/N per datapoint",
                                 "Weight decay (prior on θ)", "optimisation")
    binarize: bool = setting(False, "train on dynamically binarised pixels (Bernoulli data only); evaluations then "
                             "score a binarised copy of the data, drawn once with the run's seed", "Binarise",
                             "optimisation")
    seed: int = setting(0, "seeds the initialisation, the minibatches and the noise", "Seed", "optimisation")
    train_size: int | None = setting(None, "train on the first N training points only (Fig. 3: 1000); empty: all",
                                     "Training points", "data and model", metavar="N", parse=parse_optional_count,
                                     placeholder="all")
    evaluation: str = setting("bound", "what evaluations score: the lower bound (estimator B, L = 1), or marginal: "
                              "the bound and Appendix D's estimate of log p(x) (J below 5; mcem needs it)",
                              "Evaluation", "advanced", choices=EVALUATIONS)
    marginal_points: int = setting(1000, "datapoints of the training and test sets whose log p(x) a marginal "
                                   "evaluation estimates (Fig. 3: the first 1000)", "Points for log p(x)", "advanced")
    vb_logvar: float = setting(-10.0, "full-vb: the log-variance every parameter's q(θ) starts from",
                               "Initial log σ² of q(θ)", "advanced")
    step: str = setting("auto", "how the gradient is computed: fast (derived by hand, for " + ", ".join(
                        name for name, cls in ALGORITHMS.items() if "fast" in cls.steps) + " on the CPU in float32), "
                        "autograd, compiled (autograd's loss and its backward under torch.compile: a compile of a few "
                        "seconds to a minute first, then fewer, fused kernels; for GPUs), or auto (fast wherever it "
                        "applies, else autograd)",
                        "Gradient step",
                        "advanced", choices=STEPS)
    device: str = setting("auto", "where to train: auto (a CUDA GPU if there is one), cpu or cuda", "Device",
                          "advanced", choices=DEVICES)
    data_dir: str | None = setting(None, f"folder holding {_data_folders()} (default: $VAE_DATA_DIR, then the cache)",
                                   "Data folder", "advanced", metavar="DIR",
                                   placeholder="$VAE_DATA_DIR, then ~/.cache/vae_core")
    eval_train_size: int = setting(10_000, "training points in each scheduled evaluation (the final one uses all)",
                                   "Training points per evaluation", "advanced")
    trial_steps: int = setting(30, "steps per candidate step size when lr is auto", "Trial steps per step size",
                               "advanced")
    checkpoint_seconds: float = setting(60.0, "training seconds between checkpoints besides those at evaluations",
                                        "Seconds between checkpoints", "advanced")

    def __post_init__(self):
        """A path to the user's data is kept absolute, so that a run finds its data from any folder."""
        if (isinstance(self.dataset, str) and self.dataset not in data_module.DATASETS and self.dataset.strip()
                and os.path.exists(os.path.expanduser(self.dataset))):
            self.dataset = os.path.abspath(os.path.expanduser(self.dataset))

    @property
    def own_data(self) -> bool:
        """Whether the dataset is the user's, at a path, rather than one of DATASETS."""
        return self.dataset not in data_module.DATASETS

    @property
    def data_options(self) -> dict:
        """How the user's data is read (`data.load`'s image_size and scale); none for this project's datasets."""
        return {"image_size": self.image_size, "scale": self.scale} if self.own_data else {}

    @property
    def spec(self) -> data_module.DatasetSpec:
        """The dataset's spec: its image shape, N, likelihood (as `likelihood` says) and the paper's network for it;
        for the user's data, found by reading it."""
        return self._decoded(data_module.dataset_spec(self.dataset, **self.data_options))

    def _decoded(self, spec: data_module.DatasetSpec) -> data_module.DatasetSpec:
        return spec if self.likelihood == "auto" else dataclasses.replace(spec, likelihood=self.likelihood)

    def model_config(self, spec: data_module.DatasetSpec | None = None) -> ModelConfig:
        """The network this configuration trains, on the data of `spec` (default: its dataset's); without hidden
        layers given, the paper's for the dataset."""
        spec = self._decoded(spec) if spec is not None else self.spec
        return ModelConfig.for_dataset(spec, self.latent_dim, self.hidden, self.activation, self.init)

    @property
    def run_label(self) -> str:
        """What a new run's folder is named after: the dataset (the user's file or folder name, made safe for a
        folder's: a name is data, never a path) and J."""
        name = self.dataset if not self.own_data else re.sub(r"[^A-Za-z0-9_-]+", "_", os.path.basename(
            os.path.normpath(str(self.dataset))).rsplit(".", 1)[0]).strip("_-")[:40] or "data"
        return f"{name}-J{self.latent_dim}"

    def problems(self, machine: bool = True) -> dict[str, str]:
        """What is wrong, by setting; empty when the configuration can be trained. With `machine` False, only what
        holds anywhere (a saved run's config is read so): not this machine's devices and memory."""
        problems: dict[str, str] = {}
        for name, choices in ((n, s.choices) for n, s in settings().items() if s.choices):
            if getattr(self, name) not in choices:
                problems[name] = f"{name} must be one of {', '.join(map(str, choices))}, got {getattr(self, name)!r}"
        for name in ("latent_dim", "samples_per_point", "batch_size", "samples", "eval_train_size", "trial_steps",
                     "marginal_points"):
            value = getattr(self, name)
            if not _whole(value) or value < 1:
                problems[name] = f"{name} must be a whole number of at least 1, got {value!r}"
            elif name in LIMITS and value > LIMITS[name]:
                problems[name] = f"{name} must be at most {LIMITS[name]:,}, got {value:,}"
        if not _whole(self.seed) or not 0 <= self.seed <= LIMITS["seed"]:
            problems["seed"] = f"seed must be a whole number from 0 to {LIMITS['seed']:,}, got {self.seed!r}"
        if self.hidden is not None:
            if (not isinstance(self.hidden, (tuple, list)) or not self.hidden
                    or not all(_whole(h) and h >= 1 for h in self.hidden)):
                shown = " ".join(map(str, self.hidden)) if isinstance(self.hidden, (tuple, list)) else repr(self.hidden)
                problems["hidden"] = f"hidden layers must be whole numbers of at least 1 unit, got {shown or 'none'}"
            elif len(self.hidden) > LIMITS["hidden_layers"] or max(self.hidden) > LIMITS["hidden_units"]:
                problems["hidden"] = (f"at most {LIMITS['hidden_layers']} hidden layers of at most "
                                      f"{LIMITS['hidden_units']:,} units each, got {list(self.hidden)}")
        if self.train_size is not None and (not _whole(self.train_size) or not 1 <= self.train_size):
            problems["train_size"] = f"train_size must be a whole number of at least 1, got {self.train_size!r}"
        self._data_options_problems(problems)
        if not problems.keys() & {"dataset", "image_size", "scale"}:
            self._dataset_problems(problems, machine)
        if "algorithm" not in problems and not ALGORITHMS[self.algorithm].learns_encoder and self.evaluation != "marginal":
            problems["evaluation"] = (f"{self.algorithm} learns no encoder, so its lower bound says nothing: it needs "
                                      f"evaluation 'marginal' (Appendix D's estimate of log p(x))")
        if "algorithm" not in problems:
            self._iw_problems(problems)
        if self.evaluation == "marginal" and _whole(self.latent_dim) and self.latent_dim > 4:
            problems["evaluation"] = (f"the marginal-likelihood estimator of Appendix D is for J below 5, got "
                                      f"J = {self.latent_dim}; evaluate the bound instead")
        if self.lr != "auto" and not (isinstance(self.lr, (int, float)) and not isinstance(self.lr, bool)
                                      and math.isfinite(self.lr) and self.lr > 0):
            problems["lr"] = f"lr must be a positive number or 'auto', got {self.lr!r}"
        if not (isinstance(self.checkpoint_seconds, (int, float)) and 0 < self.checkpoint_seconds < math.inf):
            problems["checkpoint_seconds"] = f"checkpoint_seconds must be a positive number, got {self.checkpoint_seconds!r}"
        if not (isinstance(self.vb_logvar, (int, float)) and LIMITS["vb_logvar"][0] <= self.vb_logvar <= LIMITS["vb_logvar"][1]):
            problems["vb_logvar"] = (f"vb_logvar must be a number from {LIMITS['vb_logvar'][0]} to "
                                     f"{LIMITS['vb_logvar'][1]}, got {self.vb_logvar!r}")
        if machine:
            self._machine_problems(problems)
        return problems

    def _machine_problems(self, problems: dict[str, str]) -> None:
        """What this machine cannot train: the fast step off the CPU, a GPU it lacks, more memory than allowed."""
        if self.step == "fast" and "step" not in problems and "algorithm" not in problems:
            reason = fast_step_unavailable(self.algorithm, resolve_device(self.device))
            if reason:
                problems["step"] = f"step 'fast' {reason}; use 'auto' or 'autograd'"
        if problem := device_problem(self.device):
            problems["device"] = problem
        if not problems:
            needed, allowed = self.memory_needed(), memory_allowed()
            if needed > allowed:
                problems["memory"] = (f"this setting needs about {needed / 2**30:.1f} GiB of memory to train, more than "
                                      f"the {allowed / 2**30:.1f} GiB allowed here (half of what is available; set "
                                      f"${MEMORY_ENV} in bytes to change that): lower J, hidden units, L or M")

    def _data_options_problems(self, problems: dict[str, str]) -> None:
        """The dataset named, and how the user's data is read: options that apply to it alone."""
        names = ", ".join(data_module.DATASETS)
        if not isinstance(self.dataset, str) or not self.dataset.strip():
            problems["dataset"] = f"dataset must be one of {names}, or the path of your own data, got {self.dataset!r}"
            return
        if self.own_data and not _looks_like_a_path(self.dataset) and not os.path.exists(self.dataset):
            problems["dataset"] = (f"dataset must be one of {names}, or the path of your own data, got "
                                   f"{self.dataset!r}: no file or folder of that name is here")
            return
        try:
            parse_image_size(self.image_size)
        except ValueError as e:
            problems["image_size"] = str(e)
        for name, default in (("image_size", None), ("scale", "auto")):
            if not self.own_data and getattr(self, name) != default and name not in problems:
                problems[name] = (f"{name} applies to your own data (a path), not to {self.dataset}, which is read as "
                                  f"the paper reads it")

    def _dataset_problems(self, problems: dict[str, str], machine: bool) -> None:
        """Adds to `problems` what the dataset's spec rules out: more training points, or a larger minibatch, than it
        has (N), and binarising data that is not Bernoulli. The user's data is read for it only with `machine`: it
        is where it trains that the data must be, and a saved run's settings are checked without it."""
        if self.own_data and not machine:
            return
        try:
            spec = self.spec
        except data_module.DataError as e:  # the user's data cannot be read, or is not data: the reader's message
            problems["dataset"] = str(e)
            return
        if "train_size" not in problems and self.train_size is not None and self.train_size > spec.train_size:
            problems["train_size"] = (f"train_size must be at most the {spec.train_size} training datapoints of "
                                      f"{self.dataset}, got {self.train_size}")
        if "batch_size" not in problems and "train_size" not in problems:
            n = self.train_size or spec.train_size
            if self.batch_size > n:  # M distinct rows a step
                problems["batch_size"] = (f"batch_size M must be at most the {n} training datapoints of "
                                          f"{self.dataset}, got {self.batch_size}")
        if self.binarize and spec.likelihood != "bernoulli":
            bernoulli = ", ".join(s.name for s in data_module.DATASETS.values() if s.likelihood == "bernoulli")
            problems["binarize"] = f"binarize applies to Bernoulli data ({bernoulli}), not {self.dataset}"

    def _iw_problems(self, problems: dict[str, str]) -> None:
        """Adds to `problems` what is wrong with the IWAE settings: iwae needs K and one sample per draw (K replaces
        L), and the other algorithms take neither K nor another encoder gradient."""
        if self.algorithm != "iwae":
            if self.iw_k is not None:
                problems["iw_k"] = f"iw_k applies to the iwae algorithm only, not {self.algorithm}; leave it empty"
            if self.iw_gradient != "plain" and "iw_gradient" not in problems:
                problems["iw_gradient"] = (f"iw_gradient {self.iw_gradient!r} applies to the iwae algorithm only, not "
                                           f"{self.algorithm}")
            return
        if self.iw_k is None:
            problems["iw_k"] = "iwae needs iw_k, the K samples per datapoint of the bound it trains on (e.g. 5)"
        elif not _whole(self.iw_k) or not 1 <= self.iw_k <= LIMITS["iw_k"]:
            problems["iw_k"] = f"iw_k must be a whole number from 1 to {LIMITS['iw_k']:,}, got {self.iw_k!r}"
        if self.samples_per_point != 1 and "samples_per_point" not in problems:
            problems["samples_per_point"] = (f"iwae draws its K = iw_k samples per datapoint; samples_per_point L must "
                                             f"stay 1, got {self.samples_per_point}")

    def validate(self) -> None:
        """Raises ConfigError (a ValueError) naming each setting that is wrong and what is allowed."""
        problems = self.problems()
        if problems:
            raise ConfigError(problems)

    def memory_needed(self) -> int:
        """Bytes that training this configuration needs, estimated before anything is allocated: the data, the
        parameters with their gradient, optimizer state and checkpoint copies, and one step's activations."""
        network = self.model_config()
        D, N, J = network.data_dim, self.train_size or self.spec.train_size, self.latent_dim
        per_row = sum(network.hidden) * 2 + network.decoder_outputs + 3 * J  # one sample's activations, both networks
        draws = self.samples_per_point * (self.iw_k if isinstance(self.iw_k, int) else 1)  # z per datapoint a step
        activations = 3 * draws * self.batch_size * per_row + 3 * 1000 * per_row  # step; evaluation
        return 4 * (6 * network.parameter_count() + activations + 2 * N * D)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        d = dict(d)
        if "hidden_dim" in d:  # configs written before several hidden layers existed
            d["hidden"] = None if d["hidden_dim"] is None else (d["hidden_dim"],)
        if d.get("hidden") is not None:
            d["hidden"] = tuple(d["hidden"])
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def device_problem(name: str) -> str | None:
    """Why this machine cannot compute on the device `name` (one of DEVICES), or None."""
    import torch
    if name == "cuda" and not torch.cuda.is_available():
        return "device 'cuda' was asked for, but PyTorch sees no CUDA GPU here; use 'auto' or 'cpu'"
    return None


def resolve_device(name: str):
    """The torch device for a `device` setting: "auto" is CUDA where PyTorch sees a GPU, else the CPU."""
    import torch
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _looks_like_a_path(text: str) -> bool:
    """Whether a dataset is written as a path (a saved run's always is: absolute), not as a name."""
    return os.sep in text or text.startswith((".", "~"))


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def memory_allowed() -> int:
    """Bytes one setting may ask for: $VAE_MAX_MEMORY, or half of the memory available now."""
    given = environment.byte_count(MEMORY_ENV)
    if given is not None:
        return given
    try:
        with open("/proc/meminfo") as f:
            fields = dict(line.split(":", 1) for line in f)
        return int(fields["MemAvailable"].split()[0]) * 1024 // 2
    except (OSError, KeyError, ValueError):
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES") // 2
