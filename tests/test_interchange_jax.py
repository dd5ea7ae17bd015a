"""JAX CPU arrays given to the NumPy API: read through DLPack without a copy (they are read-only,
which every call that only reads accepts), with results equal to the same data as NumPy arrays."""

import numpy as np
import pytest

from frameworks import require

pytestmark = pytest.mark.jax
jax = require("jax", "jax")
import jax.numpy as jnp  # noqa: E402

import ruvector_attention as ra  # noqa: E402
from ruvector_attention._arrays import as_float32  # noqa: E402


def test_jax_arrays_are_read_without_a_copy_and_give_the_numpy_results():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((32, 16)).astype(np.float32)
    p = (a + 0.3 * rng.standard_normal(a.shape)).astype(np.float32)
    ja, jp = jnp.asarray(a), jnp.asarray(p)
    view = as_float32(ja, "anchors")
    assert view.ctypes.data == ja.unsafe_buffer_pointer() and not view.flags.writeable
    loss = ra.InfoNCELoss(0.1)
    assert loss.batch(ja, jp) == loss.batch(a, p)
    value, grads = loss.batch_with_gradients(ja, jp, ja[:8])
    expected_value, expected = loss.batch_with_gradients(a, p, a[:8])
    assert value == expected_value
    np.testing.assert_array_equal(grads.anchors, expected.anchors)
    miner = ra.HardNegativeMiner.hardest()
    np.testing.assert_array_equal(
        miner.mine_batch(ja, None, ja, 3), miner.mine_batch(a, None, a, 3)
    )
    got = ra.mine_hard_negatives(ja[:4], ja, k=2)
    np.testing.assert_array_equal(got.indices, ra.mine_hard_negatives(a[:4], a, k=2).indices)
