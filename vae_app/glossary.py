"""The terms a newcomer meets in the app, each said once: the Home page lists them, and the other pages' help
tooltips take their text from here."""

TERMS = {
    "ELBO (lower bound)": "The evidence lower bound L(θ, φ; x) = E_q[log p_θ(x|z)] - KL(q_φ(z|x) || p(z)) (eq. 3): a "
                          "lower bound on log p_θ(x) that training maximises. Nats per datapoint; higher is better.",
    "Reconstruction": "E_q[log p_θ(x|z)]: how well the decoder explains x from a z the encoder proposes.",
    "KL": "KL(q_φ(z|x) || p(z)): how far the encoder's posterior is from the prior N(0, I); the price of using z.",
    "J": "The number of latent dimensions, the size of z.",
    "L": "Samples of z per datapoint in each estimate (the paper trains with L = 1).",
    "M": "Datapoints per minibatch (the paper: 100).",
    "Samples evaluated": "The paper's x axis: minibatches x M, the training datapoints the algorithm has processed.",
    "Estimator A": "SGVB estimator A (eq. 6): the average over L samples z = μ + σ ⊙ ε of log p(x, z) - log q(z|x).",
    "Estimator B": "SGVB estimator B (eq. 7): the KL term in closed form (Appendix B) plus the average over L samples "
                   "of log p(x|z); usually less variance than A.",
    "Reparameterisation": "z = μ + σ ⊙ ε with ε ~ N(0, I) (eq. 4): the sample becomes a differentiable function of the "
                          "encoder's outputs, so the gradient flows through it.",
    "Score function": "The REINFORCE gradient E_q[f(z) ∇_φ log q(z|x)]: unbiased without reparameterising, but with "
                      "very high variance (the paper's motivation).",
    "Baseline": "A value subtracted from f in the score function (here f at z = μ) to lower its variance without "
                "biasing it.",
    "STL": "'Sticking the landing' (Roeder et al. 2017): the pathwise gradient of estimator A without the score term "
           "∇_φ log q, which lowers the variance near the optimum.",
    "IW bound": "The importance-weighted bound (Burda et al. 2015): log of the average of K weights p(x, z_k)/q(z_k|x); "
                "equals the ELBO at K = 1 and rises toward log p(x) as K grows.",
    "IWAE": "The importance-weighted autoencoder (Burda, Grosse & Salakhutdinov 2016): trains on the IW bound L_K "
            "with K samples per datapoint instead of the ELBO (K = 1 is AEVB with estimator A); Train offers it as "
            "algorithm iwae with K. A tighter bound gives the decoder a cleaner gradient (SNR like √K) but the "
            "encoder a noisier one (like 1/√K: Rainforth et al. 2018).",
    "DReG": "The doubly reparameterised gradient (Tucker, Lawson, Gu & Maddison 2019): an unbiased estimator of the "
            "encoder's gradient of the IW bound without the score term, whose signal-to-noise ratio rises with K "
            "instead of falling; `--iw-gradient dreg`.",
    "Marginal likelihood": "log p_θ(x) itself, estimated by Appendix D (HMC samples of the posterior and a density "
                           "fitted to them) for small J; Figure 3 compares algorithms by it.",
    "Wake-sleep": "The baseline of Figure 2 (Hinton et al. 1995): the decoder learns from z ~ q(z|x) (wake), the "
                  "encoder learns from the decoder's own dreams (sleep); it optimises no single bound.",
    "Monte Carlo EM": "The baseline of Figure 3 (Appendix E): posterior samples by HMC (E-step), then steps of the "
                      "decoder's parameters on them (M-step); no encoder.",
}

DIAGRAM = """digraph vae {
  rankdir=LR; bgcolor="transparent"; node [shape=box, style="rounded", fontname="sans-serif", fontsize=11,
  color="INK", fontcolor="INK"]; edge [fontname="sans-serif", fontsize=10, color="INK", fontcolor="INK"];
  x [label="x\\n(an image)"]; enc [label="encoder q_φ(z|x)\\nMLP"]; musig [label="μ, σ"];
  eps [label="ε ~ N(0, I)", shape=ellipse]; z [label="z = μ + σ ⊙ ε"]; dec [label="decoder p_θ(x|z)\\nMLP"];
  px [label="p(x|z)\\n(the reconstruction)"]; prior [label="prior p(z) = N(0, I)", shape=ellipse];
  x -> enc -> musig -> z; eps -> z; z -> dec -> px;
  musig -> prior [label="KL term", style=dashed, dir=none]; px -> x [label="reconstruction term", style=dashed, dir=none];
}"""


def diagram(dark: bool) -> str:
    """The model's diagram, in ink that reads on the page's light or dark background."""
    return DIAGRAM.replace("INK", "#e6e6ea" if dark else "#31333f")


def help_for(*terms: str) -> str:
    """The glossary's text for `terms`, as one tooltip."""
    return "\n\n".join(f"**{t}**: {TERMS[t]}" for t in terms)
