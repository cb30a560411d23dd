"""Gradients derived by hand for the MLPs of Appendix C at any depth, with tanh (the paper's), ReLU or softplus
hidden units, whose derivatives follow from each layer's output; on the CPU in float32.

Autograd spends more time on bookkeeping than on arithmetic for networks this small, so these steps run the
forward pass once and write each parameter's gradient straight into its view of one flat buffer (by
parameter name) with the same GEMMs autograd would use, leaving a fused optimizer to update every parameter
in one kernel. The blocks (each network's forward and backward pass, the decoder's output gradient) serve
AEVB here and the wake-sleep step in `algorithms.py`. `tests/test_fast_step.py` checks every gradient
against autograd of `estimators.py` and of the wake-sleep objectives.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from .models import _LOG_2PI, MLP, VAE, BernoulliImage, DiagonalGaussian, dream

_ONEDNN = torch.backends.mkldnn.is_available()
Grads = dict[str, torch.Tensor]  # parameter name -> its view of the flat gradient buffer


# A product whose weight (or weight gradient) is at least this wide both ways goes through oneDNN, which is faster
# than MKL's GEMM there; below it the call and the copy cost more (measured: docs/PERFORMANCE.md, "oneDNN").
_ONEDNN_MIN_WIDTH = 64


def _onednn(x: torch.Tensor) -> bool:
    return _ONEDNN and x.is_cpu and x.dtype == torch.float32


def _linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, activation: str = "none") -> torch.Tensor:
    """x Wᵀ + b, then the activation ("none", "tanh", "relu" or "softplus").

    On the CPU in float32, a wide product (W at least _ONEDNN_MIN_WIDTH each way) or one with tanh or ReLU goes
    through oneDNN, which applies the activation inside the GEMM and whose GEMM takes about half MKL's time at these
    shapes; aten's own tanh costs about six times its sigmoid in this torch build. Narrow products (a few latent
    dimensions), other devices and dtypes (the float64 tests) take addmm. docs/PERFORMANCE.md has the timings.
    """
    fused = activation if activation in ("none", "tanh", "relu") else "none"
    if _onednn(x) and (fused != "none" or min(weight.shape) >= _ONEDNN_MIN_WIDTH):
        out = torch.ops.mkldnn._linear_pointwise(x, weight, bias, fused, [], "")
    else:
        out = torch.mm(x, weight.t()) if bias is None else torch.addmm(bias, x, weight.t())
        out = {"tanh": torch.tanh_, "relu": torch.relu_}.get(fused, lambda t: t)(out)
    return F.softplus(out) if activation == "softplus" else out


def _weight_gradient(d: torch.Tensor, inputs: torch.Tensor, out: torch.Tensor) -> None:
    """out = dᵀ inputs, ∂/∂W of a layer y = W a + b given d = ∂/∂y (N, out) and its inputs a (N, in)."""
    if _onednn(d) and min(out.shape) >= _ONEDNN_MIN_WIDTH:
        out.copy_(torch.ops.mkldnn._linear_pointwise(d.t(), inputs.t(), None, "none", [], ""))
    else:
        torch.mm(d.t(), inputs, out=out)


def _activation_backward(grad: torch.Tensor, out: torch.Tensor, activation: str) -> None:
    """grad *= the activation's derivative, in place, from the layer's output y: tanh' = 1 - y², ReLU' = [y > 0],
    softplus' = sigmoid(u) = 1 - e^(-y)."""
    if activation == "tanh":
        torch.ops.aten.tanh_backward.grad_input(grad, out, grad_input=grad)
    elif activation == "relu":
        torch.ops.aten.threshold_backward.grad_input(grad, out, 0.0, grad_input=grad)
    else:
        grad.mul_(-torch.expm1(-out))


class FlatParameters:
    """Rebinds every parameter of `module` as a view of one tensor `flat`, whose `.grad` is one buffer.

    The optimizer is given `[flat]`; the module's own parameters see each update because they share its
    storage. `grads` maps each parameter's name to its view of the gradient buffer."""

    def __init__(self, module: nn.Module):
        named = list(module.named_parameters())
        self.flat = nn.Parameter(torch.cat([p.detach().reshape(-1) for _, p in named]))
        self.flat.grad = torch.zeros_like(self.flat)
        self.grads: Grads = {}
        offset = 0
        for name, p in named:
            owner, _, leaf = name.rpartition(".")
            n = p.numel()
            module.get_submodule(owner)._parameters[leaf] = nn.Parameter(self.flat.detach()[offset:offset + n].view_as(p))
            self.grads[name] = self.flat.grad[offset:offset + n].view_as(p)
            offset += n


@dataclass
class StepValues:
    """Per-datapoint means over the minibatch of the estimator and its two parts."""
    lower_bound: float
    reconstruction: float  # (1/L) Σ_l log p_θ(x|z^(l))
    kl: float  # analytic KL for B; the Monte Carlo estimate of E_q[log q - log p(z)] for A


def encoder_forward(encoder: MLP, x: torch.Tensor, activation: str = "tanh") -> tuple[list[torch.Tensor], torch.Tensor]:
    """The hidden layers' outputs [x, h1, ...] (M, ·) and [μ, log σ²] = W h + b (M, 2J) (eq. 9; h = tanh(W3 x + b3)
    in the paper)."""
    hs = [x]
    for layer in encoder.hidden:
        hs.append(_linear(hs[-1], layer.weight, layer.bias, activation))  # (M, H)
    z_params = _linear(hs[-1], encoder.out.weight, encoder.out.bias)  # (M, 2J)
    return hs, z_params


def decoder_forward(decoder: MLP, z: torch.Tensor, activation: str = "tanh") -> tuple[list[torch.Tensor], torch.Tensor]:
    """The hidden layers' outputs [z, g1, ...] (N, ·) (g = tanh(W1 z + b1) in the paper) and the output layer (N, D or
    2D): Bernoulli logits, or [mean logits, log σ²]."""
    gs = [z]
    for layer in decoder.hidden:
        gs.append(_linear(gs[-1], layer.weight, layer.bias, activation))  # (N, H)
    return gs, _linear(gs[-1], decoder.out.weight, decoder.out.bias)


def output_gradient(likelihood: str, out: torch.Tensor, x: torch.Tensor, L: int, weight: float
                    ) -> tuple[torch.Tensor, Callable[[], float]]:
    """∂(-log p_θ(x|z)) / ∂(decoder output), times `weight`, for the L·M rows of `out` whose data x (M, D) repeats
    over the L samples (broadcast: no (L·M, D) copy); and a function that sums log p_θ(x|z) over all rows."""
    M, D = x.shape
    if likelihood == "bernoulli":
        d_out = torch.sigmoid(out).view(L, M, D).sub_(x).mul_(weight).view(L * M, D)  # sigmoid(logits) - x
        return d_out, lambda: -F.binary_cross_entropy_with_logits(out.view(L, M, D), x.expand(L, M, D),
                                                                   reduction="sum").item()
    mean_logits, x_logvar = out[:, :D], out[:, D:]
    x_mean = torch.sigmoid(mean_logits)
    residual = (x_mean.view(L, M, D) - x).view(L * M, D)  # μ - x
    scaled = torch.exp(-x_logvar).mul_(residual)  # (μ - x)/σ²
    d_out = torch.empty_like(out)
    torch.ops.aten.sigmoid_backward.grad_input(scaled, x_mean, grad_input=d_out[:, :D])  # through μ = sigmoid(a)
    torch.addcmul(scaled.new_tensor(0.5), residual, scaled, value=-0.5, out=d_out[:, D:])  # ½(1 - (x-μ)²/σ²)
    d_out.mul_(weight)
    return d_out, lambda: (-0.5 * (x_logvar.sum() + (scaled * residual).sum()).item() - 0.5 * L * M * D * _LOG_2PI)


def _hidden_backward(mlp: MLP, d: torch.Tensor, outputs: list[torch.Tensor], grads: Grads, name: str,
                     activation: str, with_input: bool) -> torch.Tensor | None:
    """Through the hidden layers, last to first: d is ∂/∂(the last hidden output); writes each layer's gradients and,
    `with_input`, returns ∂/∂(the network's input)."""
    for i in range(len(mlp.hidden) - 1, -1, -1):
        _activation_backward(d, outputs[i + 1], activation)
        # Each bias gradient is summed as soon as its operand is written: after a GEMM the sum took up to 3x longer.
        torch.sum(d, 0, out=grads[f"{name}.hidden.{i}.bias"])
        _weight_gradient(d, outputs[i], grads[f"{name}.hidden.{i}.weight"])
        if i > 0 or with_input:
            d = _linear(d, mlp.hidden[i].weight.t(), None)
    return d if with_input else None


def decoder_backward(decoder: MLP, d_out: torch.Tensor, gs: list[torch.Tensor], grads: Grads, with_z: bool = True,
                     activation: str = "tanh") -> torch.Tensor | None:
    """Writes the decoder's gradients given ∂/∂(output) and, `with_z`, returns ∂/∂z (N, J)."""
    torch.sum(d_out, 0, out=grads["decoder.out.bias"])
    _weight_gradient(d_out, gs[-1], grads["decoder.out.weight"])
    d = _linear(d_out, decoder.out.weight.t(), None)  # (N, H)
    return _hidden_backward(decoder, d, gs, grads, "decoder", activation, with_z)


def encoder_backward(encoder: MLP, d_z_params: torch.Tensor, hs: list[torch.Tensor], grads: Grads,
                     activation: str = "tanh") -> None:
    """Writes the encoder's gradients given ∂/∂[μ, log σ²] (M, 2J)."""
    torch.sum(d_z_params, 0, out=grads["encoder.out.bias"])
    _weight_gradient(d_z_params, hs[-1], grads["encoder.out.weight"])
    d = _linear(d_z_params, encoder.out.weight.t(), None)  # (M, H)
    _hidden_backward(encoder, d, hs, grads, "encoder", activation, with_input=False)


@torch.no_grad()
def lower_bound_gradient(model: VAE, x: torch.Tensor, eps: torch.Tensor, estimator: str, grads: Grads,
                         with_values: bool = False) -> StepValues | None:
    """Writes ∇ of -(1/M) Σ_i L̃(θ, φ; x_i) (eq. 8 divided by N, eq. 6 or 7) into `grads`.

    x: (M, D); eps: (L, M, J). With `with_values`, also returns the estimate itself (an extra pass,
    so the trainer asks for it only on logging steps).
    """
    L, M, J = eps.shape
    act = model.config.activation
    per_sample = 1.0 / (L * M)  # each of the L·M terms carries weight 1/(L M)
    hs, z_params = encoder_forward(model.encoder, x, act)
    z_mean, z_logvar = z_params[:, :J], z_params[:, J:]
    z_std = torch.exp(0.5 * z_logvar)  # (M, J)
    z = torch.addcmul(z_mean, z_std, eps).view(L * M, J)  # eq. 4: z = μ + σ ⊙ ε, (L·M, J)
    gs, out = decoder_forward(model.decoder, z, act)
    d_out, log_px_sum = output_gradient(model.config.likelihood, out, x, L, per_sample)
    d_z = decoder_backward(model.decoder, d_out, gs, grads, activation=act)
    assert d_z is not None  # with_z
    d_z = d_z.view(L, M, J)  # (L, M, J)
    z = z.view(L, M, J)
    if estimator == "A":
        d_z.add_(z, alpha=per_sample)  # eq. 6 term -log p(z) = ½‖z‖² + c

    # Encoder head: through z = μ + σ ε, then the KL (eq. 7) or the entropy term (eq. 6).
    d_z_params = torch.empty_like(z_params)  # (M, 2J)
    d_mean, d_logvar = d_z_params[:, :J], d_z_params[:, J:]
    torch.sum(d_z, 0, out=d_mean)
    torch.sum(d_z * eps, 0, out=d_logvar)
    d_logvar.mul_(z_std).mul_(0.5)  # ∂z/∂log σ² = ½ σ ε
    if estimator == "B":
        d_mean.add_(z_mean, alpha=1.0 / M)  # Appendix B: ∂KL/∂μ = μ
        d_logvar.add_(z_std * z_std - 1, alpha=0.5 / M)  # Appendix B: ∂KL/∂log σ² = ½(σ² - 1)
    else:
        d_logvar.sub_(0.5 / M)  # eq. 6: log q(z|x) = -½‖ε‖² - ½ Σ log σ² + c along the path
    encoder_backward(model.encoder, d_z_params, hs, grads, act)

    if not with_values:
        return None
    reconstruction = log_px_sum() * per_sample
    if estimator == "B":
        kl = -0.5 * (1 + z_logvar - z_mean.square() - z_std.square()).sum().item() / M  # Appendix B
    else:  # (1/L) Σ_l [log q(z|x) - log p(z)] = ½‖z‖² - ½‖ε‖² - ½ Σ log σ², averaged
        kl = 0.5 * ((z.square() - eps.square()).sum().item() * per_sample - z_logvar.sum().item() / M)
    return StepValues(reconstruction - kl, reconstruction, kl)


def decoder_distribution(likelihood: str, out: torch.Tensor) -> BernoulliImage | DiagonalGaussian:
    """p_θ(x|z) from the decoder's output layer (as models.py's decoders build it)."""
    if likelihood == "bernoulli":
        return BernoulliImage(out)
    mean_logits, x_logvar = out.chunk(2, dim=-1)
    return DiagonalGaussian(torch.sigmoid(mean_logits), x_logvar)


@torch.no_grad()
def wake_sleep_gradient(model: VAE, x: torch.Tensor, eps: torch.Tensor, z_dream: torch.Tensor, x_noise: torch.Tensor,
                        grads: Grads, with_values: bool = False) -> StepValues | None:
    """The wake-sleep algorithm's gradients (Hinton et al. 1995, as the paper ran it for Fig. 2), derived by hand.

    Wake, into θ: -(1/(L M)) Σ log p_θ(x|z) at z = μ + σ ⊙ ε ~ q_φ(z|x), no gradient through z (log p(z) has none
    in θ). Sleep, into φ: -(1/M) Σ log q_φ(z_d|x_d) on M dreams, z_d ~ N(0, I) and x_d ~ p_θ(x|z_d) (`models.dream`).
    x: (M, D); eps: (L, M, J); z_dream: (M, J); x_noise: (M, D). The values are estimator B's on the data minibatch.
    """
    L, M, J = eps.shape
    likelihood, act = model.config.likelihood, model.config.activation
    # Wake phase: the decoder learns from z ~ q(z|x).
    hs, z_params = encoder_forward(model.encoder, x, act)
    z_mean, z_logvar = z_params[:, :J], z_params[:, J:]
    z_std = torch.exp(0.5 * z_logvar)
    z = torch.addcmul(z_mean, z_std, eps).view(L * M, J)  # (L·M, J), a sample, not a path
    # One decoder pass for the wake samples and the dreams' z: one GEMM per layer instead of two.
    gs_both, out_both = decoder_forward(model.decoder, torch.cat([z, z_dream]), act)  # (L·M + M, ...)
    gs, out, out_dream = [g[:L * M] for g in gs_both], out_both[:L * M], out_both[L * M:]
    d_out, log_px_sum = output_gradient(likelihood, out, x, L, 1.0 / (L * M))
    decoder_backward(model.decoder, d_out, gs, grads, with_z=False, activation=act)

    # Sleep phase: the encoder learns to recognise the decoder's dreams.
    x_dream = dream(decoder_distribution(likelihood, out_dream), x_noise)  # (M, D)
    hs_dream, params_dream = encoder_forward(model.encoder, x_dream, act)
    mean_dream, logvar_dream = params_dream[:, :J], params_dream[:, J:]
    # -log q(z|x) = ½ Σ_j (log 2π + log σ_j² + (z_j - μ_j)²/σ_j²) (eq. 9): its derivatives in μ and log σ², over M
    scaled = (z_dream - mean_dream).mul_(torch.exp(-logvar_dream))  # (z - μ)/σ², (M, J)
    d_params = torch.empty_like(params_dream)
    torch.mul(scaled, -1.0 / M, out=d_params[:, :J])
    torch.addcmul(scaled.new_tensor(0.5 / M), scaled, z_dream - mean_dream, value=-0.5 / M, out=d_params[:, J:])
    encoder_backward(model.encoder, d_params, hs_dream, grads, act)

    if not with_values:
        return None
    reconstruction = log_px_sum() / (L * M)
    kl = -0.5 * (1 + z_logvar - z_mean.square() - z_std.square()).sum().item() / M  # Appendix B
    return StepValues(reconstruction - kl, reconstruction, kl)
