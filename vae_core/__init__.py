"""vae_core: Auto-Encoding Variational Bayes (Kingma & Welling, 2014) in PyTorch, the engine.

Models, estimators, the training loop and its algorithms, data, run folders, the variance lab, the latent
space's maths and the CLI (`python -m vae_core`). It imports no dashboard library: the app's glue is `vae_app`.
"""
from .algorithms import Algorithm, Minibatch, make_algorithm
from .config import ConfigError, TrainConfig
from .data import DATASETS, DataError, Dataset, load
from .estimators import (
                         estimator_a,
                         estimator_b,
                         estimator_b_terms,
                         importance_weighted_bound,
                         kl_to_standard_normal,
                         log_weight,
                         minibatch_lower_bound,
                         reparameterize,
)
from .events import EventKind, TrainEvent
from .models import VAE, ModelConfig
from .runs import RunError, RunRecord, RunState, list_runs, load_model, read_run, save_model
from .training import Trainer

__all__ = ["Algorithm", "Minibatch", "make_algorithm", "ConfigError", "TrainConfig", "DATASETS", "DataError", "Dataset",
           "load", "estimator_a", "estimator_b", "estimator_b_terms", "importance_weighted_bound",
           "kl_to_standard_normal", "log_weight", "minibatch_lower_bound", "reparameterize", "EventKind", "TrainEvent",
           "VAE", "ModelConfig", "RunError", "RunRecord", "RunState", "list_runs", "load_model", "read_run",
           "save_model", "Trainer"]
