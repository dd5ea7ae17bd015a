"""`ruvector-attention mine` run as a subprocess: the result of the API, memory-mapped float16
input, exit 2 with one line for bad input before any work, and --out never half-written."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import ruvector_attention as ra

COMMAND = [sys.executable, "-m", "ruvector_attention", "mine", "--no-progress"]


def run(*flags, cwd):
    return subprocess.run([*COMMAND, *flags], capture_output=True, text=True, timeout=300, cwd=cwd)


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    corpus = rng.standard_normal((500, 16)).astype(np.float16)
    queries = corpus[:20].astype(np.float32) + 0.1
    positives = np.stack([np.arange(20), np.full(20, -1)], axis=1)  # (Q, P), -1 padded
    paths = {}
    for name, arr in (("q", queries), ("c", corpus), ("p", positives)):
        paths[name] = str(tmp_path / f"{name}.npy")
        np.save(paths[name], arr)
    return queries, corpus, paths


def test_the_command_writes_what_the_api_returns(tmp_path, files):
    queries, corpus, paths = files
    out = tmp_path / "neg.npz"
    flags = ["--k", "7", "--range-min", "2", "--relative-margin", "0.05", "--sampling", "random"]
    done = run("--queries", paths["q"], "--corpus", paths["c"], "--positives", paths["p"],
               "--seed", "4", "--out", str(out), *flags, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "20 queries" in done.stdout
    expected = ra.mine_hard_negatives(
        queries, corpus, positives=[np.array([i]) for i in range(20)], k=7, range_min=2,
        relative_margin=0.05, sampling="random", seed=4,
    )  # fmt: skip
    with np.load(out) as saved:
        np.testing.assert_array_equal(saved["indices"], expected.indices)
        assert saved["scores"].tobytes() == expected.scores.tobytes()
        np.testing.assert_array_equal(saved["rescored"], expected.rescored)
    # The work is reported: the candidates scored exactly per query.
    mean, most = expected.rescored.mean(), expected.rescored.max()
    assert f"scored exactly per query: mean {mean:.1f}, max {most}" in done.stdout


@pytest.mark.parametrize(
    "change, message",
    [
        ({"--corpus": "missing.npy"}, "corpus file not found"),
        ({"--k": "-1"}, "k must be >= 0"),
        ({"--relative-margin": "1.5"}, "relative_margin must be in [0, 1)"),
        ({"--positives": "bad_positives.npy"}, "positive index 999"),
        ({"--queries": "narrow.npy"}, "corpus must be (N, 8)"),
        ({"--queries": "text.npy"}, "cannot read queries"),
        ({"--positives": "minus_two.npy"}, "positives of query 3 hold -2"),
        ({"--out": "missing/dir/o.npz"}, "the folder"),
        # Not an .npz: a candidate store, whose directory must be empty (or --resume/--overwrite).
        ({"--out": ".", "--k": None}, "is not empty: add --resume or --overwrite"),
        ({"--out": "store"}, "--k filters or samples: with a candidate store"),
        ({"--candidates": "5"}, "--candidates is for a candidate store"),
        ({"--out": "store", "--k": None, "--candidates": "0"}, "candidates must be"),
        (
            {
                "--queries": "many.npy",
                "--corpus": "tall.npy",
                "--positives": None,
                "--range-max": "1000000000",
            },
            "GiB",
        ),
    ],
)
def test_bad_input_is_one_line_exit_2_and_leaves_out_alone(tmp_path, files, change, message):
    _, _, paths = files
    np.save(tmp_path / "bad_positives.npy", np.full(20, 999))
    np.save(tmp_path / "narrow.npy", np.ones((20, 8), np.float32))
    (tmp_path / "text.npy").write_text("not an array")
    minus_two = np.stack([np.arange(20), np.full(20, -1)], axis=1)
    minus_two[3, 1] = -2  # -1 is the padding; -2 is a mistake
    np.save(tmp_path / "minus_two.npy", minus_two)
    np.save(tmp_path / "many.npy", np.ones((1000, 1), np.float32))
    tall = np.lib.format.open_memmap(tmp_path / "tall.npy", "w+", np.float16, (10**7, 1))
    del tall  # 20 MB of zeros on disk: 10^7 ranks kept for 1000 queries would need 480 GB
    out = tmp_path / "neg.npz"
    out.write_bytes(b"previous result")
    flags = {"--queries": paths["q"], "--corpus": paths["c"], "--positives": paths["p"],
             "--k": "5", "--out": str(out)}  # fmt: skip
    flags.update(change)  # a flag changed to None is left out
    done = run(*[x for pair in flags.items() if pair[1] is not None for x in pair], cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert message in done.stderr
    assert out.read_bytes() == b"previous result"


def test_the_near_duplicate_filter_from_the_command(tmp_path, files):
    queries, corpus, paths = files
    out = tmp_path / "neg.npz"
    done = run("--queries", paths["q"], "--corpus", paths["c"], "--positives", paths["p"],
               "--k", "4", "--max-positive-similarity", "0.3", "--out", str(out),
               cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    expected = ra.mine_hard_negatives(queries, corpus, positives=[np.array([i]) for i in range(20)],
                                      k=4, max_positive_similarity=0.3)  # fmt: skip
    plain = ra.mine_hard_negatives(queries, corpus, positives=[np.array([i]) for i in range(20)],
                                   k=4)  # fmt: skip
    with np.load(out) as saved:
        np.testing.assert_array_equal(saved["indices"], expected.indices)
    assert not np.array_equal(expected.indices, plain.indices)  # the filter removed something


def test_a_rank_window_past_the_corpus_runs(tmp_path, files):
    # The report: --range-max 100000000 on a 500-row corpus ended in a traceback or was killed.
    queries, corpus, paths = files
    out = tmp_path / "neg.npz"
    done = run("--queries", paths["q"], "--corpus", paths["c"], "--k", "3", "--range-min", "2",
               "--range-max", "100000000", "--out", str(out), cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    expected = ra.mine_hard_negatives(queries, corpus, k=3, range_min=2)
    with np.load(out) as saved:
        np.testing.assert_array_equal(saved["indices"], expected.indices)


def test_output_follows_the_umask_and_writes_through_a_link(tmp_path, files):
    # The report: outputs were mode 0600 under umask 0022, and a symbolic link --out was replaced
    # by a regular file while its target was left as it was.
    import os
    import stat

    _, _, paths = files
    flags = ["--queries", paths["q"], "--corpus", paths["c"], "--k", "3"]
    out = tmp_path / "neg.npz"
    old = os.umask(0o022)
    try:
        done = run(*flags, "--out", str(out), cwd=tmp_path)
    finally:
        os.umask(old)
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
    out.chmod(0o640)  # an existing file keeps its own mode
    assert run(*flags, "--out", str(out), cwd=tmp_path).returncode == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o640
    (tmp_path / "results").mkdir()
    target = tmp_path / "results" / "real.npz"
    target.write_bytes(b"old")
    link = tmp_path / "link.npz"
    link.symlink_to(target)
    assert run(*flags, "--out", str(link), cwd=tmp_path).returncode == 0
    assert link.is_symlink() and os.readlink(link) == str(target)
    with np.load(target) as saved:
        assert saved["indices"].shape == (20, 3)
    assert [p.name for p in (tmp_path / "results").iterdir()] == ["real.npz"]  # no stray temp
