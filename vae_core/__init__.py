"""vae_core: Auto-Encoding Variational Bayes (Kingma & Welling, 2014) in PyTorch."""
from .data import DATASETS, DataError, Dataset, load
from .estimators import (estimator_a, estimator_b, estimator_b_terms, importance_weighted_bound,
                         kl_to_standard_normal, minibatch_lower_bound, reparameterize)
from .models import VAE, ModelConfig
from .runs import list_runs, load_model, save_model
from .training import TrainConfig, TrainEvent, Trainer

__all__ = ["DATASETS", "DataError", "Dataset", "load", "estimator_a", "estimator_b", "estimator_b_terms",
           "importance_weighted_bound", "kl_to_standard_normal", "minibatch_lower_bound", "reparameterize",
           "VAE", "ModelConfig", "list_runs", "load_model", "save_model", "TrainConfig", "TrainEvent", "Trainer"]
