"""The model a page works on, as one small typed value that knows how to load itself: a model file (shipped in
assets/models, or a saved run's), the run training in this session (a parameter snapshot), or an untrained model.

Each has a `label` for the pages' pickers and a `key` that names the model's version, so that caches hold one
entry per version and a live run's new snapshot is a new key.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from vae_core import data, runs
from vae_core.config import TrainConfig
from vae_core.latent import LatentSpace
from vae_core.models import VAE, ModelConfig

ASSETS = Path(__file__).resolve().parents[1] / "assets"
SHIPPED_MODELS = ASSETS / "models"


def shipped_models() -> dict[str, Path]:
    """The pretrained models shipped in assets/models, by name (e.g. 'frey-J2')."""
    return {p.stem: p for p in sorted(SHIPPED_MODELS.glob("*.safetensors"))}


@dataclass(frozen=True)
class ModelFile:
    """A model saved in a file: one shipped in assets/models ("shipped"), or a run's model.safetensors ("run"), with
    the name the Runs page gave it, if any."""
    path: Path
    kind: str = "shipped"
    given_name: str = ""

    @property
    def name(self) -> str:
        return self.path.stem if self.kind == "shipped" else self.path.parent.name

    @property
    def label(self) -> str:
        return f"{self.kind}: {self.name}" + (f" ({self.given_name})" if self.given_name else "")

    @property
    def key(self) -> tuple:
        stat = self.path.stat()
        return str(self.path), stat.st_mtime_ns, stat.st_size

    @property
    def card(self) -> str:
        """The model card beside a shipped model."""
        card = self.path.with_suffix(".md")
        return card.read_text() if self.kind == "shipped" and card.is_file() else ""

    def load(self) -> LatentSpace:
        model, metadata = runs.load_model(self.path)
        return LatentSpace(model, metadata["dataset"], self.name, metadata.get("data_options"))


@dataclass(frozen=True)
class LiveRun:
    """The run training in this session, at one parameter snapshot (numpy arrays sent by its worker); for the user's
    data, the options it is read with (`TrainConfig.data_options`)."""
    run_dir: Path
    dataset: str
    snapshot: dict = field(compare=False, hash=False, repr=False)
    data_options: dict = field(default_factory=dict, compare=False, hash=False, repr=False)

    @classmethod
    def of(cls, worker) -> LiveRun:
        """The worker's run at its latest snapshot."""
        return cls(worker.run_dir, worker.config["dataset"], worker.snapshot,
                   TrainConfig.from_dict(worker.config).data_options)

    @property
    def label(self) -> str:
        return f"this session's run ({self.run_dir.name})"

    @property
    def key(self) -> tuple:
        return "live", str(self.run_dir), self.snapshot["samples_evaluated"]

    card = ""

    def load(self) -> LatentSpace:
        return LatentSpace.from_state(self.snapshot["model_config"], self.snapshot["state"], self.dataset,
                                      data_options=self.data_options)


@dataclass(frozen=True)
class UntrainedModel:
    """The paper's network for `dataset` at its N(0, 0.01²) initialisation (Section 5), seeded."""
    dataset: str
    latent_dim: int = 2
    seed: int = 0

    @property
    def label(self) -> str:
        return f"untrained {self.dataset} (J = {self.latent_dim})"

    @property
    def key(self) -> tuple:
        return "untrained", self.dataset, self.latent_dim, self.seed

    card = ""

    def load(self) -> LatentSpace:
        config = ModelConfig.for_dataset(data.dataset_spec(self.dataset), self.latent_dim)
        return LatentSpace(VAE(config, generator=torch.Generator().manual_seed(self.seed)), self.dataset, self.label)


Source = ModelFile | LiveRun | UntrainedModel


def model_sources(live_worker=None, untrained: tuple[str, ...] = ()) -> dict[str, Source]:
    """What a page can work on, by label: the run training in this session, the shipped models, saved runs whose
    model file is whole, then untrained models of the datasets given."""
    sources: list[Source] = []
    if live_worker is not None and live_worker.snapshot is not None:
        sources.append(LiveRun.of(live_worker))
    sources += [ModelFile(path) for path in shipped_models().values()]
    from .views import run_index
    for record in run_index().records(metrics=False):
        if (record.path / runs.MODEL).is_file() and runs.MODEL not in record.problems:
            sources.append(ModelFile(record.path / runs.MODEL, "run", record.meta.get("name", "")))
    sources += [UntrainedModel(d) for d in untrained]
    return {s.label: s for s in sources}
