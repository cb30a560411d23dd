"""The training step's gradient of the minibatch estimator (eq. 8 with eq. 6 or 7), derived by hand.

Autograd spends more time on bookkeeping than on arithmetic for networks this small, so the step
runs the forward pass once, writes each parameter's gradient straight into one flat buffer with
the same eleven GEMMs autograd would use, and lets a fused optimizer update every parameter in one
kernel. `tests/test_fast_step.py` checks every gradient here against autograd of `estimators.py`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from .models import _LOG_2PI, VAE

_ONEDNN = torch.backends.mkldnn.is_available()


def _linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, activation: str = "none") -> torch.Tensor:
    """x Wᵀ + b, then tanh when `activation` is "tanh".

    On the CPU in float32 this goes through oneDNN, which applies the tanh inside the GEMM and whose GEMM
    is faster than MKL's at MNIST's wide shapes; aten's own tanh costs about six times its sigmoid in this torch
    build. Other devices and dtypes (the float64 tests) take addmm. docs/PERFORMANCE.md has the timings.
    """
    if _ONEDNN and x.is_cpu and x.dtype == torch.float32:
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, activation, [], "")
    out = torch.mm(x, weight.t()) if bias is None else torch.addmm(bias, x, weight.t())
    return out.tanh_() if activation == "tanh" else out


class FlatParameters:
    """Rebinds every parameter of `model` as a view of one tensor `flat`, whose `.grad` is one buffer.

    The optimizer is given `[flat]`; the model's own parameters see each update because they share
    its storage. `grads` lists the gradient views in `model.parameters()` order.
    """

    def __init__(self, model: nn.Module):
        params = list(model.parameters())
        self.flat = nn.Parameter(torch.cat([p.detach().reshape(-1) for p in params]))
        self.flat.grad = torch.zeros_like(self.flat)
        self.grads: list[torch.Tensor] = []
        offset = 0
        for module in model.modules():
            for name, p in list(module._parameters.items()):
                n = p.numel()
                module._parameters[name] = nn.Parameter(self.flat.detach()[offset:offset + n].view_as(p))
                self.grads.append(self.flat.grad[offset:offset + n].view_as(p))
                offset += n


@dataclass
class StepValues:
    """Per-datapoint means over the minibatch of the estimator and its two parts."""
    lower_bound: float
    reconstruction: float  # (1/L) Σ_l log p_θ(x|z^(l))
    kl: float  # analytic KL for B; the Monte Carlo estimate of E_q[log q - log p(z)] for A


@torch.no_grad()
def lower_bound_gradient(model: VAE, x: torch.Tensor, eps: torch.Tensor, estimator: str,
                         grads: list[torch.Tensor], with_values: bool = False) -> StepValues | None:
    """Writes ∇ of -(1/M) Σ_i L̃(θ, φ; x_i) (eq. 8 divided by N, eq. 6 or 7) into `grads`.

    x: (M, D); eps: (L, M, J). With `with_values`, also returns the estimate itself (an extra pass,
    so the trainer asks for it only on logging steps).
    """
    encoder, decoder = model.encoder, model.decoder
    L, M, J = eps.shape
    D = x.shape[1]
    per_sample = 1.0 / (L * M)  # each of the L·M terms carries weight 1/(L M)
    # Forward pass.
    h = _linear(x, encoder.to_hidden.weight, encoder.to_hidden.bias, "tanh")  # (M, H)
    z_params = torch.addmm(encoder.to_z_params.bias, h, encoder.to_z_params.weight.t())  # (M, 2J); too small for oneDNN
    z_mean, z_logvar = z_params[:, :J], z_params[:, J:]
    z_std = torch.exp(0.5 * z_logvar)  # (M, J)
    z = torch.addcmul(z_mean, z_std, eps).view(L * M, J)  # eq. 4: z = μ + σ ⊙ ε, (L·M, J)
    g = _linear(z, decoder.to_hidden.weight, decoder.to_hidden.bias, "tanh")  # (L·M, H)
    out = _linear(g, decoder.to_x_params.weight, decoder.to_x_params.bias)  # (L·M, D or 2D)

    # ∂(-log p_θ(x|z)) / ∂(decoder output), scaled by 1/(L M). x broadcasts over the L samples: no (L·M, D) copy.
    if model.config.likelihood == "bernoulli":
        d_out = torch.sigmoid(out).view(L, M, D).sub_(x).mul_(per_sample).view(L * M, D)  # sigmoid(logits) - x, (L·M, D)
    else:
        mean_logits, x_logvar = out[:, :D], out[:, D:]
        x_mean = torch.sigmoid(mean_logits)
        residual = (x_mean.view(L, M, D) - x).view(L * M, D)  # μ - x
        scaled = torch.exp(-x_logvar).mul_(residual)  # (μ - x)/σ²
        d_out = torch.empty_like(out)
        torch.ops.aten.sigmoid_backward.grad_input(scaled, x_mean, grad_input=d_out[:, :D])  # through μ = sigmoid(a)
        torch.addcmul(scaled.new_tensor(0.5), residual, scaled, value=-0.5, out=d_out[:, D:])  # ½(1 - (x-μ)²/σ²)
        d_out.mul_(per_sample)
    # Each bias gradient is summed as soon as its operand is written: after a GEMM the sum took up to 3x longer.
    torch.sum(d_out, 0, out=grads[7])

    # Decoder, output layer then hidden layer.
    torch.mm(d_out.t(), g, out=grads[6])
    d_g = _linear(d_out, decoder.to_x_params.weight.t(), None)  # (L·M, H)
    torch.ops.aten.tanh_backward.grad_input(d_g, g, grad_input=d_g)  # tanh' = 1 - tanh²
    torch.sum(d_g, 0, out=grads[5])
    torch.mm(d_g.t(), z, out=grads[4])
    d_z = torch.mm(d_g, decoder.to_hidden.weight).view(L, M, J)  # (L, M, J)
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
    torch.sum(d_z_params, 0, out=grads[3])
    torch.mm(d_z_params.t(), h, out=grads[2])
    d_h = torch.mm(d_z_params, encoder.to_z_params.weight)  # (M, H)
    torch.ops.aten.tanh_backward.grad_input(d_h, h, grad_input=d_h)  # tanh' = 1 - tanh²
    torch.sum(d_h, 0, out=grads[1])
    torch.mm(d_h.t(), x, out=grads[0])

    if not with_values:
        return None
    if model.config.likelihood == "bernoulli":
        log_px = -F.binary_cross_entropy_with_logits(out.view(L, M, D), x.expand(L, M, D), reduction="sum")
        reconstruction = log_px.item() * per_sample
    else:
        reconstruction = -0.5 * (x_logvar.sum() + (scaled * residual).sum()).item() * per_sample - 0.5 * D * _LOG_2PI
    if estimator == "B":
        kl = -0.5 * (1 + z_logvar - z_mean.square() - z_std.square()).sum().item() / M  # Appendix B
    else:  # (1/L) Σ_l [log q(z|x) - log p(z)] = ½‖z‖² - ½‖ε‖² - ½ Σ log σ², averaged
        kl = 0.5 * ((z.square() - eps.square()).sum().item() * per_sample - z_logvar.sum().item() / M)
    return StepValues(reconstruction - kl, reconstruction, kl)
