"""The torch.optim subclasses follow torch.optim.SGD / Adam / AdamW, share their state dicts
both ways, take schedulers, and refuse what they do not implement."""

import numpy as np
import pytest

from frameworks import require

pytestmark = pytest.mark.torch
torch = require("torch", "torch")
import ruvector_attention.torch as rat  # noqa: E402

SHAPES = [(7, 5), (5,), (3, 4, 2)]


def _params(rng):
    return [torch.nn.Parameter(torch.tensor(rng.normal(size=s).astype(np.float32))) for s in SHAPES]


def _groups(params, **extra):
    # Two groups with their own hyper-parameters: the first with the defaults.
    return [{"params": params[:2]}, {"params": params[2:], **extra}]


CASES = [
    ("SGD", dict(lr=0.05), dict(lr=0.01, momentum=0.9, nesterov=True, weight_decay=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.5), dict(momentum=0.0, weight_decay=0.2)),
    ("Adam", dict(lr=0.01, weight_decay=0.01), dict(lr=0.003, betas=(0.8, 0.99), eps=1e-6)),
    ("AdamW", dict(lr=0.01), dict(lr=0.002, weight_decay=0.3, betas=(0.5, 0.9))),
]


def _grad_sequence(rng, steps):
    return [[rng.normal(size=s).astype(np.float32) for s in SHAPES] for _ in range(steps)]


def _run(opt, params, grads, scheduler=None, skip=None):
    for t, gs in enumerate(grads):
        for k, (p, g) in enumerate(zip(params, gs)):
            # Parameter 1 has no gradient on some steps: it must be skipped (its step count lags).
            p.grad = None if skip is not None and k == 1 and t % skip == 0 else torch.tensor(g)
        opt.step()
        if scheduler is not None:
            scheduler.step()


def _assert_close(ours, theirs, steps):
    # Float32 round-off accumulated over the steps (both sides round every operation).
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("name,defaults,group", CASES)
def test_follows_torch_optim_for_1000_steps_with_param_groups(rng, name, defaults, group):
    start = _params(rng)
    ours = [torch.nn.Parameter(p.detach().clone()) for p in start]
    theirs = [torch.nn.Parameter(p.detach().clone()) for p in start]
    opt = getattr(rat, name)(_groups(ours, **group), **defaults)
    ref = getattr(torch.optim, name)(_groups(theirs, **group), **defaults)
    grads = _grad_sequence(rng, 1000)
    _run(opt, ours, grads, skip=7)
    _run(ref, theirs, grads, skip=7)
    _assert_close(ours, theirs, 1000)
    ours_state, their_state = opt.state_dict(), ref.state_dict()
    assert ours_state["state"].keys() == their_state["state"].keys()
    for idx, state in their_state["state"].items():
        assert ours_state["state"][idx].keys() == state.keys()
        for key, value in state.items():
            if key == "step":
                assert float(ours_state["state"][idx][key]) == float(value)


@pytest.mark.parametrize("name,defaults,group", CASES)
@pytest.mark.parametrize("direction", ["torch_to_ours", "ours_to_torch"])
def test_state_dicts_move_both_ways_mid_training(rng, name, defaults, group, direction):
    start = _params(rng)
    grads = _grad_sequence(rng, 400)
    # Reference: torch's optimizer for all 400 steps.
    theirs = [torch.nn.Parameter(p.detach().clone()) for p in start]
    ref = getattr(torch.optim, name)(_groups(theirs, **group), **defaults)
    _run(ref, theirs, grads)

    first_cls, second_cls = (
        (getattr(torch.optim, name), getattr(rat, name))
        if direction == "torch_to_ours"
        else (getattr(rat, name), getattr(torch.optim, name))
    )
    params = [torch.nn.Parameter(p.detach().clone()) for p in start]
    first = first_cls(_groups(params, **group), **defaults)
    _run(first, params, grads[:200])
    saved = first.state_dict()
    resumed = [torch.nn.Parameter(p.detach().clone()) for p in params]
    second = second_cls(_groups(resumed, lr=123.0), lr=456.0)  # hyper-parameters come from the dict
    second.load_state_dict(saved)
    _run(second, resumed, grads[200:])
    _assert_close(resumed, theirs, 400)


@pytest.mark.parametrize("name", ["SGD", "AdamW"])
def test_a_torch_scheduler_drives_both_alike(rng, name):
    start = _params(rng)
    ours = [torch.nn.Parameter(p.detach().clone()) for p in start]
    theirs = [torch.nn.Parameter(p.detach().clone()) for p in start]
    opt = getattr(rat, name)(ours, lr=0.05)
    ref = getattr(torch.optim, name)(theirs, lr=0.05)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=50, eta_min=1e-3)
    ref_sched = torch.optim.lr_scheduler.CosineAnnealingLR(ref, T_max=50, eta_min=1e-3)
    grads = _grad_sequence(rng, 120)
    lrs = []
    for gs in grads:
        for p, q, g in zip(ours, theirs, gs):
            p.grad, q.grad = torch.tensor(g), torch.tensor(g)
        opt.step()
        ref.step()
        lrs.append((opt.param_groups[0]["lr"], ref.param_groups[0]["lr"]))
        sched.step()
        ref_sched.step()
    assert all(a == b for a, b in lrs) and len({a for a, _ in lrs}) > 50
    _assert_close(ours, theirs, 120)


def test_closure_zero_grad_and_params_without_grads(rng):
    w = torch.nn.Parameter(torch.ones(3))
    frozen = torch.nn.Parameter(torch.ones(2))
    opt = rat.AdamW([w, frozen], lr=0.1)

    def closure():
        opt.zero_grad()
        loss = (w * torch.tensor([1.0, 2.0, 3.0])).sum()
        loss.backward()
        return loss

    assert opt.step(closure).item() == 6.0
    assert torch.all(w < 1) and torch.equal(frozen.detach(), torch.ones(2))
    assert frozen not in opt.state and int(opt.state[w]["step"]) == 1
    opt.zero_grad()
    assert w.grad is None


def test_update_is_in_place_and_visible_to_autograd():
    w = torch.nn.Parameter(torch.ones(3))
    storage = w.data_ptr()
    opt = rat.SGD([w], lr=0.5)
    loss = (w * w).sum()
    w.grad = torch.ones(3)
    opt.step()
    assert w.data_ptr() == storage and torch.equal(w.detach(), torch.full((3,), 0.5))
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


# -- the kernel arguments cached between steps ---------------------------------------------------


def _both(name, start, **kwargs):
    ours = [torch.nn.Parameter(p.detach().clone()) for p in start]
    theirs = [torch.nn.Parameter(p.detach().clone()) for p in start]
    return (
        ours,
        getattr(rat, name)(ours, **kwargs),
        theirs,
        getattr(torch.optim, name)(theirs, **kwargs),
    )


def _step_both(pairs, grads):
    ours, opt, theirs, ref = pairs
    for p, q, g in zip(ours, theirs, grads):
        p.grad, q.grad = torch.tensor(g), torch.tensor(g)
    opt.step()
    ref.step()


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW"])
def test_what_changes_between_steps_is_seen_by_the_next_step(rng, name):
    # The views of parameters and state are made once and reused: each change below must reach
    # the kernel (a stale view would update the old memory and leave the new one untouched).
    kwargs = dict(lr=0.05, momentum=0.9) if name == "SGD" else dict(lr=0.05)
    pairs = _both(name, _params(rng), **kwargs)
    ours, opt, theirs, ref = pairs
    grads = _grad_sequence(rng, 8)
    _step_both(pairs, grads[0])
    # 1. A parameter given new storage of the same shape.
    fresh = rng.normal(size=SHAPES[0]).astype(np.float32)
    ours[0].data, theirs[0].data = torch.tensor(fresh), torch.tensor(fresh)
    _step_both(pairs, grads[1])
    _assert_close(ours, theirs, 2)
    # 2. A state tensor replaced by the user (both sides alike).
    key = "momentum_buffer" if name == "SGD" else "exp_avg"
    for o, p in ((opt, ours[2]), (ref, theirs[2])):
        o.state[p][key] = torch.full(SHAPES[2], 0.25)
    _step_both(pairs, grads[2])
    _assert_close(ours, theirs, 3)
    # 3. A state tensor given new storage in place.
    for o, p in ((opt, ours[1]), (ref, theirs[1])):
        o.state[p][key].set_(torch.full(SHAPES[1], -0.5))
    _step_both(pairs, grads[3])
    _assert_close(ours, theirs, 4)
    # 4. A parameter that skips a step, then a group whose membership changes.
    ours[1].grad = theirs[1].grad = None
    for p, q, g in zip(ours[::2], theirs[::2], grads[4][::2]):
        p.grad, q.grad = torch.tensor(g), torch.tensor(g)
    opt.step()
    ref.step()
    _step_both(pairs, grads[5])
    _assert_close(ours, theirs, 6)
    if name != "SGD":
        steps = [float(opt.state[p]["step"]) for p in ours]
        assert steps == [float(ref.state[p]["step"]) for p in theirs] == [6.0, 5.0, 6.0]


def test_a_parameter_viewed_smaller_at_the_same_address_is_updated_at_its_new_size():
    # p.data = p.data[:3] keeps the data pointer and changes the shape: the cached 6-element view
    # must not be reused (it would write the 3 elements past the new end).
    storage = torch.zeros(6)
    w = torch.nn.Parameter(storage)
    opt = rat.SGD([w], lr=1.0)
    w.grad = torch.ones(6)
    opt.step()
    w.data = storage[:3]
    w.grad = torch.ones(3)
    opt.step()
    assert storage.tolist() == [-2.0, -2.0, -2.0, -1.0, -1.0, -1.0]


def test_momentum_switched_on_mid_training_follows_torch(rng):
    pairs = _both("SGD", _params(rng), lr=0.05)
    ours, opt, theirs, ref = pairs
    grads = _grad_sequence(rng, 6)
    for t, gs in enumerate(grads):
        if t == 3:
            opt.param_groups[0]["momentum"] = ref.param_groups[0]["momentum"] = 0.9
        _step_both(pairs, gs)
    _assert_close(ours, theirs, 6)
    assert all("momentum_buffer" in opt.state[p] for p in ours)


def test_step_counts_advance_in_place_and_load_from_numbers():
    w = torch.nn.Parameter(torch.zeros(2))
    opt = rat.AdamW([w], lr=0.1)
    w.grad = torch.ones(2)
    opt.step()
    held = opt.state[w]["step"]
    opt.step()
    assert held is opt.state[w]["step"] and float(held) == 2.0  # torch advances its tensor too
    # A state saved with a plain number (older checkpoints) steps on from it.
    saved = opt.state_dict()
    saved["state"][0]["step"] = 7
    opt.load_state_dict(saved)
    opt.step()
    step = opt.state[w]["step"]
    assert isinstance(step, torch.Tensor) and step.dtype == torch.float32 and float(step) == 8.0


# -- errors ---------------------------------------------------------------------------------------


def test_sparse_gradients_are_refused():
    emb = torch.nn.Embedding(10, 3, sparse=True)
    opt = rat.Adam(emb.parameters())
    emb(torch.tensor([1, 2])).sum().backward()
    with pytest.raises(RuntimeError, match="does not support sparse gradients"):
        opt.step()


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda p: rat.Adam(p, amsgrad=True), "amsgrad=True is not supported"),
        (lambda p: rat.AdamW(p, maximize=True), "maximize=True is not supported"),
        (lambda p: rat.SGD(p, momentum=0.9, dampening=0.1), "dampening must be 0"),
        (lambda p: rat.SGD(p, nesterov=True), "nesterov=True requires momentum > 0"),
        (lambda p: rat.Adam(p, lr=-1.0), "lr"),
        (lambda p: rat.Adam(p, betas=(1.0, 0.9)), "beta1"),
        (lambda p: rat.Adam(p, eps=0.0), "eps"),
        (lambda p: rat.AdamW(p, weight_decay=float("nan")), "weight_decay"),
        (lambda p: rat.SGD([{"params": p, "momentum": -1.0}]), "momentum"),
    ],
)
def test_unsupported_options_and_bad_hyper_parameters(make, match):
    with pytest.raises(ValueError, match=match):
        make([torch.nn.Parameter(torch.zeros(2))])


def test_a_loaded_state_with_unsupported_options_is_refused_at_step():
    p = torch.nn.Parameter(torch.zeros(2))
    ref = torch.optim.Adam([p], amsgrad=True)
    ours = rat.AdamW([torch.nn.Parameter(torch.zeros(2))])
    ours.load_state_dict(torch.optim.AdamW([p]).state_dict())
    ours.param_groups[0]["params"][0].grad = torch.ones(2)
    ours.step()  # a plain AdamW state loads and steps
    adam = rat.Adam([torch.nn.Parameter(torch.zeros(2))])
    adam.load_state_dict(ref.state_dict())
    adam.param_groups[0]["params"][0].grad = torch.ones(2)
    with pytest.raises(ValueError, match="amsgrad=True is not supported"):
        adam.step()
    wrong = rat.Adam([torch.nn.Parameter(torch.zeros(2))])
    wrong.load_state_dict(torch.optim.AdamW([p]).state_dict())
    wrong.param_groups[0]["params"][0].grad = torch.ones(2)
    with pytest.raises(ValueError, match="decoupled_weight_decay=True does not match Adam"):
        wrong.step()


@pytest.mark.parametrize(
    "param,error,match",
    [
        (torch.zeros(3, dtype=torch.float64), TypeError, "must be float32"),
        (torch.zeros(3, 4).t(), ValueError, "must be contiguous"),
        (torch.zeros(3, device="meta"), ValueError, "is on device meta"),
    ],
)
def test_parameters_the_kernels_cannot_update_in_place(param, error, match):
    p = torch.nn.Parameter(param)
    p.grad = torch.zeros_like(param)
    opt = rat.SGD([p], lr=0.1)
    with pytest.raises(error, match=r"param_groups\[0\]\['params'\]\[0\].*" + match):
        opt.step()


@pytest.mark.parametrize("name,defaults,group", CASES)
@pytest.mark.parametrize("family", ["ours", "torch"])
def test_save_state_round_trips_torch_optimizers_mid_training(
    tmp_path, rng, name, defaults, group, family
):
    # The report: save_state(optimizer=<ruvector_attention.torch.AdamW>) failed (integer dict
    # keys, tensors), although any object with state_dict() was documented to save.
    import ruvector_attention as ra

    make = getattr(rat if family == "ours" else torch.optim, name)
    start = _params(rng)
    grads = _grad_sequence(rng, 20)
    params = [torch.nn.Parameter(p.detach().clone()) for p in start]
    opt = make(_groups(params, **group), **defaults)
    _run(opt, params, grads[:10], skip=3)
    path = tmp_path / "opt.safetensors"
    ra.save_state(path, optimizer=opt, weights=[p.detach() for p in params])
    fresh_params = [torch.nn.Parameter(p.detach().clone()) for p in start]
    fresh = make(_groups(fresh_params, lr=0.5), lr=0.5)
    saved = ra.load_state(path, optimizer=fresh)
    with torch.no_grad():
        for p, w in zip(fresh_params, saved["weights"]):
            assert isinstance(w, torch.Tensor)
            p.copy_(w)
    assert fresh.state_dict()["param_groups"] == opt.state_dict()["param_groups"]
    _run(opt, params, grads[10:], skip=3)
    _run(fresh, fresh_params, grads[10:], skip=3)
    for a, b in zip(params, fresh_params):
        assert torch.equal(a, b)
