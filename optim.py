"""Hand-written optimisation: AdamW, the cosine learning-rate schedule, gradient clipping.

The project uses no torch.optim optimiser or scheduler. AdamW subclasses torch.optim.Optimizer
only for its bookkeeping (param groups, zero_grad, state_dict/load_state_dict); the update
itself is written out below. tests/test_optim.py checks all three against torch's versions.
"""
import math

import torch


class AdamW(torch.optim.Optimizer):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019), equal to torch.optim.AdamW.

    At step t, for each parameter p with gradient g (parameters without a gradient are skipped):
        p <- p * (1 - lr * weight_decay)
        m <- beta1 * m + (1 - beta1) * g
        v <- beta2 * v + (1 - beta2) * g^2
        p <- p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
    Per-parameter state: "step", "exp_avg" (m) and "exp_avg_sq" (v), as in torch, so a
    state_dict moves between the two.

    capturable=True keeps "step" on the parameter's device and computes the bias corrections
    there, and lr may be a 0-d tensor: no host value is read, so a step can be captured in a
    CUDA graph and replayed (train.py's head fitting does), as torch's capturable=True.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01, capturable=False):
        if lr < 0:
            raise ValueError(f"AdamW: lr={lr} is negative; pass lr >= 0")
        if not all(0.0 <= beta < 1.0 for beta in betas):
            raise ValueError(f"AdamW: betas={betas} must each lie in [0, 1); e.g. betas=(0.9, 0.95)")
        if eps < 0:
            raise ValueError(f"AdamW: eps={eps} is negative; pass eps >= 0, e.g. 1e-8")
        if weight_decay < 0:
            raise ValueError(f"AdamW: weight_decay={weight_decay} is negative; pass weight_decay >= 0")
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, capturable=capturable))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():  # the closure recomputes the loss and its gradients
                loss = closure()
        for group in self.param_groups:
            lr, (beta1, beta2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                if grad.is_sparse:
                    raise ValueError("AdamW: sparse gradients are not supported; use a dense nn.Embedding")
                state = self.state[p]
                if not state:  # created lazily, so a parameter's first gradient starts its own count
                    # a float tensor, as torch keeps it: on the host, or beside p when capturable
                    state["step"] = torch.zeros((), device=p.device if group["capturable"] else "cpu")
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                state["step"] += 1
                if group["capturable"]:  # in p's precision, at least fp32: 1 - beta^t loses digits in less
                    t = state["step"].to(torch.promote_types(p.dtype, torch.float32))
                else:
                    t = state["step"].item()

                if wd:  # decoupled decay: shrinks p directly, never enters m or v
                    p.mul_(1 - lr * wd)
                exp_avg.lerp_(grad, 1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                # bias correction undoes the zero initialisation of m and v; same operation order
                # as torch (divide sqrt(v), then add eps) so results agree to the last bit
                if group["capturable"]:  # t (and maybe lr) are tensors: the same formula, on the device
                    denom = (exp_avg_sq.sqrt() / (1 - beta2 ** t).sqrt()).add_(eps)
                    p.sub_(exp_avg / denom * (lr / (1 - beta1 ** t)))
                    continue
                step_size = lr / (1 - beta1 ** t)
                denom = (exp_avg_sq.sqrt() / math.sqrt(1 - beta2 ** t)).add_(eps)
                p.addcdiv_(exp_avg, denom, value=-step_size)
        return loss


def cosine_lr(step, max_lr, min_lr, warmup_steps, total_steps):
    """Learning rate at `step` (counted from 0): linear warmup, then a half cosine, then flat.

        step >= total_steps:  min_lr
        step <  warmup_steps: max_lr * step / warmup_steps       (0 at step 0)
        otherwise:            min_lr + (max_lr - min_lr) * (1 + cos(pi * s)) / 2,
                              s = (step - warmup_steps) / (total_steps - warmup_steps)

    so the lr is max_lr at step == warmup_steps and falls to min_lr at total_steps (the
    cosine's midpoint gives (max_lr + min_lr) / 2). warmup_steps == 0 starts at max_lr;
    with warmup_steps >= total_steps the ramp is cut off at total_steps, where min_lr
    takes over. No case divides by zero.
    """
    if step >= total_steps:
        return min_lr
    if step < warmup_steps:
        return max_lr * step / warmup_steps
    progress = (step - warmup_steps) / (total_steps - warmup_steps)
    return min_lr + 0.5 * (max_lr - min_lr) * (1 + math.cos(math.pi * progress))


def clip_grad_norm_(params, max_norm, eps=1e-6):
    """Scale all gradients in place by max_norm / (norm + eps) when their global L2 norm
    exceeds max_norm, like torch.nn.utils.clip_grad_norm_; returns the norm before clipping.

    Parameters without a gradient are skipped. The norm is computed in at least fp32, so
    half-precision gradients neither overflow nor lose precision. A non-finite norm is
    returned with the gradients untouched: the caller (train.py) decides what to do.
    """
    if isinstance(params, torch.Tensor):
        params = [params]
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.tensor(0.0)
    per_grad = [torch.linalg.vector_norm(g, dtype=torch.promote_types(g.dtype, torch.float32)) for g in grads]
    total_norm = torch.linalg.vector_norm(torch.stack(per_grad))
    # choose the factor on the device (1.0 = leave alone) rather than branching in Python,
    # which would wait for the GPU; multiplying by exactly 1.0 changes no bit
    clip = (total_norm > max_norm) & torch.isfinite(total_norm)
    scale = torch.where(clip, max_norm / (total_norm + eps), torch.ones_like(total_norm))
    for g in grads:
        g.mul_(scale)
    return total_norm
