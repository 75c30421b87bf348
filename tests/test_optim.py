import math

import pytest
import torch

from optim import AdamW, clip_grad_norm_, cosine_lr


def make_params(seed=0):
    torch.manual_seed(seed)
    return [torch.randn(7, 5, dtype=torch.float64, requires_grad=True),
            torch.randn(5, dtype=torch.float64, requires_grad=True),
            torch.randn(3, 4, dtype=torch.float64, requires_grad=True)]


def groups(params):
    return [{"params": params[:1], "weight_decay": 0.1},
            {"params": params[1:2], "weight_decay": 0.0, "lr": 3e-2},
            {"params": params[2:], "weight_decay": 0.05, "betas": (0.8, 0.99), "eps": 1e-6}]


def loss_of(params, step):
    a, b, c = params
    x = torch.linspace(-1, 1, 7, dtype=torch.float64) * (1 + step % 3)
    return ((x @ a + b).tanh().pow(2).sum() + (c ** 3).sum() * 0.1)


def run(opt_cls, steps, params=None, opt=None, start=0):
    params = params or make_params()
    opt = opt or opt_cls(groups(params), lr=1e-2, betas=(0.9, 0.95), weight_decay=0.1)
    for step in range(start, start + steps):
        opt.zero_grad(set_to_none=True)
        loss_of(params, step).backward()
        if step % 4 == 3:  # a parameter without a gradient this step is skipped, as torch does
            params[2].grad = None
        opt.step()
    return params, opt


def test_adamw_equals_torch_adamw_over_many_steps_and_groups():
    ours, _ = run(AdamW, 60)
    reference, _ = run(torch.optim.AdamW, 60)
    start = make_params()
    for a, b, s in zip(ours, reference, start):
        assert not torch.allclose(a, s)  # the parameters did move
        assert torch.allclose(a, b, rtol=0, atol=1e-12)


def test_adamw_state_dict_round_trip_continues_exactly():
    straight, _ = run(AdamW, 20)
    params, opt = run(AdamW, 8)
    saved = {k: v for k, v in opt.state_dict().items()}
    fresh = AdamW(groups(params), lr=1e-2, betas=(0.9, 0.95), weight_decay=0.1)
    fresh.load_state_dict(saved)
    resumed, _ = run(AdamW, 12, params=params, opt=fresh, start=8)
    for a, b in zip(straight, resumed):
        assert torch.equal(a, b)


@pytest.mark.parametrize("kwargs", [dict(lr=-1.0), dict(betas=(0.9, 1.0)), dict(eps=-1e-8), dict(weight_decay=-0.1)])
def test_adamw_rejects_bad_hyperparameters(kwargs):
    with pytest.raises(ValueError):
        AdamW([torch.zeros(2, requires_grad=True)], **kwargs)


def test_cosine_schedule_at_its_landmarks():
    kw = dict(max_lr=1.0, min_lr=0.1, warmup_steps=10, total_steps=110)
    assert cosine_lr(0, **kw) == 0.0
    assert cosine_lr(5, **kw) == pytest.approx(0.5)
    assert cosine_lr(10, **kw) == pytest.approx(1.0)
    assert cosine_lr(60, **kw) == pytest.approx(0.55)  # cosine midpoint: halfway between max and min
    assert cosine_lr(110, **kw) == pytest.approx(0.1)
    assert cosine_lr(500, **kw) == pytest.approx(0.1)
    after_warmup = [cosine_lr(s, **kw) for s in range(10, 120)]
    assert all(a >= b for a, b in zip(after_warmup, after_warmup[1:]))
    assert cosine_lr(0, 1.0, 0.0, 0, 100) == 1.0  # no warmup starts at the peak
    assert cosine_lr(25, 1.0, 0.0, 0, 100) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))


def test_clipping_matches_torch_and_leaves_small_gradients_alone():
    torch.manual_seed(1)
    ours, theirs = make_params(), make_params()
    for a, b in zip(ours, theirs):
        a.grad = torch.randn_like(a) * 3
        b.grad = a.grad.clone()
    norm = clip_grad_norm_(ours, 1.0)
    ref = torch.nn.utils.clip_grad_norm_(theirs, 1.0)
    assert norm.item() == pytest.approx(ref.item(), rel=1e-12) and norm > 1.0
    for a, b in zip(ours, theirs):
        assert torch.allclose(a.grad, b.grad, atol=1e-12)
    small = [torch.zeros(3, requires_grad=True)]
    small[0].grad = torch.tensor([0.1, -0.2, 0.05])
    before = small[0].grad.clone()
    assert clip_grad_norm_(small, 1.0).item() == pytest.approx(before.norm().item())
    assert torch.equal(small[0].grad, before)
