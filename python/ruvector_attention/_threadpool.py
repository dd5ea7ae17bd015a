"""The kernels' thread pool as threadpoolctl sees it: ``threadpool_info()`` lists it (user API
``"ruvector_attention"``) and ``threadpool_limits(n)`` limits it, beside the BLAS and OpenMP pools.

threadpoolctl (>= 3.2, optional) finds native libraries among the shared objects a process has
loaded and calls their C functions; the extension exports two for this
(``ruvector_attention_get_num_threads`` / ``_set_num_threads``), whose names identify it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["register_with_threadpoolctl"]


def register_with_threadpoolctl() -> bool:
    """Registers the controller if threadpoolctl (with ``register``: >= 3.2) is installed;
    returns whether it was."""
    try:
        import threadpoolctl
    except ImportError:
        return False
    if not hasattr(threadpoolctl, "register"):
        return False

    # threadpoolctl has no type information: its base class is Any to mypy.
    class RuvectorController(threadpoolctl.LibController):  # type: ignore[misc]
        user_api = "ruvector_attention"
        internal_api = "ruvector_attention"
        filename_prefixes = ("_native",)
        check_symbols = ("ruvector_attention_get_num_threads",)

        def get_num_threads(self) -> int:
            return int(self.dynlib.ruvector_attention_get_num_threads())

        def set_num_threads(self, num_threads: int) -> Any:
            return self.dynlib.ruvector_attention_set_num_threads(num_threads)

        def get_version(self) -> str:
            from ._native import __version__

            return __version__

    threadpoolctl.register(RuvectorController)
    return True
