"""Hand-written optimisation: AdamW, the cosine learning-rate schedule, gradient clipping.

The project uses no torch.optim optimiser or scheduler; tests check these against torch's.
"""
import math

import torch


class AdamW(torch.optim.Optimizer):
    """Adam with decoupled weight decay (Loshchilov & Hutter), equal to torch.optim.AdamW.

    Per step, for each parameter p with gradient g:
        p <- p * (1 - lr * weight_decay)                       # decay, independent of the gradient
        m <- beta1 m + (1 - beta1) g ;  v <- beta2 v + (1 - beta2) g^2
        p <- p - lr * (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
        if lr < 0:
            raise ValueError(f"lr={lr} must be >= 0")
        if not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"betas={betas} must each lie in [0, 1)")
        if eps < 0:
            raise ValueError(f"eps={eps} must be >= 0")
        if weight_decay < 0:
            raise ValueError(f"weight_decay={weight_decay} must be >= 0")
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, (beta1, beta2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise ValueError("AdamW does not support sparse gradients: use dense embeddings")
                state = self.state[p]
                if not state:
                    state["step"] = torch.tensor(0.0)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                t = state["step"].item()
                m, v = state["exp_avg"], state["exp_avg_sq"]
                p.mul_(1 - lr * wd)
                m.lerp_(p.grad, 1 - beta1)
                v.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                step_size = lr / (1 - beta1 ** t)
                denom = (v.sqrt() / math.sqrt(1 - beta2 ** t)).add_(eps)
                p.addcdiv_(m, denom, value=-step_size)
        return loss


def cosine_lr(step, max_lr, min_lr, warmup_steps, total_steps):
    """Linear warmup from 0 (step 0) to max_lr (step warmup_steps), then a half cosine from
    max_lr down to min_lr at total_steps; min_lr from then on."""
    if step < warmup_steps:
        return max_lr * step / warmup_steps
    if step >= total_steps:
        return min_lr
    progress = (step - warmup_steps) / (total_steps - warmup_steps)
    return min_lr + 0.5 * (max_lr - min_lr) * (1 + math.cos(math.pi * progress))


def clip_grad_norm_(params, max_norm, eps=1e-6):
    """Scale all gradients in place when their global L2 norm exceeds max_norm; returns the
    norm before clipping. A non-finite norm is returned untouched for the caller to handle."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.tensor(0.0)
    dtype = torch.promote_types(grads[0].dtype, torch.float32)  # half-precision grads are summed in fp32
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g, dtype=dtype) for g in grads]))
    if torch.isfinite(norm) and norm > max_norm:
        scale = max_norm / (norm + eps)
        for g in grads:
            g.mul_(scale.to(g.dtype))
    return norm
