"""One training run: state, steps, evaluation, checkpoints.

Everything random comes from generators whose state is saved (NumPy's for batches, the miners'
seeded streams), and every kernel gives the same bits for any thread count, so a run resumed from
a checkpoint ends with exactly the weights of an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import os
import signal
import threading
from collections.abc import Callable
from typing import Any, Optional

import numpy as np
import numpy.typing as npt

from ...curriculum import CurriculumScheduler, CurriculumStage
from ...info_nce import InfoNCELoss
from ...mining import HardNegativeMiner, MiningStrategy
from ...optim import AdamW, clip_grad_norm
from ...schedule import LearningRateScheduler
from ...spectral import Graph, SpectralRegularization
from ...state import StateFileError, load_state, save_state
from .._common import STOP_SIGNALS, Stopped
from .config import TrainConfig
from .data import Dataset
from .metrics import retrieval_metrics
from .model import EmbeddingHead

__all__ = ["Trainer", "check_same_run", "strategy_for"]

#: The checkpoint's file name in the output directory (a safetensors state file: no pickle).
CHECKPOINT = "checkpoint.safetensors"


def data_digest(data: Dataset) -> str:
    """SHA-256 of the split data (features and labels), so a resume on other data is refused."""
    h = hashlib.sha256()
    for arr in (data.x_train, data.y_train, data.x_val, data.y_val, data.x_test, data.y_test):
        h.update(f"{arr.dtype.str}{arr.shape}".encode())
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def check_same_run(
    what: str, config: TrainConfig, data: Dataset, saved_config: dict[str, Any], digest: object
) -> None:
    """Refuses to continue (a checkpoint) or reuse (a finished seed's report) a run made with
    other settings or on other data than this command's; ``what`` names it in the message."""
    mismatched = config.differing(saved_config)
    if mismatched:
        raise ValueError(
            f"{what} was made with different settings ({', '.join(mismatched)}); resume with "
            "the same flags or choose another --out"
        )
    if digest != data_digest(data):
        raise ValueError(
            f"{what} was made on different data (the features or labels changed since); resume "
            "on the same data or choose another --out"
        )


def strategy_for(difficulty: float) -> MiningStrategy:
    """Harder stages mine harder negatives: random, then distance-weighted, semi-hard, hardest."""
    if difficulty < 0.25:
        return MiningStrategy.RANDOM
    if difficulty < 0.5:
        return MiningStrategy.DISTANCE_WEIGHTED
    if difficulty < 0.75:
        return MiningStrategy.SEMI_HARD
    return MiningStrategy.HARDEST


def _knn_graph(x: npt.NDArray[np.float32], k: int) -> Graph:
    """The symmetrised k-nearest-neighbour graph of the inputs (cosine), as an edge list."""
    picks = HardNegativeMiner.hardest().mine_batch(x, None, x, k + 1)
    rows = np.repeat(np.arange(len(x)), k + 1)
    cols = picks.ravel()
    keep = (cols >= 0) & (cols != rows)
    edges = np.stack([rows[keep], cols[keep]], axis=1)
    edges = np.unique(np.sort(edges, axis=1), axis=0)
    return Graph(edges, len(x))


class Trainer:
    """One training run of the embedding head on ``data.x_train``: its model, optimizer, schedules,
    curriculum, miners and random generators, with checkpoints that resume it bit for bit.

    Examples:
        >>> import numpy as np
        >>> from ruvector_attention.cli.train import TrainConfig, Trainer, load_dataset
        >>> config = TrainConfig(steps=5, eval_every=5, checkpoint_every=5)
        >>> data = load_dataset(None, None, seed=0, val_fraction=0.15, test_fraction=0.2)
        >>> trainer = Trainer(config, data)
        >>> info = trainer.step()
        >>> trainer.step_count, sorted(info)
        (1, ['grad_norm', 'loss', 'lr', 'temperature'])
    """

    def __init__(self, config: TrainConfig, data: Dataset) -> None:
        config.check()
        self.config = config
        self.data = data
        seeds = np.random.SeedSequence(config.seed).spawn(3)
        self.rng = np.random.default_rng(seeds[0])
        self.model = EmbeddingHead(
            data.x_train.shape[1], config.dim, config.hidden, np.random.default_rng(seeds[1])
        )
        # The same seeded initial weights, kept for the "before training" baseline.
        self.initial_model = EmbeddingHead(
            data.x_train.shape[1], config.dim, config.hidden, np.random.default_rng(seeds[1])
        )
        self.optimizer = AdamW(lr=config.lr, weight_decay=config.weight_decay)
        decay = max(config.steps - config.warmup_steps, 1)
        self.scheduler = LearningRateScheduler(
            config.lr, warmup_steps=config.warmup_steps, decay_steps=decay, min_lr=config.lr * 0.01
        )
        self.curriculum = CurriculumScheduler.default_curriculum(config.steps * config.batch_size)
        miner_seed = int(seeds[2].generate_state(1)[0])
        self.miners = {
            MiningStrategy.RANDOM: HardNegativeMiner.random(seed=miner_seed),
            MiningStrategy.DISTANCE_WEIGHTED: HardNegativeMiner.distance_weighted(
                seed=miner_seed + 1
            ),
            MiningStrategy.SEMI_HARD: HardNegativeMiner.semi_hard(0.2, seed=miner_seed + 2),
            MiningStrategy.HARDEST: HardNegativeMiner.hardest(seed=miner_seed + 3),
        }
        self.graph = (
            _knn_graph(data.x_train, config.laplacian_neighbors)
            if config.laplacian_weight > 0
            else None
        )
        self.regularizer = SpectralRegularization(config.laplacian_weight)
        self.step_count = 0
        self.history: dict[str, list[Any]] = {
            "step": [],
            "loss": [],
            "eval_step": [],
            "recall_at_1": [],
            "map_at_r": [],
        }
        # For each training sample, the indices of the other samples of its class.
        y = data.y_train
        self._same_class = {int(c): np.flatnonzero(y == c) for c in np.unique(y)}
        self._max_negatives = int(len(y) - max(len(v) for v in self._same_class.values()))

    # -- one step -------------------------------------------------------------------------------

    def _positives(self, anchors: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        y = self.data.y_train
        out = np.empty_like(anchors)
        for i, a in enumerate(anchors):
            pool = self._same_class[int(y[a])]
            j = pool[self.rng.integers(len(pool) - 1)]
            out[i] = j if j != a else pool[-1]
        return out

    def stage(self) -> CurriculumStage:
        stage = self.curriculum.current_stage()
        assert stage is not None
        return stage

    def step(self) -> dict[str, float]:
        """One optimisation step: a batch of anchors and positives of their class, negatives from
        the miner of the curriculum's stage, InfoNCE at the stage's temperature (plus the optional
        Laplacian), clipped gradients and an AdamW step at the scheduled learning rate. Returns the
        step's loss, learning rate, temperature and gradient norm."""
        cfg, x, y = self.config, self.data.x_train, self.data.y_train
        stage = self.stage()
        batch = min(cfg.batch_size, len(y))
        anchors = self.rng.choice(len(y), size=batch, replace=False).astype(np.int64)
        positives = self._positives(anchors)
        z = self.model.forward(x)
        k = max(1, min(stage.negative_count, self._max_negatives))
        miner = self.miners[strategy_for(stage.difficulty)]
        picks = miner.mine_batch(
            z[anchors], z[positives], z, k, anchor_labels=y[anchors], candidate_labels=y
        )
        # Rows the miner could not fill are -1 padded (fewer eligible candidates than k, or a
        # sampler's zero weights): keep only anchors with k real negatives, never index with -1.
        full = (picks >= 0).all(axis=1)
        if not full.all():
            anchors, positives, picks = anchors[full], positives[full], picks[full]
        if len(anchors) == 0:
            raise RuntimeError(
                f"step {self.step_count + 1}: the miner found no full row of negatives"
            )
        loss_fn = InfoNCELoss(stage.temperature)
        loss, grads = loss_fn.batch_with_gradients(z[anchors], z[positives], z[picks])
        grad_z = np.zeros_like(z)
        np.add.at(grad_z, anchors, grads.anchors)
        np.add.at(grad_z, positives, grads.positives)
        assert grads.negatives is not None
        np.add.at(grad_z, picks.ravel(), grads.negatives.reshape(-1, z.shape[1]))
        if self.graph is not None:
            reg, reg_grad = self.regularizer.laplacian_with_gradients(z, self.graph)
            loss += reg
            grad_z += reg_grad
        param_grads = self.model.backward(x, grad_z)
        grad_norm = clip_grad_norm(param_grads, cfg.max_grad_norm)
        self.optimizer.lr = self.scheduler.step()
        self.optimizer.step(self.model.params, param_grads)
        self.curriculum.step(batch)
        self.step_count += 1
        self.history["step"].append(self.step_count)
        self.history["loss"].append(float(loss))
        return {
            "loss": float(loss),
            "lr": self.optimizer.lr,
            "temperature": stage.temperature,
            "grad_norm": grad_norm,
        }

    # -- evaluation -----------------------------------------------------------------------------

    def evaluate(self, split: str = "validation") -> dict[str, float]:
        """recall@1 and MAP@R of the current model on ``split`` (``"validation"`` during the run;
        ``"test"`` once, at the end)."""
        x, y = self.data.split(split)
        return retrieval_metrics(self.model.forward(x), y)

    def evaluate_initial(self, split: str) -> dict[str, float]:
        """The same for the untrained model (its seeded initial weights)."""
        x, y = self.data.split(split)
        return retrieval_metrics(self.initial_model.forward(x), y)

    def record_evaluation(self) -> dict[str, float]:
        """Validation metrics into the history (the curve of the run)."""
        result = self.evaluate("validation")
        self.history["eval_step"].append(self.step_count)
        self.history["recall_at_1"].append(result["recall_at_1"])
        self.history["map_at_r"].append(result["map_at_r"])
        return result

    def run(
        self,
        out_dir: str,
        *,
        on_step: Optional[Callable[[Trainer, dict[str, float]], None]] = None,
    ) -> None:
        """Steps up to ``config.steps``; checkpoints every ``checkpoint_every`` steps and when
        interrupted (KeyboardInterrupt, or ``Stopped`` for SIGTERM and SIGHUP, is re-raised after
        the checkpoint is written).

        A stop signal is held back until the step under way has finished, so the checkpoint is
        always taken between two steps and a resumed run continues exactly where this one
        stopped.
        """
        stop: Optional[int] = None

        def defer(signum: int, frame: object) -> None:
            nonlocal stop
            stop = signum

        in_main_thread = threading.current_thread() is threading.main_thread()
        previous = {s: signal.signal(s, defer) for s in STOP_SIGNALS} if in_main_thread else {}
        try:
            while self.step_count < self.config.steps:
                info = self.step()
                if self.step_count % self.config.eval_every == 0:
                    self.record_evaluation()
                if self.step_count % self.config.checkpoint_every == 0:
                    self.save(out_dir)
                if on_step is not None:
                    on_step(self, info)
                if stop is not None:
                    raise Stopped(stop)
        except KeyboardInterrupt:
            self.save(out_dir)
            raise
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    # -- checkpoints ----------------------------------------------------------------------------

    def _stateful(self) -> dict[str, Any]:
        """The objects whose state a checkpoint holds, by name."""
        objects: dict[str, Any] = {
            "optimizer": self.optimizer,
            "scheduler": self.scheduler,
            "curriculum": self.curriculum,
        }
        for strategy, miner in self.miners.items():
            objects[f"miner_{strategy.value}"] = miner
        return objects

    def save(self, out_dir: str) -> str:
        """Write the checkpoint (atomically: a crash leaves the previous one intact)."""
        path = os.path.join(out_dir, CHECKPOINT)
        save_state(
            path,
            config=self.config.to_dict(),
            data_sha256=data_digest(self.data),
            step=self.step_count,
            params=list(self.model.params),
            rng=self.rng.bit_generator.state,
            history=self.history,
            **self._stateful(),
        )
        return path

    def load(self, out_dir: str) -> None:
        """Continue from the checkpoint in ``out_dir``.

        Raises:
            StateFileError: the checkpoint is missing, damaged or not ours.
            ValueError: it was made with other settings or other data.
        """
        path = os.path.join(out_dir, CHECKPOINT)
        saved = load_state(path)
        try:
            config, digest = dict(saved["config"]), saved["data_sha256"]
            params, step = saved["params"], saved["step"]
            rng, history = saved["rng"], saved["history"]
        except (KeyError, TypeError):
            raise StateFileError(f"{path}: not a checkpoint of ruvector-attention train") from None
        check_same_run(f"the checkpoint in {out_dir}", self.config, self.data, config, digest)
        shapes = [p.shape for p in self.model.params]
        if [np.shape(p) for p in params] != shapes:
            raise StateFileError(f"{path}: its parameters do not fit this model")
        load_state(path, **self._stateful())  # all or none
        for param, saved_param in zip(self.model.params, params):
            param[...] = saved_param
        self.rng.bit_generator.state = rng
        self.step_count = int(step)
        self.history = history
