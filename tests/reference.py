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


# -- losses ---------------------------------------------------------------------------------------
# Definitions from api.md "Losses", written directly in float64; they share no code with the
# package. Gradients are checked against central finite differences of these functions.


def _unit(x):
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-8)


def _logsumexp(z, axis=-1):
    m = np.max(z, axis=axis, keepdims=True)
    return (m + np.log(np.sum(np.exp(z - m), axis=axis, keepdims=True))).squeeze(axis)


def info_nce(anchors, positives, negatives, temperature):
    """Per-row InfoNCE losses (B,) in float64. ``negatives``: (B, N, D), (N, D) or None."""
    t = max(temperature, 0.01)
    a, p = _unit(anchors), _unit(positives)
    if negatives is None:
        logits = a @ p.T / t
        return _logsumexp(logits) - np.diag(logits)
    n = _unit(negatives)
    neg = np.einsum("bd,bnd->bn", a, n) if n.ndim == 3 else a @ n.T
    pos = np.sum(a * p, axis=1)
    logits = np.concatenate([pos[:, None], neg], axis=1) / t
    return _logsumexp(logits) - logits[:, 0]


def local_contrastive_terms(anchors, positives, negatives, margin):
    """Every term (B, N) of the margin loss in float64. ``negatives``: (B, N, D) or (N, D)."""
    a = np.asarray(anchors, dtype=np.float64)
    p = np.asarray(positives, dtype=np.float64)
    n = np.asarray(negatives, dtype=np.float64)
    d_pos = np.linalg.norm(a - p, axis=1)
    if n.ndim == 3:
        d_neg = np.linalg.norm(a[:, None, :] - n, axis=2)
    else:
        d_neg = np.linalg.norm(a[:, None, :] - n[None, :, :], axis=2)
    return np.maximum(0.0, d_pos[:, None] - d_neg + margin)


def laplacian_dense(x, w):
    """``tr(X^T L X)`` with ``L = diag(W 1) - W``, in float64, and ``2 L X``."""
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    lap = np.diag(w.sum(axis=1)) - w
    lx = lap @ x
    return float(np.sum(x * lx)), 2.0 * lx


def variance_penalty(x, weight):
    """The crate's ``compute_batch``: weight * variance over dimensions of column variances."""
    x = np.asarray(x, dtype=np.float64)
    var = x.var(axis=0)
    return weight * float(np.mean((var - var.mean()) ** 2))


def numeric_grad(f, x, h=1e-6):
    """Central finite differences of the float64 scalar function ``f`` at ``x``."""
    x = np.array(x, dtype=np.float64)
    g = np.zeros_like(x)
    flat, gflat = x.ravel(), g.ravel()
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        up = f(x)
        flat[i] = old - h
        down = f(x)
        flat[i] = old
        gflat[i] = (up - down) / (2 * h)
    return g


# -- mining ---------------------------------------------------------------------------------------


def cosine_matrix(anchors, candidates):
    """Cosine similarities (B, N) in float64 with the 1e-8 norm clamp."""
    return _unit(anchors) @ _unit(candidates).T


def ranked(scores, k, eligible=None):
    """Indices of the k largest scores per row (ties: lower index first), -1 padded, skipping
    ineligible or NaN entries."""
    scores = np.asarray(scores, dtype=np.float64)
    out = np.full((scores.shape[0], k), -1, dtype=np.int64)
    for i, row in enumerate(scores):
        ok = ~np.isnan(row)
        if eligible is not None:
            ok &= eligible[i]
        idx = np.flatnonzero(ok)
        order = idx[np.lexsort((idx, -row[idx]))][:k]
        out[i, : len(order)] = order
    return out


def semi_hard(anchors, positives, candidates, k, margin, eligible=None):
    """FaceNet semi-hard picks in float64: the window sorted nearest first, then the hardest
    (cosine) not already chosen."""
    a = np.asarray(anchors, np.float64)
    p = np.asarray(positives, np.float64)
    c = np.asarray(candidates, np.float64)
    d_ap = np.linalg.norm(a - p, axis=1)
    d_an = np.linalg.norm(a[:, None, :] - c[None, :, :], axis=2)
    window = (d_an > d_ap[:, None]) & (d_an < d_ap[:, None] + margin)
    if eligible is not None:
        window &= eligible
    first = ranked(np.where(window, -d_an, np.nan), k)
    hardest = ranked(cosine_matrix(a, c), c.shape[0], eligible)
    out = np.full((a.shape[0], k), -1, dtype=np.int64)
    for i in range(a.shape[0]):
        chosen = [j for j in first[i] if j >= 0]
        for j in hardest[i]:
            if len(chosen) >= k or j < 0:
                break
            if j not in chosen:
                chosen.append(j)
        out[i, : len(chosen)] = chosen
    return out, window, d_an, d_ap


def wu_weights(anchor, candidates, cutoff=0.5, nonzero_loss_cutoff=1.4):
    """Wu et al.'s sampling weights 1/q(d) for one anchor (unnormalised), float64."""
    a = _unit(anchor)
    c = _unit(candidates)
    dim = c.shape[1]
    d = np.sqrt(np.maximum(2.0 - 2.0 * (c @ a), 0.0))
    dc = np.maximum(d, cutoff)
    log_w = (2.0 - dim) * np.log(dc) - ((dim - 3) / 2) * np.log(1.0 - 0.25 * dc**2)
    w = np.exp(log_w - log_w[d < nonzero_loss_cutoff].max())
    return np.where(d < nonzero_loss_cutoff, w, 0.0)


def info_nce_pool_gradient(a, p, neg, t):
    """d(sum of losses)/d pool in float64, written out (softmax - target) for a large pool; the
    finite-difference tests above check the same formula on small inputs."""
    a64, p64 = a.astype(np.float64), p.astype(np.float64)
    pool = p64 if neg is None else neg.astype(np.float64)
    na = np.maximum(np.linalg.norm(a64, axis=1, keepdims=True), 1e-8)
    npool = np.maximum(np.linalg.norm(pool, axis=1, keepdims=True), 1e-8)
    ah, ph = a64 / na, pool / npool
    grad_hat = np.zeros_like(pool)
    for s in range(0, a.shape[0], 2048):
        blk = slice(s, s + 2048)
        logits = ah[blk] @ ph.T / t
        if neg is None:
            lse = _logsumexp(logits)
            c = np.exp(logits - lse[:, None])
            c[np.arange(c.shape[0]), np.arange(s, s + c.shape[0])] -= 1.0
        else:
            pu = p64[blk] / np.maximum(np.linalg.norm(p64[blk], axis=1, keepdims=True), 1e-8)
            pos = np.sum(ah[blk] * pu, axis=1) / t
            lse = _logsumexp(np.concatenate([pos[:, None], logits], axis=1))
            c = np.exp(logits - lse[:, None])
        grad_hat += c.T @ ah[blk] / t
    along = np.sum(grad_hat * ph, axis=1, keepdims=True)
    return (grad_hat - along * ph) / npool


def exact_cosine_matrix(queries, corpus):
    """The corpus miner's exact score, written out from its contract (api.md, "Corpus mining"):
    rows as float32 widened to float64; each dot product summed in sixteen lanes (element i in
    lane i mod 16, each lane in order), the lanes then added pairwise (lane j += lane j + w for
    w = 8, 4, 2, 1); norms clamped at float32 1e-8; ``(q . c / |q|) / |c|``."""
    q = np.asarray(np.asarray(queries, np.float32), np.float64)
    c = np.asarray(np.asarray(corpus, np.float32), np.float64)
    d = q.shape[1]
    width = -(-d // 16) * 16

    def lanes(x):  # (n, D) -> (n, D/16, 16), zero padded (adding +0.0 changes no lane sum)
        out = np.zeros((x.shape[0], width), np.float64)
        out[:, :d] = x
        return out.reshape(x.shape[0], width // 16, 16)

    def lane_sums(products):  # (..., steps, 16): each lane summed in order
        with np.errstate(invalid="ignore", over="ignore"):
            acc = np.cumsum(products, axis=-2)[..., -1, :]
            for w in (8, 4, 2, 1):
                acc = acc[..., :w] + acc[..., w : 2 * w]
        return acc[..., 0]

    eps = float(np.float32(1e-8))
    ql, cl = lanes(q), lanes(c)
    with np.errstate(invalid="ignore", over="ignore"):
        nq = np.maximum(np.sqrt(lane_sums(ql * ql)), eps)
        nc = np.maximum(np.sqrt(lane_sums(cl * cl)), eps)
        dots = (
            np.stack([lane_sums(row[None] * cl) for row in ql])
            if len(ql)
            else np.zeros((0, len(c)))
        )
        return dots / nq[:, None] / nc[None, :]


def corpus_negatives(queries, corpus, positives, *, k, range_min=0, range_max=None,
                     min_score=None, max_score=None, absolute_margin=None, relative_margin=None,
                     sampling="top", seed=None, exclude_self=False, sims=None):  # fmt: skip
    """mine_hard_negatives' definition, written directly in float64: the picks of "top"; for
    "random", each query's eligible candidates (which k of them a seed draws is the sampler's
    own business, tested for uniformity by its distribution, not by re-deriving its keys).
    ``sims``: the (Q, N) scores to rank by (default: the float64 cosine of the unit rows)."""
    q = np.asarray(queries, np.float64)
    c = np.asarray(corpus, np.float64)
    if sims is None:
        qn = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-8)
        with np.errstate(invalid="ignore"):
            cn = c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-8)
            sims = qn @ cn.T
    idx_out = np.full((len(q), k), -1, np.int64)
    eligible = []
    for i in range(len(q)):
        pos = set(positives[i])
        excluded = set(pos) | ({i} if exclude_self and i < len(c) else set())
        cand = np.array(
            [j for j in range(len(c)) if j not in excluded and not np.isnan(sims[i, j])]
        )
        cand = cand.astype(np.int64)
        ranked = cand[np.lexsort((cand, -sims[i, cand]))] if len(cand) else cand
        window = ranked[range_min:range_max]
        s = sims[i, window]
        ok = np.ones(len(window), bool)
        if min_score is not None:
            ok &= s >= min_score
        if max_score is not None:
            ok &= s <= max_score
        pos_sims = [sims[i, j] for j in pos if not np.isnan(sims[i, j])]
        if pos_sims:
            ps = min(pos_sims)
            if absolute_margin is not None:
                ok &= s <= ps - absolute_margin
            if relative_margin is not None:
                ok &= s <= ps * (1 - relative_margin)
        passing = window[ok]
        eligible.append(passing)
        picks = passing[:k]
        idx_out[i, : len(picks)] = picks
    return idx_out if sampling == "top" else eligible


# -- inputs ---------------------------------------------------------------------------------------


def loss_inputs(rng, layout, b, n, d):
    """float32 anchors (b, d), positives near them, and negatives for ``layout``: "per_anchor"
    (b, n, d), "shared" (n, d) or "in_batch" (None)."""
    a = rng.normal(size=(b, d)).astype(np.float32)
    p = (a + 0.5 * rng.normal(size=(b, d))).astype(np.float32)
    negatives = {
        "per_anchor": rng.normal(size=(b, n, d)).astype(np.float32),
        "shared": rng.normal(size=(n, d)).astype(np.float32),
        "in_batch": None,
    }[layout]
    return a, p, negatives


def corpus_keys(seed_key, queries, columns):
    """The corpus miner's seeded draw per (query, corpus row), written out in NumPy: the seed
    XOR each index times its odd constant, SplitMix64's output mixer, the top 53 bits."""
    with np.errstate(over="ignore"):
        z = (
            np.uint64(seed_key)
            ^ (np.asarray(queries).astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15))
            ^ (np.asarray(columns).astype(np.uint64) * np.uint64(0xD1B54A32D192ED03))
        )
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) * 2.0**-53
