"""Every way to call an optimizer wrongly gets a clear exception, and nothing is written."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import ruvector_attention as ra
import ruvector_attention.training as training
from ruvector_attention import SGD, Adam, AdamW, RuvectorError, ShapeError

OPTIMIZERS = [
    lambda: SGD(lr=0.1, momentum=0.9),
    lambda: SGD(lr=0.1),
    lambda: Adam(lr=0.1),
    lambda: AdamW(lr=0.1),
]


def f32(*shape):
    return np.ones(shape, dtype=np.float32)


@pytest.fixture(params=range(len(OPTIMIZERS)), ids=["sgd-momentum", "sgd", "adam", "adamw"])
def opt(request):
    return OPTIMIZERS[request.param]()


@pytest.mark.parametrize(
    "dtype, label",
    [(np.int32, "int32"), (np.complex64, "complex64"), (np.float64, "float64"), (np.bool_, "bool")],
)
def test_params_of_another_dtype_raise_type_error_and_are_not_copied(opt, dtype, label):
    p = np.ones(4, dtype=dtype)
    before = p.copy()
    with pytest.raises(TypeError, match=r"params\[0\] must be a float32 numpy.ndarray"):
        opt.step(p, f32(4))
    np.testing.assert_array_equal(p, before)


def test_object_and_list_params_raise_type_error(opt):
    with pytest.raises(TypeError, match=r"params must be a float32 numpy\.ndarray to be updated"):
        opt.step([[1.0, 2.0]], f32(2))
    with pytest.raises(TypeError, match=r"must be a numpy\.ndarray or a list"):
        opt.step(3.0, f32(1))
    with pytest.raises(TypeError, match=r"params\[0\] must be a float32"):
        opt.step(np.array([1.0, None]), f32(2))


@pytest.mark.parametrize(
    "grad, message",
    [
        (np.ones(4, dtype=np.int64), "real floating-point numbers, got dtype int64"),
        (np.ones(4, dtype=np.complex128), "got dtype complex128"),
        (np.array(["a", "b", "c", "d"]), "got dtype <U1"),
        (np.array([1.0, None, 2.0, 3.0], dtype=object), "got dtype object"),
        (np.ones(4, dtype=bool), "got dtype bool"),
        ([[1.0], [1.0, 2.0]], "must be an array of real floats"),
    ],
)
def test_grads_of_bad_dtype_raise_type_error(opt, grad, message):
    p = f32(4)
    with pytest.raises(TypeError, match=message):
        opt.step(p, [grad] if isinstance(grad, list) else grad)
    assert np.all(p == 1.0)
    assert opt.steps == 0


def test_read_only_params_raise(opt):
    p = f32(4)
    p.flags.writeable = False
    with pytest.raises(ValueError, match=r"params\[0\] is read-only"):
        opt.step(p, f32(4))
    assert opt.steps == 0


def test_non_contiguous_params_raise(opt):
    base = np.ones((4, 4), dtype=np.float32)
    with pytest.raises(ValueError, match=r"params\[0\] must be C-contiguous"):
        opt.step(base[:, 1], f32(4))
    with pytest.raises(ValueError, match="C-contiguous"):
        opt.step(np.asfortranarray(base), f32(4, 4))
    assert np.all(base == 1.0)


def test_grads_of_another_shape_raise_shape_error(opt):
    p = f32(4)
    with pytest.raises(
        ShapeError, match=r"grads\[0\] has shape \(5,\) but params\[0\] has shape \(4,\)"
    ):
        opt.step(p, f32(5))
    with pytest.raises(ShapeError, match=r"grads\[0\] has shape \(2, 2\)"):
        opt.step(p, f32(2, 2))
    assert np.all(p == 1.0)


def test_params_aliasing_grads_raise(opt):
    p = f32(4)
    with pytest.raises(ValueError, match="shares memory"):
        opt.step(p, p)
    buf = np.ones(8, np.float32)
    with pytest.raises(ValueError, match="shares memory"):
        opt.step(buf[:4], buf[2:6])
    assert np.all(buf == 1.0)
    assert np.all(p == 1.0)


def test_params_aliasing_each_other_raise(opt):
    buf = np.ones(8, np.float32)
    with pytest.raises(ValueError, match="shares memory"):
        opt.step([buf[:5], buf[3:]], [f32(5), f32(5)])
    assert np.all(buf == 1.0)
    # Disjoint views of one buffer are fine.
    opt.step([buf[:4], buf[4:]], [f32(4), f32(4)])
    assert np.all(buf != 1.0)


def test_size_change_between_steps_raises_and_keeps_state(opt):
    p = f32(4)
    opt.step(p, f32(4))
    saved = opt.state_dict()
    with pytest.raises(ShapeError, match=r"params\[0\] has shape \(5,\) but the optimizer state"):
        opt.step(f32(5), f32(5))
    with pytest.raises(ShapeError, match="params has 2 arrays but the optimizer state"):
        opt.step([p, f32(2)], [f32(4), f32(2)])
    after = opt.state_dict()
    assert after["steps"] == saved["steps"] == 1
    for key, arrays in (saved["state"] or {}).items():
        np.testing.assert_array_equal(after["state"][key][0], arrays[0])


def test_empty_and_mismatched_lists_raise_shape_error(opt):
    with pytest.raises(ShapeError, match="params is an empty list"):
        opt.step([], [])
    with pytest.raises(ShapeError, match="grads has 1 arrays but params has 2"):
        opt.step([f32(2), f32(3)], [f32(2)])
    assert issubclass(ShapeError, ValueError) and issubclass(ShapeError, RuvectorError)


def test_failed_first_step_leaves_no_state(opt):
    good, bad = f32(3), np.ones(3, dtype=np.float64)
    with pytest.raises(TypeError):
        opt.step([good, bad], [f32(3), f32(3)])
    assert np.all(good == 1.0)  # the first array was not updated either
    assert opt.steps == 0
    opt.step(f32(7), f32(7))  # the failed call did not fix the shapes


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: SGD(lr=-0.1), "lr must be >= 0"),
        (lambda: SGD(lr=float("nan")), "lr must be finite"),
        (lambda: SGD(momentum=-1.0), "momentum must be >= 0"),
        (lambda: SGD(weight_decay=-1.0), "weight_decay must be >= 0"),
        (lambda: SGD(nesterov=True), "nesterov=True requires momentum > 0"),
        (lambda: training.SGD(momentum=0.9, nesterov=True).with_momentum(0.0), "requires momentum"),
        (lambda: training.SGD().with_nesterov(True), "requires momentum > 0"),
        (lambda: Adam(lr=-1e-3), "lr must be >= 0"),
        (lambda: Adam(betas=(1.0, 0.999)), r"beta1 must be in \[0, 1\)"),
        (lambda: Adam(betas=(0.9, -0.1)), r"beta2 must be in \[0, 1\)"),
        (lambda: Adam(eps=0.0), "eps must be > 0"),
        (lambda: Adam(weight_decay=-0.1), "weight_decay must be >= 0"),
        (lambda: AdamW(weight_decay=-0.1), "weight_decay must be >= 0"),
        (lambda: training.AdamW().with_betas(0.9, 1.5), r"beta2 must be in \[0, 1\)"),
        (lambda: training.Adam().with_epsilon(-1.0), "eps must be > 0"),
        (lambda: Adam(eps=1e-39), "below float32's normal range"),
        (lambda: training.SGD(dim=-1), "dim must be >= 0"),
        (lambda: ra.clip_grad_norm(f32(2), -1.0), "max_norm must be >= 0"),
        (lambda: ra.set_num_threads(-1), "n must be >= 0"),
    ],
)
def test_invalid_hyper_parameters_raise_argument_error(make, message):
    with pytest.raises(ra.ArgumentError, match=message):
        make()


def test_invalid_hyper_parameter_types_raise_type_error():
    with pytest.raises(TypeError, match="lr must be a real number"):
        SGD(lr="0.1")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="betas must be a pair"):
        Adam(betas=0.9)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="dim must be an int"):
        training.AdamW(dim=1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="n must be an int"):
        ra.set_num_threads(1.0)  # type: ignore[arg-type]


def test_lr_setter_validates():
    opt = SGD()
    with pytest.raises(ValueError, match="lr must be >= 0"):
        opt.lr = -1.0
    with pytest.raises(ValueError, match="lr must be >= 0"):
        training.SGD().set_learning_rate(-1.0)
    assert opt.lr == 0.01


def test_clip_grad_norm_rejects_what_it_cannot_update_in_place():
    with pytest.raises(TypeError, match=r"grads\[0\] must be a float32"):
        ra.clip_grad_norm(np.ones(3), 1.0)
    g = f32(3)
    g.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        ra.clip_grad_norm(g, 1.0)
    with pytest.raises(ValueError, match="shares memory"):
        ra.clip_grad_norm([g.copy()] * 2, 1.0)
    with pytest.raises(ShapeError, match="empty list"):
        ra.clip_grad_norm([], 1.0)


def test_load_state_dict_rejects_wrong_input():
    opt = Adam(lr=0.1)
    opt.step(f32(3), f32(3))
    good = opt.state_dict()
    with pytest.raises(ValueError, match="state_dict is for 'Adam', not 'AdamW'"):
        AdamW().load_state_dict(good)
    with pytest.raises(TypeError, match="state_dict must be a dict"):
        Adam().load_state_dict([1, 2])  # type: ignore[arg-type]
    bad = Adam(lr=0.1).state_dict() | {"state": {"exp_avg": [np.ones(3)], "exp_avg_sq": [f32(3)]}}
    bad["shapes"] = [[3]]
    with pytest.raises(TypeError, match=r"state\['exp_avg'\]\[0\] must be a float32"):
        Adam().load_state_dict(bad)
    mismatched = good | {"shapes": [[4]]}
    with pytest.raises(ShapeError, match="does not match the saved parameter shapes"):
        Adam().load_state_dict(mismatched)
    with pytest.raises(ValueError, match="unknown state key"):
        Adam().load_state_dict(good | {"state": {"velocity": [f32(3)]}})
    with pytest.raises(ValueError, match="lr must be >= 0"):
        Adam().load_state_dict(good | {"hyper": good["hyper"] | {"lr": -1.0}})


@pytest.mark.parametrize(
    "make, key",
    [
        (lambda: Adam(lr=0.1), "exp_avg_sq"),
        (lambda: Adam(lr=0.1), "exp_avg"),
        (lambda: AdamW(lr=0.1), "exp_avg_sq"),
        (lambda: SGD(lr=0.1, momentum=0.9), "momentum_buffer"),
    ],
)
def test_load_state_dict_requires_every_state_key_and_changes_nothing_when_refused(make, key):
    # The report: Adam with exp_avg_sq missing was zero-filled with steps=3 kept; the next step
    # moved the parameter by -0.19985 instead of -0.1.
    saved = make()
    p = f32(3)
    for _ in range(3):
        saved.step(p, f32(3))
    state = saved.state_dict()
    del state["state"][key]
    target = make()
    q = f32(3)
    target.step(q, 2 * f32(3))
    before = target.state_dict()
    with pytest.raises(ValueError, match=f"lacks '{key}'"):
        target.load_state_dict(state)
    after = target.state_dict()
    assert after["steps"] == before["steps"] and after["hyper"] == before["hyper"]
    for name, arrays in before["state"].items():
        np.testing.assert_array_equal(after["state"][name], arrays)


def test_momentum_switched_on_after_the_last_step_saves_and_loads():
    opt = training.SGD(lr=0.1)
    opt.step(f32(3), f32(3))
    opt.with_momentum(0.9)
    state = opt.state_dict()
    np.testing.assert_array_equal(state["state"]["momentum_buffer"], [np.zeros(3)])
    restored = SGD(lr=0.1, momentum=0.9)
    restored.load_state_dict(state)
    p, q = f32(3), f32(3)
    opt.step(p, f32(3))
    restored.step(q, f32(3))
    np.testing.assert_array_equal(p, q)


@given(
    data=st.data(),
    dtype=st.sampled_from(["float16", "float32", "float64", "int8", "int64", "bool", "complex64"]),
)
def test_fuzz_param_and_grad_dtypes_and_shapes(data, dtype):
    """Whatever arrives, the call either succeeds on float32 params or raises one of the
    documented exceptions, and a failed call never changes the parameters."""
    p_shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5))
    g_shape = data.draw(
        st.one_of(st.just(p_shape), hnp.array_shapes(min_dims=0, max_dims=3, max_side=5))
    )
    p = np.ones(p_shape, dtype=dtype)
    g = data.draw(
        hnp.arrays(dtype=data.draw(st.sampled_from(["float32", "float64", "int32"])), shape=g_shape)
    )
    opt = data.draw(st.sampled_from(OPTIMIZERS))()
    before = p.copy()
    try:
        opt.step(p, g)
    except (TypeError, ValueError):
        np.testing.assert_array_equal(p, before)
        return
    assert p.dtype == np.float32
    assert g.dtype.kind == "f"
    assert g.shape == p.shape
