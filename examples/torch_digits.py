"""A small PyTorch MLP trained on scikit-learn's digits with ruvector-attention's loss, miner and
optimizer, beside the same model trained with a pure-PyTorch loss, miner and torch.optim.AdamW.

Each step takes a batch of (anchor, positive) pairs of the same class, mines each anchor's k
hardest negatives among the batch's positives of other classes, and minimises InfoNCE over
(positive, negatives). Both runs start from the same weights and see the same batches; the
held-out test split is scored once, after training (recall@1 of the nearest test neighbour by
cosine similarity).

    pip install "ruvector-attention[torch]" scikit-learn
    python examples/torch_digits.py            # both runs
    python examples/torch_digits.py --steps 300 --backend ruvector
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import ruvector_attention.torch as rat

TEMPERATURE = 0.1
HARD_NEGATIVES = 16


def make_model(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 32))


def batches(labels: np.ndarray, batch: int, steps: int, seed: int) -> list[tuple[np.ndarray, ...]]:
    """(anchor rows, positive rows): anchors at random, each positive another row of its class."""
    rng = np.random.default_rng(seed)
    by_class = {c: np.flatnonzero(labels == c) for c in np.unique(labels)}
    out = []
    for _ in range(steps):
        anchors = rng.choice(len(labels), size=batch, replace=False)
        positives = np.array(
            [rng.choice(by_class[labels[i]][by_class[labels[i]] != i]) for i in anchors]
        )
        out.append((anchors, positives))
    return out


# -- the pure-PyTorch counterparts ----------------------------------------------------------------


def torch_hardest(anchors: torch.Tensor, candidates: torch.Tensor, same: torch.Tensor, k: int):
    unit = torch.nn.functional.normalize
    sims = unit(anchors, dim=1) @ unit(candidates, dim=1).T
    return sims.masked_fill(same, float("-inf")).topk(k, dim=1).indices


def torch_info_nce(a: torch.Tensor, p: torch.Tensor, n: torch.Tensor, t: float) -> torch.Tensor:
    unit = lambda x: x / x.norm(dim=-1, keepdim=True).clamp_min(1e-8)  # noqa: E731
    a, p, n = unit(a), unit(p), unit(n)
    logits = torch.cat([(a * p).sum(1, keepdim=True), torch.einsum("bd,bnd->bn", a, n)], 1) / t
    return (torch.logsumexp(logits, 1) - logits[:, 0]).mean()


# -- training -------------------------------------------------------------------------------------


def train(backend: str, x: torch.Tensor, y: np.ndarray, plan, seed: int, lr: float):
    model = make_model(seed)
    if backend == "ruvector":
        loss_fn = rat.InfoNCELoss(TEMPERATURE)
        miner = rat.HardNegativeMiner.hardest()
        opt = rat.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    labels = torch.from_numpy(y)
    start = time.perf_counter()
    for anchor_rows, positive_rows in plan:
        emb_a = model(x[anchor_rows])
        emb_p = model(x[positive_rows])
        la, lp = labels[anchor_rows], labels[positive_rows]
        if backend == "ruvector":
            picks = miner.mine_batch(
                emb_a.detach(),
                None,
                emb_p.detach(),
                HARD_NEGATIVES,
                anchor_labels=la,
                candidate_labels=lp,
            )
            loss = loss_fn(emb_a, emb_p, emb_p[picks])
        else:
            with torch.no_grad():
                picks = torch_hardest(emb_a, emb_p, la[:, None] == lp[None, :], HARD_NEGATIVES)
            loss = torch_info_nce(emb_a, emb_p, emb_p[picks], TEMPERATURE)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model, time.perf_counter() - start


def recall_at_1(model: torch.nn.Module, x: torch.Tensor, y: np.ndarray) -> float:
    with torch.no_grad():
        emb = torch.nn.functional.normalize(model(x), dim=1)
    sims = emb @ emb.T
    sims.fill_diagonal_(float("-inf"))
    nearest = sims.argmax(1).numpy()
    return float(np.mean(y[nearest] == y))


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", choices=["ruvector", "torch", "both"], default="both")
    parser.add_argument("--json", action="store_true", help="print the results as JSON only")
    args = parser.parse_args(argv)

    digits = load_digits()
    features = (digits.data / 16.0).astype(np.float32)
    x_train, x_test, y_train, y_test = train_test_split(
        features, digits.target, test_size=0.2, stratify=digits.target, random_state=args.seed
    )
    x_train_t, x_test_t = torch.from_numpy(x_train), torch.from_numpy(x_test)
    plan = batches(y_train, args.batch, args.steps, args.seed)
    backends = ["ruvector", "torch"] if args.backend == "both" else [args.backend]
    results = {}
    for backend in backends:
        model, seconds = train(backend, x_train_t, y_train, plan, args.seed, args.lr)
        results[backend] = {
            "test_recall_at_1": recall_at_1(model, x_test_t, y_test),
            "train_seconds": seconds,
        }
    if args.json:
        print(json.dumps(results))
    else:
        for backend, r in results.items():
            print(
                f"{backend:>8}: held-out recall@1 {r['test_recall_at_1']:.4f}, "
                f"training {r['train_seconds']:.2f} s ({args.steps} steps of {args.batch})"
            )
    return results


if __name__ == "__main__":
    main()
