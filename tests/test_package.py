"""The package's public surface: names, the version, the exception hierarchy (threads, fork
safety and SIMD paths are in test_runtime.py)."""

from __future__ import annotations

import numpy as np
import pytest

import ruvector_attention as ra
import ruvector_attention.training as training
from ruvector_attention import _native

API_NAMES = [
    "SGD",
    "Adam",
    "AdamW",
    "LearningRateScheduler",
    "clip_grad_norm",
    "RuvectorError",
    "ShapeError",
    "ArgumentError",
    "LayoutError",
    "set_num_threads",
    "get_num_threads",
    "InfoNCELoss",
    "LocalContrastiveLoss",
    "SpectralRegularization",
    "Reduction",
    "Gradients",
    "Graph",
    "HardNegativeMiner",
    "InBatchMiner",
    "MiningStrategy",
    "CurriculumScheduler",
    "CurriculumStage",
    "DecayType",
    "TemperatureAnnealing",
]


def test_the_api_contract_and_the_training_namespace_hold_every_public_name():
    # The names docs/api.md fixes are public; every public name is importable and the crate's
    # `training` namespace offers each of them. (Checking `is` for the contract's names alone
    # proved nothing: `from .. import *` makes them the same objects, and missed 8 names.)
    public = set(ra.__all__) - {"__version__"}
    missing = sorted(set(API_NAMES) - public)
    assert not missing, missing
    for name in sorted(public):
        assert getattr(ra, name) is not None, name
        crate, ours = getattr(training, name), getattr(ra, name)
        # Each crate name is the package's object, or its class with the crate's names added
        # (MiningStrategy: the enum's members plus the crate's HARD_NEGATIVE).
        if isinstance(ours, type) and crate is not ours:
            if name == "MiningStrategy":
                assert all(getattr(crate, m.name) is m for m in ours), name
            else:
                assert issubclass(crate, ours), name
        else:
            assert crate is ours, name
    assert sorted(training.__all__) == sorted(public)


def test_every_public_name_has_an_example_that_runs():
    # The examples are the package's doctests, which the test run executes.
    import inspect

    missing = [
        name
        for name in ra.__all__
        if name != "__version__" and ">>>" not in (inspect.getdoc(getattr(ra, name)) or "")
    ]
    assert not missing


def test_version_is_a_string():
    assert isinstance(ra.__version__, str) and ra.__version__.count(".") >= 2


def test_one_version_source():
    # Cargo workspace -> extension (CARGO_PKG_VERSION) and package metadata (maturin).
    assert ra.__version__ == _native.__version__


def test_exception_hierarchy():
    assert issubclass(ra.RuvectorError, Exception)
    for kind in (ra.ArgumentError, ra.ShapeError, ra.LayoutError):
        assert issubclass(kind, ra.RuvectorError) and issubclass(kind, ValueError), kind
    assert len({ra.ArgumentError, ra.ShapeError, ra.LayoutError}) == 3


def test_each_kind_of_error_has_its_class_whichever_layer_finds_it():
    # The review: a kernel's InvalidArgument arrived as a plain ValueError (not a RuvectorError),
    # and "must be C-contiguous" was a TypeError in one place and a ValueError in two.
    a = np.ones((2, 3), np.float32)
    # The Python checks and the kernels' own give the same class for an out-of-domain value.
    with pytest.raises(ra.ArgumentError, match="temperature"):
        ra.InfoNCELoss(temperature=-1.0)
    with pytest.raises(ra.ArgumentError, match="temperature"):
        _native.info_nce_pooled(a, a, None, temperature=float("nan"))
    with pytest.raises(ra.ArgumentError, match="margin"):
        _native.local_contrastive(a, a, a, margin=-1.0)
    with pytest.raises(ra.ShapeError, match="2-D"):
        _native.info_nce_pooled(a.ravel(), a, None, temperature=0.1)
    # Every way an in-place array's memory cannot be used: one class, the argument named.
    strided = np.ones((4, 4), np.float32)[:, ::2]
    unaligned = np.frombuffer(bytearray(4 * 6 + 1), np.float32, 6, offset=1)
    read_only = np.ones(6, np.float32)
    read_only.flags.writeable = False
    shared = np.ones(6, np.float32)
    cases = [
        (strided, np.ones((4, 2), np.float32), r"params\[0\] must be C-contiguous"),
        (unaligned, np.ones(6, np.float32), "params.* is not aligned"),
        (read_only, np.ones(6, np.float32), "params.* is read-only"),
        ([shared, shared[:3]], [np.ones(6, np.float32), np.ones(3, np.float32)], "shares memory"),
    ]
    for params, grads, message in cases:
        with pytest.raises(ra.LayoutError, match=message):
            ra.SGD(lr=0.1).step(params, grads)
