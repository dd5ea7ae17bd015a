"""The embedding head: a linear projection, or a small MLP (one hidden ReLU layer). Gradients
with respect to its weights come from the gradients of the loss with respect to the embeddings
(``backward``)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["EmbeddingHead"]

F32 = npt.NDArray[np.float32]


class EmbeddingHead:
    """``z = x W`` (hidden == 0) or ``z = relu(x W1 + b1) W2`` (hidden > 0)."""

    def __init__(self, in_dim: int, dim: int, hidden: int, rng: np.random.Generator) -> None:
        def init(rows: int, cols: int) -> F32:
            weights: F32 = (rng.standard_normal((rows, cols)) / np.sqrt(rows)).astype(np.float32)
            return weights

        self.hidden = hidden
        if hidden:
            self.params: list[F32] = [
                init(in_dim, hidden),
                np.zeros(hidden, np.float32),
                init(hidden, dim),
            ]
        else:
            self.params = [init(in_dim, dim)]

    @property
    def names(self) -> list[str]:
        return ["W1", "b1", "W2"] if self.hidden else ["W"]

    def forward(self, x: F32) -> F32:
        if not self.hidden:
            return x @ self.params[0]
        w1, b1, w2 = self.params
        z: F32 = np.maximum(x @ w1 + b1, 0.0) @ w2
        return z

    def backward(self, x: F32, grad_z: F32) -> list[F32]:
        """Gradients of the loss with respect to each parameter, given d loss / d z."""
        if not self.hidden:
            return [x.T @ grad_z]
        w1, b1, w2 = self.params
        h = np.maximum(x @ w1 + b1, 0.0)
        grad_h = (grad_z @ w2.T) * (h > 0)
        return [x.T @ grad_h, grad_h.sum(axis=0), h.T @ grad_z]
