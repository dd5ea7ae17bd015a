"""JAX front end: the losses as ``jax.custom_vjp`` functions (extra ``[jax]``).

``import ruvector_attention`` never imports jax; this module does.

Each function calls the kernels through ``jax.pure_callback`` (on the host CPU), so it works
eagerly and under ``jax.jit``, and ``jax.grad`` gets the kernels' exact gradients: with a ``mean``
or ``sum`` reduction the forward pass computes value and gradients in one kernel call and the
backward scales them; with ``none`` the backward runs the kernel with the upstream gradient as
per-item weights. Under ``jax.vmap`` each batch element is computed in turn (a correct, sequential
batching rule). Higher-order derivatives are not available (the kernels give first derivatives).

Examples:
    >>> import jax, jax.numpy as jnp
    >>> from ruvector_attention.jax import info_nce
    >>> a = jax.random.normal(jax.random.key(0), (8, 16))
    >>> p = a + 0.1
    >>> g = jax.jit(jax.grad(lambda a: info_nce(a, p, temperature=0.1)))(a)
    >>> g.shape
    (8, 16)
"""

from __future__ import annotations

try:
    import jax as _jax  # noqa: F401  (fails here, with the remedy, when the extra is absent)
except ImportError as exc:  # pragma: no cover - exercised in the environment without jax
    raise ImportError(
        "ruvector_attention.jax needs JAX: pip install 'ruvector-attention[jax]'"
    ) from exc

from .losses import info_nce, local_contrastive, spectral

__all__ = ["info_nce", "local_contrastive", "spectral"]
