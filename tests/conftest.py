import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

import frameworks

settings.register_profile(
    "default",
    deadline=None,
    max_examples=60,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("ci", parent=settings.get_profile("default"), derandomize=True)
settings.load_profile("ci" if os.environ.get("CI") else "default")


@pytest.fixture
def rng(request):
    """A generator seeded from the test's name: reproducible, different per test."""
    import zlib

    import numpy as np

    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


def pytest_configure(config):
    frameworks.CONFIG = config  # the -m expression decides which groups are strict under CI


def pytest_collection_modifyitems(config, items):
    # The package's doctests of the PyTorch and JAX front ends belong to those groups.
    for item in items:
        parts = Path(str(item.fspath)).parts
        if "ruvector_attention" in parts:
            for group in ("torch", "jax"):
                if group in parts[parts.index("ruvector_attention") + 1 :]:
                    item.add_marker(getattr(pytest.mark, group))


@pytest.fixture(autouse=True)
def _thread_count_restored():
    """Every test leaves the kernels' thread count as it found it: a test that changes it must
    restore it, or this fails (later tests would otherwise run on an arbitrary count)."""
    import ruvector_attention as ra

    before = ra.get_num_threads()
    yield
    after = ra.get_num_threads()
    if after != before:
        ra.set_num_threads(before)
        pytest.fail(f"the test left the thread count at {after} (it was {before})")
