"""The package's public surface: names, the version, the exception hierarchy (threads, fork
safety and SIMD paths are in test_runtime.py)."""

from __future__ import annotations

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
        assert getattr(training, name) is getattr(ra, name), name
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
    assert issubclass(ra.ShapeError, ra.RuvectorError)
    assert issubclass(ra.ShapeError, ValueError)
