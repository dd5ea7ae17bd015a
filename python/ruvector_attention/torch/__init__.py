"""PyTorch front end: the kernels inside autograd and ``torch.optim`` (extra ``[torch]``).

``import ruvector_attention`` never imports torch; this module does.

- :class:`InfoNCELoss`, :class:`LocalContrastiveLoss`, :class:`SpectralRegularization`:
  ``torch.nn.Module``s whose backward is the kernels' exact gradient for every input that
  requires grad. CPU float32 tensors go through without a copy; other float dtypes are converted
  and get their gradients back in their own dtype.
- :class:`SGD`, :class:`Adam`, :class:`AdamW`: ``torch.optim.Optimizer`` subclasses with
  torch's state layout (state dicts load both ways), one native call per param group.
- :class:`HardNegativeMiner`, :class:`InBatchMiner`: tensors in, int64 tensors out.

Examples:
    >>> import torch
    >>> import ruvector_attention.torch as rat
    >>> model = torch.nn.Linear(16, 8)
    >>> opt = rat.AdamW(model.parameters(), lr=1e-3)
    >>> x, y = torch.randn(32, 16), torch.randn(32, 16)
    >>> loss = rat.InfoNCELoss(temperature=0.1)(model(x), model(y))
    >>> loss.backward()
    >>> opt.step()
"""

from __future__ import annotations

try:
    import torch as _torch  # noqa: F401  (fails here, with the remedy, when the extra is absent)
except ImportError as exc:  # pragma: no cover - exercised in the environment without torch
    raise ImportError(
        "ruvector_attention.torch needs PyTorch: pip install 'ruvector-attention[torch]'"
    ) from exc

from .losses import InfoNCELoss, LocalContrastiveLoss, SpectralRegularization
from .mining import HardNegativeMiner, InBatchMiner
from .optim import SGD, Adam, AdamW

__all__ = [
    "SGD",
    "Adam",
    "AdamW",
    "HardNegativeMiner",
    "InBatchMiner",
    "InfoNCELoss",
    "LocalContrastiveLoss",
    "SpectralRegularization",
]
