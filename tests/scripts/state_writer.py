"""Writes ``save_state`` files in a loop until killed: state i holds weights filled with i.

Used by tests/test_state.py to kill a writer at random points. Usage: state_writer.py PATH
"""

from __future__ import annotations

import sys

import numpy as np

import ruvector_attention as ra


def main() -> None:
    path = sys.argv[1]
    opt = ra.AdamW(lr=0.1)
    w = np.zeros(4_000_000, np.float32)  # 16 MB: each write is long enough to be killed in
    i = 0
    while True:
        i += 1
        w[:] = i
        opt.step(w, np.ones_like(w))
        w[:] = i
        ra.save_state(path, step=i, weights=w, optimizer=opt)
        print(i, flush=True)


if __name__ == "__main__":
    main()
