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

    The update is multi-tensor: each line above is one torch._foreach_* call over all the
    parameters of a group that share a device and dtype, instead of one small kernel per
    tensor (what torch's foreach=True does).

    capturable=True keeps "step" on the parameter's device and computes the bias corrections
    there, and lr may be a 0-d tensor: no host value is read, so a step can be captured in a
    CUDA graph and replayed (train_head.py's head fitting does), as torch's capturable=True.

    compiled=True runs that device-side update through torch.compile, which fuses the whole
    step into a few kernels that read p, g, m, v once: on a GPU within reach of torch's
    fused=True. It implies capturable (the step counts live beside the parameters); the
    first step compiles, once per group.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01, capturable=False,
                 compiled=False):
        if lr < 0:
            raise ValueError(f"AdamW: lr={lr} is negative; pass lr >= 0")
        if not all(0.0 <= beta < 1.0 for beta in betas):
            raise ValueError(f"AdamW: betas={betas} must each lie in [0, 1); e.g. betas=(0.9, 0.95)")
        if eps < 0:
            raise ValueError(f"AdamW: eps={eps} is negative; pass eps >= 0, e.g. 1e-8")
        if weight_decay < 0:
            raise ValueError(f"AdamW: weight_decay={weight_decay} is negative; pass weight_decay >= 0")
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      capturable=capturable or compiled))
        self.compiled = compiled
        self._device_update = torch.compile(adamw_on_device) if compiled else adamw_on_device
        self._lr_tensors = {}  # compiled: (group index, device) -> the group's lr as a 0-d tensor there

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():  # the closure recomputes the loss and its gradients
                loss = closure()
        for index, group in enumerate(self.param_groups):
            for (device, _), tensors in self._tensors_by_device_and_dtype(group).items():
                lr = group["lr"]
                if self.compiled and not torch.is_tensor(lr):  # a float would be compiled in: one graph per lr
                    if (index, device) not in self._lr_tensors:  # float64, as a Python float is
                        self._lr_tensors[index, device] = torch.zeros((), dtype=torch.float64, device=device)
                    lr = self._lr_tensors[index, device].fill_(lr)
                hyper = (lr, *group["betas"], group["eps"], group["weight_decay"])
                if group["capturable"]:
                    self._device_update(*tensors, *hyper)
                elif device.type == "cpu":  # a CPU loops over a foreach call's tensors anyway: one at a time,
                    for one_tensor in zip(*tensors):  # each stays in cache through all the operations
                        adamw_on_host_steps(*([t] for t in one_tensor), *hyper)
                else:
                    adamw_on_host_steps(*tensors, *hyper)
        return loss

    def _tensors_by_device_and_dtype(self, group):
        """{(device, dtype): (params, grads, exp_avgs, exp_avg_sqs, steps)} of the group's parameters
        that have a gradient, creating their state on first use: foreach calls need one device and dtype."""
        buckets = {}
        for p in group["params"]:
            if p.grad is None:
                continue
            if p.grad.is_sparse:
                raise ValueError("AdamW: sparse gradients are not supported; use a dense nn.Embedding")
            state = self.state[p]
            if not state:  # created lazily, so a parameter's first gradient starts its own count
                # a float tensor, as torch keeps it: on the host, or beside p when capturable
                state["step"] = torch.zeros((), device=p.device if group["capturable"] else "cpu")
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            elif group["capturable"] and state["step"].device != p.device:  # a host-side state_dict loaded
                state["step"] = state["step"].to(p.device, torch.float32)
            lists = buckets.setdefault((p.device, p.dtype), ([], [], [], [], []))
            for holder, tensor in zip(lists, (p, p.grad, state["exp_avg"], state["exp_avg_sq"], state["step"])):
                holder.append(tensor)
        return buckets


def count_decay_and_average(params, grads, exp_avgs, exp_avg_sqs, steps, lr, beta1, beta2, weight_decay):
    """The first half of an AdamW step, the same wherever the step counts live: count the step,
    decay the weights, update the moving averages m and v of the gradient and its square."""
    torch._foreach_add_(steps, 1)
    if weight_decay:  # decoupled decay: shrinks p directly, never enters m or v
        torch._foreach_mul_(params, 1 - lr * weight_decay)
    torch._foreach_lerp_(exp_avgs, grads, 1 - beta1)
    torch._foreach_mul_(exp_avg_sqs, beta2)
    torch._foreach_addcmul_(exp_avg_sqs, grads, grads, value=1 - beta2)


def adamw_on_host_steps(params, grads, exp_avgs, exp_avg_sqs, steps, lr, beta1, beta2, eps, weight_decay):
    """One AdamW step of tensors on one device and dtype, step counts on the host: the bias
    corrections are Python floats. Same operations, in the same order, as torch's AdamW, so
    results agree to the last bit."""
    count_decay_and_average(params, grads, exp_avgs, exp_avg_sqs, steps, lr, beta1, beta2, weight_decay)
    # bias correction undoes the zero initialisation of m and v; each tensor has its own t
    ts = [step.item() for step in steps]
    denoms = torch._foreach_sqrt(exp_avg_sqs)
    torch._foreach_div_(denoms, [math.sqrt(1 - beta2 ** t) for t in ts])
    torch._foreach_add_(denoms, eps)
    torch._foreach_addcdiv_(params, exp_avgs, denoms, [-lr / (1 - beta1 ** t) for t in ts])


def adamw_on_device(params, grads, exp_avgs, exp_avg_sqs, steps, lr, beta1, beta2, eps, weight_decay):
    """The same step with the step counts on the device and lr a float or a 0-d tensor: nothing is
    read back to the host, so it can be captured in a CUDA graph or compiled whole."""
    count_decay_and_average(params, grads, exp_avgs, exp_avg_sqs, steps, lr, beta1, beta2, weight_decay)
    # t in p's precision, at least fp32: 1 - beta^t loses digits in less
    ts = [step.to(torch.promote_types(p.dtype, torch.float32)) for p, step in zip(params, steps)]
    bias_corrections1 = [1 - beta1 ** t for t in ts]
    bias_corrections2_sqrt = [(1 - beta2 ** t).sqrt() for t in ts]
    denoms = torch._foreach_sqrt(exp_avg_sqs)
    torch._foreach_div_(denoms, bias_corrections2_sqrt)
    torch._foreach_add_(denoms, eps)
    updates = torch._foreach_div(exp_avgs, denoms)
    torch._foreach_mul_(updates, [lr / bc1 for bc1 in bias_corrections1])
    torch._foreach_sub_(params, updates)


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
    by_dtype = {}  # one foreach norm per dtype: it takes a single output dtype
    for g in grads:
        by_dtype.setdefault(g.dtype, []).append(g)
    per_grad = [norm for dtype, same in by_dtype.items()
                for norm in torch._foreach_norm(same, 2, dtype=torch.promote_types(dtype, torch.float32))]
    total_norm = torch.linalg.vector_norm(torch.stack(per_grad))
    # choose the factor on the device (1.0 = leave alone) rather than branching in Python,
    # which would wait for the GPU; multiplying by exactly 1.0 changes no bit
    clip = (total_norm > max_norm) & torch.isfinite(total_norm)
    scale = torch.where(clip, max_norm / (total_norm + eps), torch.ones_like(total_norm))
    torch._foreach_mul_(grads, scale)
    return total_norm
