"""The whole engine on one device, by the autograd steps: training (every algorithm, then resumed), evaluation,
the variance lab, the k trade-off, Appendix D's estimator, HMC and the latent space.

On a CPU-only machine a wrong device cannot fail by itself, so a torch function mode watches every tensor that
vae_core creates: each factory call must name its device (the model's or the data's), else on a GPU it would make
a CPU tensor beside a CUDA model. A second watch counts host reads (`.item()`, `.cpu()`, ...) in the training
steps that log nothing: each would stall a GPU's queue once a step. The same tests run on CUDA where PyTorch sees
a GPU (marker `cuda`; skipped elsewhere, with the reason).
"""
from __future__ import annotations

import contextlib
import io
import json
import sys

import numpy as np
import pytest
import torch
from torch.overrides import TorchFunctionMode

from vae_core import TrainConfig, Trainer, data, runs
from vae_core.algorithms import ALGORITHMS
from vae_core.cli import main
from vae_core.evaluation import active_units, dataset_iw_bound, dataset_lower_bound
from vae_core.hmc import Sampler, log_joint
from vae_core.latent import LatentSpace
from vae_core.marginal import MarginalConfig, marginal_log_likelihood
from vae_core.models import VAE
from vae_core.variance import VarianceConfig, measure_iw_tradeoff, measure_variance

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]
FACTORIES = {torch.randn, torch.rand, torch.randint, torch.randperm, torch.zeros, torch.ones, torch.empty, torch.full,
             torch.tensor, torch.as_tensor, torch.arange, torch.linspace, torch.eye, torch.normal, torch.bernoulli}
HOST_READS = {torch.Tensor.item, torch.Tensor.cpu, torch.Tensor.tolist, torch.Tensor.numpy, torch.Tensor.__bool__,
              torch.Tensor.__float__, torch.Tensor.__int__}


def _engine_caller() -> str | None:
    """Where in vae_core the torch call being intercepted was made (the frame calling torch), or None."""
    frame = sys._getframe(2)
    name = frame.f_code.co_filename
    return f"{name.split('/vae_core/')[1]}:{frame.f_lineno}" if "/vae_core/" in name else None


class Watch(TorchFunctionMode):
    """Records each factory call of vae_core's that names no device, and (with `host_reads`) each read of a tensor's
    value on the host."""

    def __init__(self, host_reads: bool = False):
        super().__init__()
        self.no_device: list[str] = []
        self.reads: list[str] = []
        self.host_reads = host_reads

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in FACTORIES and kwargs.get("device") is None:
            where = _engine_caller()
            if where:
                self.no_device.append(f"{where} {func.__name__}")
        if self.host_reads and func in HOST_READS:
            where = _engine_caller()
            if where:
                self.reads.append(f"{where} {func.__name__}")
        return func(*args, **kwargs)


def _config(algorithm: str, device: str, samples: int, step: str = "autograd") -> TrainConfig:
    extra = {"iw_k": 3} if algorithm == "iwae" else {}
    if not ALGORITHMS[algorithm].learns_encoder:
        extra = {"evaluation": "marginal", "marginal_points": 8}
    return TrainConfig(dataset="digits", latent_dim=2, samples=samples, algorithm=algorithm, step=step, device=device,
                       lr=0.01, **extra)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("algorithm", list(ALGORITHMS))
def test_every_algorithm_trains_and_resumes_on_the_device_it_is_given(tmp_path, algorithm, device):
    watch = Watch()
    with watch:
        first = Trainer.from_config(_config(algorithm, device, 2000), run_dir=tmp_path / "run")
        assert first.run().kind.value == "finished"
        resumed = Trainer.resume_from(tmp_path / "run", samples=4000)
        last = resumed.run()
    assert watch.no_device == []
    assert last.kind.value == "finished" and last.samples_evaluated == 4000
    assert {p.device.type for p in resumed.algorithm.module.parameters()} == {device}
    key = "test_lower_bound" if ALGORITHMS[algorithm].learns_encoder else "test_marginal_log_likelihood"
    assert np.isfinite(resumed.metrics[-1][key])
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["device"].startswith(device) and config["step"] == "autograd"


@pytest.mark.parametrize("algorithm", [name for name, cls in ALGORITHMS.items() if name != "mcem"])
def test_a_training_step_that_logs_nothing_never_reads_a_value_back_to_the_host(tmp_path, algorithm):
    """Monte Carlo EM is left out: its E-step tunes one HMC step size for all chains from their acceptance rate,
    which it reads once a minibatch (Appendix E's rule)."""
    trainer = Trainer.from_config(_config(algorithm, "cpu", 10**5), run_dir=tmp_path / "run")
    trainer.train_step()  # the first step builds what later steps reuse
    watch = Watch(host_reads=True)
    with watch:
        for _ in range(3):
            trainer.train_step()
    trainer.close()
    assert watch.reads == [] and watch.no_device == []


@pytest.mark.parametrize("device", DEVICES)
def test_evaluation_variance_and_the_marginal_estimator_compute_where_the_model_is(device):
    digits = data.load("digits")
    model = VAE(TrainConfig(dataset="digits", latent_dim=2).model_config(digits.spec),
                generator=torch.Generator().manual_seed(0)).to(device)
    x = torch.tensor(digits.test[:12], device=device)
    watch = Watch()
    with watch:
        generator = torch.Generator(device=device).manual_seed(1)
        bound = dataset_lower_bound(model, x, generator)[0]
        iw = dataset_iw_bound(model, x, 4, generator)
        active, _ = active_units(model, x)
        settings = VarianceConfig(batch_size=len(x), repeats=4, samples=(1, 2))
        looped = measure_variance(model, x, settings, vectorised=False)
        vectorised = measure_variance(model, x, settings)
        tradeoff = measure_iw_tradeoff(model, x, VarianceConfig(batch_size=len(x), repeats=4, samples=(1, 3)))
        marginal, error = marginal_log_likelihood(model, x[:3], MarginalConfig.for_model(True), generator)
        z = torch.zeros((2, 3, 2), device=device)
        draws, _, rate = Sampler(leapfrog_steps=3, step_size=0.1).sample(log_joint(model, x[:3]), z, 4, 4, generator)
    assert watch.no_device == []
    assert np.isfinite(bound) and iw.device.type == device and torch.isfinite(iw).all() and 0 <= active <= 2
    for row_a, row_b in zip(looped.rows, vectorised.rows):  # two computations of the same figures, on the device
        assert row_a["estimator"] == row_b["estimator"]
        if "phi_total_variance" in row_a:
            assert row_a["phi_total_variance"] == pytest.approx(row_b["phi_total_variance"], rel=1e-3)
    assert all(np.isfinite(row["phi_snr"]) for row in tradeoff.rows)
    assert marginal.device.type == device and torch.isfinite(marginal).all() and torch.isfinite(error).all()
    assert draws.shape == (4, 2, 3, 2) and draws.device.type == device and 0 <= rate <= 1


@pytest.mark.parametrize("device", DEVICES)
def test_the_latent_space_of_a_model_on_the_device_matches_the_cpu_copy(device):
    digits = data.load("digits")
    model = VAE(TrainConfig(dataset="digits", latent_dim=2).model_config(digits.spec),
                generator=torch.Generator().manual_seed(0))
    on_cpu, on_device = LatentSpace(model, "digits"), LatentSpace(VAE(model.config).to(device), "digits")
    on_device.model.load_state_dict(model.state_dict())
    watch = Watch()
    with watch:
        shown = {"manifold": on_device.manifold(4)[0], "samples": on_device.samples(3, seed=2),
                 "reconstructions": on_device.reconstructions([0, 5])[1], "interpolation": on_device.interpolation(0, 5),
                 "posteriors": on_device.test_posteriors[1]}
    assert watch.no_device == []
    expected = {"manifold": on_cpu.manifold(4)[0], "samples": on_cpu.samples(3, seed=2),
                "reconstructions": on_cpu.reconstructions([0, 5])[1], "interpolation": on_cpu.interpolation(0, 5),
                "posteriors": on_cpu.test_posteriors[1]}
    for name, array in shown.items():
        assert isinstance(array, np.ndarray)
        np.testing.assert_allclose(array, expected[name], atol=1e-5, err_msg=name)


def _cli(*argv: str) -> tuple[int, str]:
    """`python -m vae_core ARGV` in this process: the exit code, and stdout (or stderr, when it failed)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue() if code == 0 else err.getvalue()


@pytest.mark.parametrize("device", DEVICES)
def test_the_cli_evaluates_and_measures_variance_on_the_device_asked_for(tmp_path, device):
    Trainer.from_config(_config("aevb", "cpu", 2000), run_dir=tmp_path / "run").run()  # trained on the CPU
    code, out = _cli("evaluate", str(tmp_path / "run"), "--device", device, "--iw-samples", "5", "--json")
    assert code == 0
    evaluated = json.loads(out.strip().splitlines()[-1])
    assert evaluated["device"].startswith(device) and np.isfinite(evaluated["test_log_likelihood"])
    code, out = _cli("variance", "--untrained", "--dataset", "digits", "--device", device, "--repeats", "4", "--L", "1",
                     "2", "--batch-size", "5", "--json")
    assert code == 0 and len(json.loads(out.strip().splitlines()[-1])["rows"]) > 0


def test_a_device_this_machine_lacks_is_refused_by_name(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    Trainer.from_config(_config("aevb", "cpu", 1000), run_dir=tmp_path / "run").run()
    code, message = _cli("evaluate", str(tmp_path / "run"), "--device", "cuda")
    assert code == 2 and "device 'cuda' was asked for, but PyTorch sees no CUDA GPU here; use 'auto' or 'cpu'" in message


@pytest.mark.slow
@pytest.mark.parametrize(("algorithm", "device"), [*((name, "cpu") for name in ALGORITHMS),
                                                   pytest.param("aevb", "cuda", marks=pytest.mark.cuda)])
def test_the_compiled_step_gives_the_autograd_steps_gradient(tmp_path, algorithm, device):
    """The same minibatch and noise through `loss` eager and compiled (forward and backward by torch.compile)."""
    trainers = {step: Trainer.from_config(_config(algorithm, device, 10**5, step), run_dir=tmp_path / step)
                for step in ("autograd", "compiled")}
    gradients, values = {}, {}
    for step, trainer in trainers.items():
        batch = trainer.stream.next(trainer.generator)
        trainer.algorithm.prepare(batch, trainer.generator)
        noise = trainer.algorithm.draw_noise(batch, trainer.generator)
        values[step] = trainer.algorithm.gradient(batch, noise, trainer.params.grads, with_values=True)
        gradients[step] = trainer.params.flat.grad.clone()
        trainer.close()
    torch.testing.assert_close(gradients["compiled"], gradients["autograd"], rtol=1e-4, atol=1e-5)
    assert values["compiled"].lower_bound == pytest.approx(values["autograd"].lower_bound, rel=1e-5)
    assert gradients["autograd"].abs().sum() > 0


def test_a_run_continues_on_the_kind_of_device_it_began_on(tmp_path, monkeypatch):
    """"auto" on a machine with another device must not move a run: its random stream is its device's generator."""
    run_dir = tmp_path / "run"
    Trainer.from_config(_config("aevb", "cpu", 1000), run_dir=run_dir).run()
    config = json.loads((run_dir / "config.json").read_text())
    config["train_config"]["device"] = "auto"
    (run_dir / "config.json").write_text(json.dumps(config))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # "auto" would now mean cuda
    resumed = Trainer.resume_from(run_dir, samples=2000)
    assert resumed.device.type == "cpu" and resumed.run().samples_evaluated == 2000
    config = json.loads((run_dir / "config.json").read_text())
    config["device"] = "cuda:0"  # as if it had begun on a GPU
    (run_dir / "config.json").write_text(json.dumps(config))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(runs.RunError, match="began on cuda:0, and a run continues on the kind of device it began on"):
        Trainer.resume_from(run_dir, samples=3000)
    assert runs.read_run(run_dir).holder is None  # the refusal left the run as it was, unlocked


@pytest.mark.slow
def test_the_cli_trains_and_resumes_with_the_compiled_step(tmp_path):
    run_dir = str(tmp_path / "run")
    code, out = _cli("train", "--dataset", "digits", "--latent-dim", "2", "--samples", "2000", "--lr", "0.01", "--step",
                     "compiled", "--device", "cpu", "--run-dir", run_dir, "--json")
    assert code == 0
    first = json.loads(out.strip().splitlines()[-1])
    assert first["step"] == "compiled" and first["status"] == "finished" and np.isfinite(first["test_lower_bound"])
    code, out = _cli("train", "--resume", run_dir, "--samples", "4000", "--json")
    assert code == 0 and json.loads(out.strip().splitlines()[-1])["samples_evaluated"] == 4000
