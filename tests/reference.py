"""Independent float64 NumPy implementations of the formulas the library promises.

These follow the PyTorch documentation line by line (torch.optim.SGD, Adam, AdamW,
torch.nn.utils.clip_grad_norm_) and share no code with the package.
"""

from __future__ import annotations

import math

import numpy as np

F32_EPS = float(np.finfo(np.float32).eps)


def sgd_step(p, g, buf, *, lr, momentum=0.0, weight_decay=0.0, nesterov=False):
    """One PyTorch SGD step in float64. ``buf`` is None before the first momentum step."""
    p = p.astype(np.float64)
    g = g.astype(np.float64)
    if weight_decay != 0.0:
        g = g + weight_decay * p
    if momentum != 0.0:
        buf = g.copy() if buf is None else momentum * buf.astype(np.float64) + g
        g = g + momentum * buf if nesterov else buf
    return p - lr * g, buf


def adam_step(
    p, g, m, v, t, *, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decoupled=False
):
    """One PyTorch Adam (decoupled=False) or AdamW (decoupled=True) step in float64."""
    b1, b2 = betas
    p = p.astype(np.float64)
    g = g.astype(np.float64)
    m = m.astype(np.float64)
    v = v.astype(np.float64)
    if decoupled:
        p = p * (1.0 - lr * weight_decay)
    elif weight_decay != 0.0:
        g = g + weight_decay * p
    m = b1 * m + (1.0 - b1) * g
    v = b2 * v + (1.0 - b2) * g * g
    bc1 = 1.0 - b1**t
    bc2 = 1.0 - b2**t
    p = p - lr / bc1 * m / (np.sqrt(v) / math.sqrt(bc2) + eps)
    return p, m, v


def global_norm(arrays):
    return math.sqrt(sum(float(np.sum(a.astype(np.float64) ** 2)) for a in arrays))


def lr_schedule(step, *, initial_lr, warmup_steps, decay_steps, min_lr):
    if step < warmup_steps:
        return initial_lr * (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return min_lr + (initial_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def assert_f32_close(actual, expected, *, scale=0.0, ulps=8):
    """``actual`` (float32) equals the float64 ``expected`` to float32 round-off.

    Allows ``ulps`` float32 epsilons relative to ``|expected| + scale``, where ``scale`` is the
    size of the quantities the result was computed from (so cancellation is allowed for).
    """
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    tol = ulps * F32_EPS * (np.abs(expected) + scale) + 1e-30
    err = np.abs(actual - expected)
    bad = ~(err <= tol)
    if np.any(bad):
        i = np.flatnonzero(bad.ravel())[0]
        raise AssertionError(
            f"{int(bad.sum())} of {bad.size} elements differ beyond float32 round-off; first at "
            f"{i}: actual {actual.ravel()[i]!r}, expected {expected.ravel()[i]!r}, "
            f"tolerance {tol.ravel()[i]!r}"
        )
