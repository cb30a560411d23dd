"""When the training loop does what: pure functions of the budget (samples), M and N, as nanoGPT's `get_lr(it)`."""
from __future__ import annotations

import math

SCHEDULE_STAGES = 7  # the IWAE schedule's last stage i (Burda et al. 2016, Section 5)


def total_steps(samples: int, M: int) -> int:
    """Minibatches of M that evaluate at least `samples` training samples (the paper's x axis)."""
    return math.ceil(samples / M)


def log_every(steps: int) -> int:
    """Steps between logged minibatch bounds: often enough for a live chart, about 1000 rows for a run of up to
    20,000 steps, and never more than 20 steps apart."""
    return max(1, min(steps // 1000, 20))


def logs_bound(step: int, steps: int) -> bool:
    """Whether `step` (of `steps`) logs its minibatch bound: every step of the first 10 * log_every, which span the
    first decades of the paper's log x axis, then every log_every-th."""
    every = log_every(steps)
    return step < 10 * every or step % every == 0


def evaluation_steps(samples: int, M: int) -> frozenset[int]:
    """Steps after which the full bounds are evaluated: the first, then at 1, 2, 3 and 5 x 10^k training samples
    (a log-spaced series on the paper's x axis that lands on 10^5, 3·10^5, 10^6 and 10^7), and the last."""
    S = total_steps(samples, M)
    marks = (m * 10**k for k in range(13) for m in (1, 2, 3, 5))
    return frozenset({1, S} | {math.ceil(n / M) for n in marks if M <= n and math.ceil(n / M) < S})


def iwae_step_size(lr: float, samples: int, N: int) -> float:
    """The IWAE schedule's step size after `samples` training samples of N points (Burda et al. 2016, Section 5):
    3^i epochs at lr·10^(-i/7) for i = 0, ..., 7, then the last stage's."""
    epoch, stage, end = samples / N, 0, 1
    while epoch >= end and stage < SCHEDULE_STAGES:
        stage += 1
        end += 3 ** stage
    return lr * 10 ** (-stage / SCHEDULE_STAGES)
