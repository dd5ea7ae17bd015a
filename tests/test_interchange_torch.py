"""PyTorch CPU tensors given to the NumPy API: read through DLPack without a copy where the layout
allows, with results equal to the same data as NumPy arrays; tensors the CPU cannot read (another
device, requiring grad, bfloat16) refused with a message naming the reason."""

import numpy as np
import pytest

from frameworks import require

pytestmark = pytest.mark.torch
torch = require("torch", "torch")
import ruvector_attention as ra  # noqa: E402
from ruvector_attention._arrays import as_float32  # noqa: E402


@pytest.fixture
def data():
    gen = torch.Generator().manual_seed(0)
    anchors = torch.randn(32, 16, generator=gen)
    return anchors, anchors + 0.3 * torch.randn(32, 16, generator=gen)


def test_a_contiguous_float32_tensor_is_read_without_a_copy(data):
    anchors, _ = data
    view = as_float32(anchors, "anchors")
    assert view.ctypes.data == anchors.data_ptr()
    assert np.shares_memory(view, anchors.numpy())


def test_losses_miners_and_optimizers_give_the_numpy_results(data):
    anchors, positives = data
    a, p = anchors.numpy(), positives.numpy()
    loss = ra.InfoNCELoss(0.1)
    assert loss.batch(anchors, positives) == loss.batch(a, p)
    value, grads = loss.batch_with_gradients(anchors, positives, anchors[:8])
    expected_value, expected = loss.batch_with_gradients(a, p, a[:8])
    assert value == expected_value
    np.testing.assert_array_equal(grads.negatives, expected.negatives)
    margin = ra.LocalContrastiveLoss(0.5)
    assert margin.batch(anchors, positives, anchors[:4]) == margin.batch(a, p, a[:4])
    miner = ra.HardNegativeMiner.semi_hard(0.5)
    np.testing.assert_array_equal(
        miner.mine_batch(anchors, positives, anchors, 3), miner.mine_batch(a, p, a, 3)
    )
    reg = ra.SpectralRegularization(0.1)
    edges = np.array([[0, 1], [1, 2]])
    assert reg.laplacian(anchors, edges) == reg.laplacian(a, edges)
    # Gradients are only read: a tensor (or a list of them) is accepted, the parameter is NumPy.
    w1, w2 = np.zeros(16, np.float32), np.zeros(16, np.float32)
    ra.AdamW(lr=0.1).step(w1, anchors[0])
    ra.AdamW(lr=0.1).step([w2], [a[0]])
    np.testing.assert_array_equal(w1, w2)


def test_corpus_mining_reads_a_tensor_corpus(data):
    anchors, _ = data
    got = ra.mine_hard_negatives(anchors[:5], anchors, k=3, exclude_self=True)
    expected = ra.mine_hard_negatives(anchors.numpy()[:5], anchors.numpy(), k=3, exclude_self=True)
    np.testing.assert_array_equal(got.indices, expected.indices)
    np.testing.assert_array_equal(got.scores, expected.scores)


def test_strided_and_half_precision_tensors_are_converted(data):
    anchors, positives = data
    loss = ra.InfoNCELoss(0.1)
    transposed = anchors.T.contiguous().T  # a column-major view: DLPack carries the strides
    assert not transposed.is_contiguous()
    assert loss.batch(transposed, positives) == loss.batch(anchors, positives)
    half = anchors.half()
    assert loss.batch(half, positives) == loss.batch(half.float().numpy(), positives.numpy())


def test_tensors_the_cpu_cannot_read_are_refused_by_name():
    loss = ra.InfoNCELoss(0.1)
    ok = torch.ones(4, 3)
    with pytest.raises(ra.ArgumentError, match=r"anchors is on device meta.*CPU"):
        loss.batch(torch.empty(4, 3, device="meta"), ok)
    with pytest.raises(TypeError, match=r"positives cannot be read.*detach"):
        loss.batch(ok, torch.ones(4, 3, requires_grad=True))
    with pytest.raises(TypeError, match="anchors cannot be read as a CPU array"):
        loss.batch(ok.bfloat16(), ok)
    # A parameter is updated in place: a tensor is not silently copied and thrown away.
    with pytest.raises(TypeError, match=r"must be a float32 numpy\.ndarray to be updated in place"):
        ra.SGD(lr=0.1).step([torch.zeros(3)], [np.ones(3, np.float32)])
