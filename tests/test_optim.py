"""optim.py against torch's own AdamW and clip_grad_norm_, and the cosine schedule's landmarks."""
import io
import math
import shutil

import pytest
import torch

from optim import AdamW, clip_grad_norm_, cosine_lr

HYPER = dict(lr=1e-2, betas=(0.9, 0.95), weight_decay=0.1)  # defaults for the groups below


def make_params(seed=0):
    generator = torch.Generator().manual_seed(seed)
    shapes = [(7, 5), (5,), (3, 4), (4,)]
    return [torch.randn(s, generator=generator, dtype=torch.float64).requires_grad_() for s in shapes]


def make_groups(params):
    """Three groups that differ in lr, betas, eps and weight decay (one without decay)."""
    return [{"params": params[:1]},
            {"params": params[1:2], "weight_decay": 0.0, "lr": 3e-2},
            {"params": params[2:], "weight_decay": 0.05, "betas": (0.8, 0.99), "eps": 1e-6}]


def loss_at(params, step):
    a, b, c, d = params
    x = torch.linspace(-1, 1, 7, dtype=torch.float64) * (1 + step % 3)
    loss = (x @ a + b).tanh().pow(2).sum() + 0.1 * (c ** 3).sum()
    if step >= 5:  # d has no gradient for the first steps: its state starts late, as in torch
        loss = loss + (c @ d).sin().sum()
    return loss


def train(optimizer, params, steps, start=0):
    for step in range(start, start + steps):
        optimizer.zero_grad(set_to_none=True)
        loss_at(params, step).backward()
        if step % 4 == 3:  # a parameter without a gradient this step is skipped, by torch too
            params[2].grad = None
        optimizer.step()
    return params


def test_adamw_equals_torch_adamw_over_many_steps_and_groups():
    ours = make_params()
    theirs = make_params()
    train(AdamW(make_groups(ours), **HYPER), ours, 50)
    train(torch.optim.AdamW(make_groups(theirs), **HYPER, foreach=False), theirs, 50)
    for a, b, start in zip(ours, theirs, make_params()):
        assert (a - start).abs().max() > 1e-2  # every parameter really moved
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def test_capturable_adamw_with_a_tensor_lr_equals_the_host_version():
    """capturable=True (step on the device, lr a tensor: what a CUDA graph replays) is the same
    update as the host version."""
    host, device_side = make_params(), make_params()
    train(AdamW(make_groups(host), **HYPER), host, 30)
    optimizer = AdamW(make_groups(device_side), **HYPER, capturable=True)
    for group in optimizer.param_groups:
        group["lr"] = torch.tensor(group["lr"], dtype=torch.float64)
    train(optimizer, device_side, 30)
    for a, b in zip(host, device_side):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    assert all(torch.is_tensor(s["step"]) and s["step"].dim() == 0 for s in optimizer.state.values())


@pytest.mark.skipif(not torch.cuda.is_available() and not (shutil.which("g++") or shutil.which("clang++")),
                    reason="torch.compile on a CPU needs a C++ compiler")
def test_compiled_adamw_equals_the_eager_version_as_lr_changes():
    eager, compiled = make_params(), make_params()
    optimizers = AdamW(eager, **HYPER), AdamW(compiled, **HYPER, compiled=True)
    for step in range(8):
        for optimizer, params in zip(optimizers, (eager, compiled)):
            optimizer.param_groups[0]["lr"] = 1e-2 / (1 + step)  # the lr tensor follows a float lr
            optimizer.zero_grad(set_to_none=True)
            loss_at(params, step).backward()
            optimizer.step()
    for a, b in zip(eager, compiled):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    assert all(s["step"].item() == 8 or s["step"].item() == 3 for s in optimizers[1].state.values())


def test_adamw_state_matches_torch_layout():
    ours, theirs = make_params(), make_params()
    opt, ref = AdamW(make_groups(ours), **HYPER), torch.optim.AdamW(make_groups(theirs), **HYPER, foreach=False)
    train(opt, ours, 7)
    train(ref, theirs, 7)
    ours_state, theirs_state = opt.state_dict()["state"], ref.state_dict()["state"]
    assert ours_state.keys() == theirs_state.keys()
    for i in ours_state:
        assert ours_state[i].keys() == theirs_state[i].keys() == {"step", "exp_avg", "exp_avg_sq"}
        assert ours_state[i]["step"] == theirs_state[i]["step"]  # 7 steps, 5 for params[2], 2 for params[3]
        torch.testing.assert_close(ours_state[i]["exp_avg_sq"], theirs_state[i]["exp_avg_sq"], rtol=0, atol=1e-14)


def test_adamw_state_dict_round_trip_continues_exactly():
    straight = make_params()
    train(AdamW(make_groups(straight), **HYPER), straight, 20)

    resumed = make_params()
    first = AdamW(make_groups(resumed), **HYPER)
    train(first, resumed, 8)
    buffer = io.BytesIO()  # through torch.save/torch.load, as a checkpoint goes
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    second = AdamW(make_groups(resumed), **HYPER)
    second.load_state_dict(torch.load(buffer))
    train(second, resumed, 12, start=8)
    for a, b in zip(straight, resumed):
        assert torch.equal(a, b)


@pytest.mark.parametrize("bad", [dict(lr=-1.0), dict(betas=(0.9, 1.0)), dict(betas=(-0.1, 0.9)),
                                 dict(eps=-1e-8), dict(weight_decay=-0.1)])
def test_adamw_rejects_bad_hyperparameters(bad):
    name = next(iter(bad))
    with pytest.raises(ValueError, match=name):
        AdamW([torch.zeros(2, requires_grad=True)], **bad)


def test_adamw_rejects_sparse_gradients():
    embedding = torch.nn.Embedding(10, 3, sparse=True)
    embedding(torch.tensor([1, 2])).sum().backward()
    with pytest.raises(ValueError, match="sparse"):
        AdamW(embedding.parameters()).step()


def test_adamw_step_returns_the_closure_loss():
    p = torch.ones(3, requires_grad=True)
    opt = AdamW([p], lr=0.1)

    def closure():
        opt.zero_grad()
        loss = (p ** 2).sum()
        loss.backward()
        return loss

    assert opt.step(closure).item() == 3.0
    assert torch.all(p < 1)


def test_cosine_schedule_at_its_landmarks():
    kw = dict(max_lr=1.0, min_lr=0.1, warmup_steps=10, total_steps=110)
    assert cosine_lr(0, **kw) == 0.0
    assert cosine_lr(5, **kw) == pytest.approx(0.5)
    assert cosine_lr(10, **kw) == 1.0
    assert cosine_lr(60, **kw) == pytest.approx(0.55)  # cosine midpoint: halfway between max and min
    assert cosine_lr(85, **kw) == pytest.approx(0.1 + 0.9 * (1 + math.cos(0.75 * math.pi)) / 2)
    assert cosine_lr(110, **kw) == 0.1
    assert cosine_lr(500, **kw) == 0.1
    warmup = [cosine_lr(s, **kw) for s in range(0, 11)]
    assert all(a < b for a, b in zip(warmup, warmup[1:]))
    decay = [cosine_lr(s, **kw) for s in range(10, 120)]
    assert all(a >= b for a, b in zip(decay, decay[1:]))


def test_cosine_schedule_without_warmup_or_with_warmup_past_the_end():
    assert cosine_lr(0, 1.0, 0.0, 0, 100) == 1.0  # no warmup starts at the peak
    assert cosine_lr(25, 1.0, 0.0, 0, 100) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    assert cosine_lr(100, 1.0, 0.0, 0, 100) == 0.0
    # warmup_steps >= total_steps: the ramp, then min_lr from total_steps on; never 0 / 0
    assert cosine_lr(5, 1.0, 0.1, 20, 10) == pytest.approx(0.25)
    assert [cosine_lr(s, 1.0, 0.1, 10, 10) for s in (0, 5, 10, 11)] == [0.0, 0.5, 0.1, 0.1]
    assert cosine_lr(0, 1.0, 0.1, 0, 0) == 0.1


def grads_like(params, scale, seed=1):
    generator = torch.Generator().manual_seed(seed)
    for p in params:
        p.grad = torch.randn(p.shape, generator=generator, dtype=p.dtype) * scale


def test_clipping_matches_torch():
    ours, theirs = make_params(), make_params()
    grads_like(ours, 3.0)
    grads_like(theirs, 3.0)
    ours[1].grad = theirs[1].grad = None  # skipped by both
    norm = clip_grad_norm_(iter(ours), 1.0)  # a generator, as model.parameters() is
    reference = torch.nn.utils.clip_grad_norm_(theirs, 1.0)
    assert norm > 1.0
    torch.testing.assert_close(norm, reference, rtol=1e-14, atol=0)
    for a, b in zip(ours, theirs):
        assert (a.grad is None) == (b.grad is None)
        if a.grad is not None:
            torch.testing.assert_close(a.grad, b.grad, rtol=1e-14, atol=0)
    after = torch.linalg.vector_norm(torch.cat([p.grad.flatten() for p in ours if p.grad is not None]))
    assert after.item() == pytest.approx(1.0, abs=1e-5)


def test_clipping_leaves_gradients_at_or_below_max_norm_unchanged():
    params = make_params()
    grads_like(params, 0.01)
    before = [p.grad.clone() for p in params]
    true_norm = torch.linalg.vector_norm(torch.cat([g.flatten() for g in before]))
    norm = clip_grad_norm_(params, 1.0).item()
    assert norm == pytest.approx(true_norm.item(), rel=1e-14)
    assert clip_grad_norm_(params, norm).item() == norm  # exactly at max_norm: not clipped either
    for p, g in zip(params, before):
        assert torch.equal(p.grad, g)
    single = torch.zeros(3, requires_grad=True)  # a lone tensor works too, as in torch
    single.grad = torch.tensor([3.0, 4.0, 0.0])
    assert clip_grad_norm_(single, 10.0).item() == 5.0 and torch.equal(single.grad, torch.tensor([3.0, 4.0, 0.0]))


def test_clipping_computes_half_precision_norms_in_fp32():
    p = torch.zeros(4096, dtype=torch.bfloat16, requires_grad=True)
    p.grad = torch.linspace(0.5, 2.0, 4096).to(torch.bfloat16)
    norm = clip_grad_norm_([p], 1e6)
    assert norm.dtype == torch.float32
    exact = torch.linalg.vector_norm(p.grad.double()).item()
    assert norm.item() == pytest.approx(exact, rel=1e-6)  # a bf16 result would be off by ~1e-3


@pytest.mark.parametrize("bad", [math.inf, math.nan])
def test_clipping_returns_a_non_finite_norm_and_leaves_gradients(bad):
    params = make_params()
    grads_like(params, 3.0)
    params[0].grad[0, 0] = bad
    before = [p.grad.clone() for p in params]
    norm = clip_grad_norm_(params, 1.0)
    assert not torch.isfinite(norm)
    for p, g in zip(params, before):
        torch.testing.assert_close(p.grad, g, rtol=0, atol=0, equal_nan=True)


def test_clipping_without_any_gradient_returns_zero():
    assert clip_grad_norm_([torch.zeros(2, requires_grad=True)], 1.0).item() == 0.0
