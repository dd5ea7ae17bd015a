"""save_state / load_state: round trips, refusal of damaged or foreign files, atomic writes under
a killed writer, and no code execution from any file we read."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import ruvector_attention as ra
from platforms import posix_only
from ruvector_attention.state import FORMAT

SCRIPTS = Path(__file__).parent / "scripts"


def stateful_objects(rng):
    w = rng.standard_normal((5, 3)).astype(np.float32)
    opt = ra.AdamW(lr=0.05, weight_decay=0.1)
    for _ in range(3):
        opt.step(w, rng.standard_normal(w.shape).astype(np.float32))
    sched = ra.LearningRateScheduler(0.1, warmup_steps=3, decay_steps=10)
    for _ in range(4):
        sched.step()
    curriculum = ra.CurriculumScheduler.default_curriculum(100)
    curriculum.step(37)
    annealing = ra.TemperatureAnnealing(1.0, 0.1, 10, ra.DecayType.COSINE)
    annealing.step()
    miner = ra.HardNegativeMiner.distance_weighted(0.5, seed=3)
    miner.mine_batch(w, None, w, 2)
    return w, {
        "optimizer": opt,
        "scheduler": sched,
        "curriculum": curriculum,
        "annealing": annealing,
        "miner": miner,
    }


def test_every_stateful_object_round_trips_bit_exactly(tmp_path, rng):
    w, objects = stateful_objects(rng)
    path = tmp_path / "s.safetensors"
    ra.save_state(path, weights=w, note={"step": 3, "tags": ["a", 1.5, None]}, **objects)
    fresh = {
        "optimizer": ra.AdamW(lr=1.0),
        "scheduler": ra.LearningRateScheduler(1.0),
        "curriculum": ra.CurriculumScheduler.default_curriculum(5),
        "annealing": ra.TemperatureAnnealing(2.0, 1.0, 3),
        "miner": ra.HardNegativeMiner.random(seed=99),
    }
    saved = ra.load_state(path, **fresh)
    np.testing.assert_array_equal(saved["weights"], w)
    assert saved["note"] == {"step": 3, "tags": ["a", 1.5, None]}
    for name, obj in objects.items():
        a, b = obj.state_dict(), fresh[name].state_dict()
        assert pickle.dumps(a) == pickle.dumps(b) or _equal(a, b), name
    # The restored objects continue exactly as the originals.
    g = rng.standard_normal(w.shape).astype(np.float32)
    w2 = w.copy()
    objects["optimizer"].step(w, g)
    fresh["optimizer"].step(w2, g)
    np.testing.assert_array_equal(w, w2)
    np.testing.assert_array_equal(
        objects["miner"].mine_batch(w, None, w, 3), fresh["miner"].mine_batch(w, None, w, 3)
    )
    assert objects["scheduler"].step() == fresh["scheduler"].step()
    assert objects["annealing"].step() == fresh["annealing"].step()


def _equal(a, b):
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray):
        return np.array_equal(a, b)
    return a == b


def test_damaged_foreign_and_newer_files_are_refused_by_name(tmp_path, rng):
    w, objects = stateful_objects(rng)
    good = tmp_path / "good.safetensors"
    ra.save_state(good, weights=w, optimizer=objects["optimizer"])
    data = good.read_bytes()
    cases = {
        "truncated": data[: len(data) // 2],
        "empty": b"",
        "header only": data[:12],
        "flipped": data[:-5] + bytes([data[-5] ^ 1]) + data[-4:],
        "foreign": b"PK\x03\x04 a zip file, not ours" * 4,
        "pickle": pickle.dumps({"a": 1}),
    }
    messages = {
        "truncated": "truncated",
        "empty": "truncated",
        "header only": "truncated",
        "flipped": "checksum mismatch",
        "foreign": "not a ruvector-attention state file|truncated",
        "pickle": "not a ruvector-attention state file|truncated",
    }
    for name, blob in cases.items():
        path = tmp_path / f"{name}.safetensors"
        path.write_bytes(blob)
        target = ra.AdamW(lr=0.5)
        with pytest.raises(ra.StateFileError, match=messages[name]) as info:
            ra.load_state(path, optimizer=target)
        assert str(path) in str(info.value) and "\n" not in str(info.value)
        assert target.lr == 0.5 and target.steps == 0  # untouched
    # A newer format version.
    from safetensors.numpy import save

    meta = {"format": FORMAT, "version": "3", "objects": "{}", "sha256": ""}
    newer = tmp_path / "newer.safetensors"
    newer.write_bytes(save({"x": np.zeros(1, np.float32)}, metadata=meta))
    with pytest.raises(ra.StateFileError, match="version 3 is newer"):
        ra.load_state(newer)
    with pytest.raises(ra.StateFileError, match="cannot read"):
        ra.load_state(tmp_path / "missing.safetensors")
    with pytest.raises(ra.StateFileError, match="has no saved 'scheduler'"):
        ra.load_state(good, scheduler=ra.LearningRateScheduler(0.1))


def test_loading_is_all_or_none(tmp_path, rng):
    _, objects = stateful_objects(rng)
    path = tmp_path / "s.safetensors"
    ra.save_state(path, optimizer=objects["optimizer"], scheduler=objects["scheduler"])
    sgd = ra.SGD(lr=0.3)  # the saved optimizer is an AdamW: its state does not fit
    sched = ra.LearningRateScheduler(0.7)
    with pytest.raises(ValueError, match="AdamW"):
        ra.load_state(path, scheduler=sched, optimizer=sgd)
    assert sched.get_lr() == ra.LearningRateScheduler(0.7).get_lr() and sgd.lr == 0.3


def test_unsupported_values_are_refused_before_writing(tmp_path):
    path = tmp_path / "s.safetensors"
    with pytest.raises(TypeError, match="cannot save a set"):
        ra.save_state(path, x={1, 2})
    with pytest.raises(TypeError, match="only bool, int and float arrays"):
        ra.save_state(path, x=np.array(["a"]))
    assert not path.exists() and os.listdir(tmp_path) == []


def test_a_zero_d_parameter_and_its_optimizer_state_round_trip(tmp_path, rng):
    # The report: a learnable scalar (a log temperature) came back as shape (1,), and its
    # optimizer state could not be restored (ShapeError).
    log_t = np.array(-2.3, np.float32)
    opt = ra.Adam(lr=0.01)
    for _ in range(3):
        opt.step(log_t, np.array(rng.standard_normal(), np.float32))
    path = tmp_path / "s.safetensors"
    ra.save_state(path, log_temperature=log_t, optimizer=opt)
    fresh = ra.Adam(lr=0.5)
    saved = ra.load_state(path, optimizer=fresh)
    assert saved["log_temperature"].shape == () and saved["log_temperature"] == log_t
    restored = saved["log_temperature"].copy()
    g = np.array(0.7, np.float32)
    opt.step(log_t, g)
    fresh.step(restored, g)
    assert restored == log_t


def test_keys_holding_slashes_never_collide_with_nested_keys(tmp_path):
    # The report: {"a/b": A, "a": {"b": B}} loaded x["a/b"] as B; A was lost.
    a, b = np.arange(3.0), np.arange(3.0) + 10
    path = tmp_path / "s.safetensors"
    ra.save_state(path, x={"a/b": a, "a": {"b": b}}, **{"x/a": {"b": a + 5}})
    saved = ra.load_state(path)
    np.testing.assert_array_equal(saved["x"]["a/b"], a)
    np.testing.assert_array_equal(saved["x"]["a"]["b"], b)
    np.testing.assert_array_equal(saved["x/a"]["b"], a + 5)


@pytest.mark.parametrize("dtype", [">f4", ">f8", ">i8", ">u2", "<f4", "|b1", "|i1"])
def test_any_byte_order_saves_and_loads_by_value(tmp_path, dtype):
    # The report: big-endian arrays saved without error, then the file was refused as corrupt.
    x = np.arange(4).astype(dtype)
    path = tmp_path / "s.safetensors"
    ra.save_state(path, x=x, strided=x[::2])
    saved = ra.load_state(path)
    np.testing.assert_array_equal(saved["x"], x)
    np.testing.assert_array_equal(saved["strided"], x[::2])
    assert saved["x"].dtype == x.dtype.newbyteorder("<")


def test_tuples_and_non_string_keys_round_trip(tmp_path):
    value = {"betas": (0.9, 0.999), "by_index": {0: [1, 2], 1: None, -3: "x"}, "empty": ()}
    path = tmp_path / "s.safetensors"
    ra.save_state(path, v=value)
    assert ra.load_state(path)["v"] == value
    with pytest.raises(TypeError, match="dict keys must be"):
        ra.save_state(path, v={(1, 2): 3})
    with pytest.raises(ValueError, match="reserved"):
        ra.save_state(path, v={"__tuple__": 3})


def test_values_nested_beyond_the_limit_are_refused_when_saving(tmp_path):
    from ruvector_attention.state import MAX_DEPTH

    deep: list = []
    for _ in range(MAX_DEPTH + 2):
        deep = [deep]
    with pytest.raises(ValueError, match="levels deep"):
        ra.save_state(tmp_path / "s.safetensors", x=deep)
    assert os.listdir(tmp_path) == []


def _crafted(path, document: str, arrays=None):
    """A file with a valid checksum around a document of the attacker's choice."""
    from safetensors.numpy import save

    from ruvector_attention.state import _digest

    arrays = arrays or {"t": np.zeros(2, np.float32)}
    meta = {
        "format": FORMAT,
        "version": "2",
        "objects": document,
        "sha256": _digest(document, arrays),
    }
    path.write_bytes(save(arrays, metadata=meta))
    return path


@pytest.mark.parametrize(
    "document",
    [
        "[" * 100_000 + "]" * 100_000,
        '{"x": ' + "[" * 100_000 + "]" * 100_000 + "}",
        '{"x": {"__array__": ["a"]}}',
        '{"x": {"__array__": "missing"}}',
        '{"x": {"__array__": "t", "extra": 1}}',
        '{"x": {"__object__": "Adam"}}',
        '{"x": {"__items__": [[{"k": 1}, 2]]}}',
        '{"x": {"__items__": 5}}',
        '{"x": {"__tuple__": {"a": 1}}}',
        "[1, 2]",
        '"text"',
        "{bad json",
    ],
)
def test_crafted_documents_are_state_file_errors(tmp_path, document):
    # The report: a document nested 100,000 deep raised RecursionError, and an array reference
    # that is a list raised TypeError. Any damaged or foreign file must be a StateFileError.
    path = _crafted(tmp_path / "c.safetensors", document)
    with pytest.raises(ra.StateFileError, match="corrupt object document"):
        ra.load_state(path)


def test_a_deep_header_is_a_state_file_error(tmp_path):
    header = b'{"__metadata__": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    path = tmp_path / "h.safetensors"
    path.write_bytes(len(header).to_bytes(8, "little") + header)
    with pytest.raises(ra.StateFileError, match="not a ruvector-attention state file"):
        ra.load_state(path)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                ["__array__", "__object__", "__items__", "__tuple__", "state", "torch", "a"]
            )
            | st.text(max_size=3),
            inner,
            max_size=3,
        )
    ),
    max_leaves=12,
)


@given(tree=st.dictionaries(st.sampled_from(["optimizer", "x"]), _json, max_size=2))
def test_fuzz_crafted_documents_raise_only_documented_errors(tmp_path_factory, tree):
    path = _crafted(tmp_path_factory.mktemp("fuzz") / "f.safetensors", json.dumps(tree))
    target = ra.AdamW(lr=0.5)
    try:
        ra.load_state(path, optimizer=target)
    except (ra.StateFileError, TypeError, ValueError):
        assert target.lr == 0.5 and target.steps == 0
    else:
        assert "optimizer" in tree


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_a_crafted_pickle_checkpoint_runs_nothing(tmp_path):
    # The attack of the report: a checkpoint whose unpickling runs a command. Neither load_state
    # nor `train --resume` unpickles anything, so the command never runs.
    out = tmp_path / "run"
    out.mkdir()
    for name in ("checkpoint.safetensors", "checkpoint.pkl"):
        (out / name).write_bytes(pickle.dumps(_RunsCode()))
    with pytest.raises(ra.StateFileError):
        ra.load_state(out / "checkpoint.safetensors")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "ruvector_attention",
            "train",
            "--out",
            str(out),
            "--resume",
            "--steps",
            "5",
            "--no-progress",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert "checkpoint.safetensors" in done.stderr
    assert not (tmp_path / "PWNED").exists()
    # A state file whose JSON names a class is still only data.
    from safetensors.numpy import save

    doc = json.dumps({"x": {"__object__": "os.system", "state": "touch PWNED"}})
    sneaky = tmp_path / "sneaky.safetensors"
    from ruvector_attention.state import _digest

    meta = {"format": FORMAT, "version": "1", "objects": doc, "sha256": _digest(doc, {})}
    sneaky.write_bytes(save({}, metadata=meta))
    assert ra.load_state(sneaky) == {"x": "touch PWNED"}
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.timing
@posix_only
def test_a_killed_writer_always_leaves_a_whole_previous_file(tmp_path):
    # Handshake: each kill is sent while a write is under way (its temporary file exists), and a
    # temporary file left behind proves the kill landed between its creation and the rename.
    path = tmp_path / "state.safetensors"
    mid_write = 0
    for trial in range(12):
        writer = subprocess.Popen(
            [sys.executable, str(SCRIPTS / "state_writer.py"), str(path)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert writer.stdout is not None
        writer.stdout.readline()  # at least one complete write
        before = {p for p in os.listdir(tmp_path) if p.endswith(".tmp")}
        deadline = time.monotonic() + 120  # a bound for a broken writer, not a timing
        while not {p for p in os.listdir(tmp_path) if p.endswith(".tmp")} - before:
            assert writer.poll() is None and time.monotonic() < deadline, "no write seen"
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        writer.stdout.close()
        left = {p for p in os.listdir(tmp_path) if p.endswith(".tmp")} - before
        mid_write += bool(left)
        saved = ra.load_state(path, optimizer=ra.AdamW())
        step = saved["step"]
        assert step >= 1 and (saved["weights"] == step).all(), trial
        assert saved["optimizer"]["steps"] == step
    assert mid_write >= 6, f"only {mid_write} of 12 kills landed inside a write"
    # Killed writers may leave a stray temporary file, never a damaged target.
    leftovers = [p for p in os.listdir(tmp_path) if p != "state.safetensors"]
    assert all(p.startswith(".state.safetensors.") and p.endswith(".tmp") for p in leftovers)
