"""The MinP+ head: a learnable generalisation of min-p sampling.

Given logits z (after temperature) and the ratio of each token to the top one,
r_v = p_v / max p = exp(z_v - max z), the head holds fixed thresholds
0 = tau_0 < tau_1 < ... < tau_{K-1} <= 1 and learned weights w_k = softplus(theta_k) >= 0.
Each token gets the cumulative weight of the thresholds it reaches,

    c_v = sum_{k : tau_k <= r_v} w_k        (piecewise constant, non-decreasing in r)

and the new distribution is q_v ∝ p_v c_v, i.e. q = softmax(z + log c), log 0 = -inf.
Weight one-hot at tau_k = m is exactly min-p with min_p = m; one-hot at tau_0 = 0 is the
identity; scaling every weight by the same factor changes nothing.

Call b_v the token's bucket: the number of thresholds <= r_v, minus one. With the
prefix sums c[k] = w_0 + ... + w_k and S[k] = the probability mass of the tokens in bucket k,

    -log q_y = -log p_y - log c[b_y] + log sum_k c[k] S[k]

so training needs the logits only through (S, b_y, log p_y): one no-grad pass per chunk of
logits (`bucket_stats`), then gradients flow through (N, K) tensors only (`loss_from_stats`).
Backpropagating the (N, V) gather c[b] instead scatters N*V gradients into K addresses and
is thousands of times slower on a GPU (10.2 s against 3.7 ms for one step at N = 4096,
V = 32000 on an H100; bench/head.py measures it).
"""
import json
import math
import numbers
import os
import stat

import torch
import torch.nn as nn
import torch.nn.functional as F

import script

INIT_SHARE_AT_ZERO = 0.99  # an untrained head is 99% identity; the rest is spread over tau_1..tau_{K-1}
MAX_HEAD_BYTES = 16 << 20  # a head.json is a few KB: a larger file is not one, and is not read into memory
SCATTER_LANES = 32  # copies of each row's K bucket sums, so GPU atomics do not all hit one address


def threshold_grid(num_thresholds, tau_min, spacing):
    """tau_0 = 0, then K-1 thresholds from tau_min to 1, evenly spaced in log r or in r."""
    if num_thresholds < 3:
        raise ValueError(f"num_thresholds={num_thresholds}: need at least 3 (0, tau_min and 1); "
                         f"use MinPPlusHead(thresholds=[...]) for a hand-made grid")
    if not 0 < tau_min < 1:
        raise ValueError(f"tau_min={tau_min} must lie in (0, 1): it is the smallest nonzero ratio p / max p")
    if spacing == "log":
        nonzero = torch.logspace(math.log10(tau_min), 0.0, num_thresholds - 1, dtype=torch.float64)
    elif spacing == "linear":
        nonzero = torch.linspace(tau_min, 1.0, num_thresholds - 1, dtype=torch.float64)
    else:
        raise ValueError(f"unknown spacing {spacing!r}: use 'log' or 'linear'")
    nonzero[0], nonzero[-1] = tau_min, 1.0  # exact ends, whatever the rounding of logspace
    tau = torch.cat([torch.zeros(1, dtype=torch.float64), nonzero]).float()
    if not (tau[1:] > tau[:-1]).all():
        raise ValueError(f"tau_min={tau_min} with {num_thresholds} thresholds gives thresholds that fp32 cannot tell "
                         f"apart: raise tau_min (or lower it if it rounds to 1) or use fewer thresholds")
    return tau


def float32_list(values, name, source):
    """values as a list of Python floats rounded to fp32 (what the head will hold), or ValueError."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().tolist()
    if not isinstance(values, (list, tuple)) or not values:
        raise ValueError(f"{source}: '{name}' must be a non-empty list of numbers, got {type(values).__name__}")
    for i, x in enumerate(values):
        if isinstance(x, bool) or not isinstance(x, (int, float)):
            raise ValueError(f"{source}: {name}[{i}] is {x!r}, not a number: write plain numbers")
        if abs(x) >= 2**128 or not math.isfinite(x) or not math.isfinite(torch.tensor(float(x)).item()):
            raise ValueError(f"{source}: {name}[{i}] is {x}: every value must be finite in fp32 (|x| < 3.4e38)")
    return torch.tensor(values, dtype=torch.float32).tolist()


def check_head(thresholds, weights, source):
    """Validate a head's thresholds and weights; returns both as fp32-rounded float lists."""
    tau = float32_list(thresholds, "thresholds", source)
    if tau[0] != 0:
        raise ValueError(f"{source}: the first threshold is {tau[0]:.7g} but must be 0 (it keeps every token "
                         f"in the support): prepend 0 to the thresholds and a weight for it")
    for i in range(len(tau) - 1):
        if not tau[i] < tau[i + 1]:
            raise ValueError(f"{source}: thresholds are not strictly ascending (thresholds[{i}] = {tau[i]:.7g} >= "
                             f"thresholds[{i + 1}] = {tau[i + 1]:.7g} in fp32): sort them with their weights, "
                             f"no duplicates")
    if tau[-1] > 1:
        raise ValueError(f"{source}: the last threshold is {tau[-1]:.7g} > 1, but a ratio p / max p never exceeds 1: "
                         f"keep thresholds in [0, 1]")
    if weights is None:
        return tau, None
    w = float32_list(weights, "weights", source)
    if len(w) != len(tau):
        raise ValueError(f"{source}: {len(w)} weights for {len(tau)} thresholds: give one weight per threshold")
    for i, x in enumerate(w):
        if x < 0:
            raise ValueError(f"{source}: weights[{i}] is {x:.7g} < 0: weights must be non-negative "
                             f"(0 drops a threshold)")
    if not any(w):
        raise ValueError(f"{source}: every weight is 0, which would remove every token: "
                         f"give at least one threshold a positive weight")
    if not math.isfinite(torch.tensor(w).sum().item()):
        raise ValueError(f"{source}: the weights sum past fp32's range: scale them all down "
                         f"(only their ratios matter)")
    return tau, w


def check_strength(strength):
    """head_strength must be a finite real number >= 0 (0 is the identity, 1 the fitted head)."""
    if isinstance(strength, bool) or not isinstance(strength, numbers.Real) or not 0 <= strength < math.inf:
        raise ValueError(f"head_strength={strength!r} must be a finite number >= 0 "
                         f"(0: no head, 1: the fitted head, above 1: stronger)")


def inverse_softplus(w):
    """theta with softplus(theta) = w, stably for large w and -inf for w = 0."""
    w = torch.as_tensor(w, dtype=torch.float64)
    return w + torch.log(-torch.expm1(-w))


def log_threshold(tau):
    """log tau in fp32: tau rounded to fp32 (what a head holds), its log taken in fp64 and rounded
    once. The head's thresholds and sample.min_p use this one definition, so min_p = m and a head
    one-hot at tau = m keep exactly the same tokens, a ratio exactly at the threshold included."""
    return torch.as_tensor(tau, dtype=torch.float32).double().log().float()


def log_ratio(logits):
    """log r = z - max z in fp32, for logits of any float dtype."""
    zmax = logits.amax(-1, keepdim=True).float()
    if logits.dtype == torch.float64:
        logits = logits.float()
    return logits - zmax  # half logits are promoted exactly inside the subtraction: no fp32 copy first


def bucket_index(gap, log_tau):
    """Each token's bucket (number of thresholds <= r, minus one) from its log ratio and the
    nonzero thresholds' logs; right=True puts a ratio equal to a threshold in that threshold's bucket.
    int32: half the bytes of int64 to write here and to read back in the scatter (torch >= 2.8
    scatters and gathers with int32 indices)."""
    return torch.bucketize(gap, log_tau, right=True, out_int32=True)


def bucket_sums(values, buckets, num_buckets, lanes=None):
    """Per-row sums of values (n, V) grouped by bucket index (n, V) -> (n, num_buckets).

    Most tokens of a row sit in bucket 0, so a plain scatter_add_ into (n, K) makes the GPU's
    atomics queue on one address per row; scattering into `lanes` copies of the K sums
    (lane = column mod lanes) spreads them out, and one small sum merges the copies. A CPU has
    no such queue, and there the copies only cost time: lanes None is SCATTER_LANES on CUDA, 1 elsewhere."""
    if lanes is None:
        lanes = SCATTER_LANES if values.is_cuda else 1
    n, V = values.shape
    if lanes == 1:  # the lane view's size-1 last dimension makes a CPU scatter ~4-9x slower than this
        return values.new_zeros(n, num_buckets).scatter_add_(1, buckets, values)
    main = V - V % lanes
    sums = values.new_zeros(n, num_buckets, lanes)
    shape = (n, main // lanes, lanes)  # column v goes to lane v % lanes
    sums.scatter_add_(1, buckets[:, :main].view(shape), values[:, :main].view(shape))
    sums = sums.sum(2)
    if main < V:  # the last V % lanes columns, one plain scatter
        sums.scatter_add_(1, buckets[:, main:], values[:, main:])
    return sums


def chunk_stats(logits, targets, log_tau, num_buckets):
    """bucket_stats of one chunk of rows (n, V): (S (n, K), b (n,), logp_y (n,)), in fp32."""
    gap = log_ratio(logits)
    buckets = bucket_index(gap, log_tau)
    y = targets[:, None]
    b = buckets.gather(1, y)[:, 0]
    gap_y = gap.gather(1, y)[:, 0]
    ratios = gap.exp_()  # r = p / max p; in place, the log ratios are no longer needed
    mass = bucket_sums(ratios, buckets, num_buckets)
    total = mass.sum(1)  # sum_v r_v = 1 / max p, at least 1
    return mass / total[:, None], b, gap_y - total.log()


def target_counts(b, num_buckets):
    """How many rows have their target in each bucket (num_buckets,) fp32, without a host sync
    (counted in fp64: fp32 stops counting at 2^24 rows in a bucket)."""
    ones = torch.ones(len(b), dtype=torch.float64, device=b.device)
    return torch.zeros(num_buckets, dtype=torch.float64, device=b.device).index_add_(0, b, ones).float()


def default_chunk_rows(vocab_size, device):
    # ~2M elements stay in a CPU's cache; ~32M keep a GPU busy at ~0.5 GB of temporaries
    budget = 2**25 if torch.device(device).type == "cuda" else 2**21
    return max(1, budget // vocab_size)


class MinPPlusHead(nn.Module):
    """q = softmax(z + log c(r)); see the module docstring.

    thresholds: spacing "log" is tau = [0, tau_min, ..., 1] with the K-1 nonzero ones evenly
    spaced in log r; "linear" is the same ends evenly spaced in r (tau_min = 1/(K-1) gives the
    grid 0, 1/(K-1), ..., 1). `thresholds=[...]` sets a hand-made grid instead (0 first, <= 1)."""

    def __init__(self, num_thresholds=32, tau_min=1e-4, spacing="log", thresholds=None):
        super().__init__()
        if thresholds is None:
            tau = threshold_grid(num_thresholds, tau_min, spacing)
        else:
            tau = torch.tensor(check_head(thresholds, None, "MinPPlusHead(thresholds=...)")[0])
        self.register_buffer("tau", tau)  # persistent: a state_dict carries its thresholds
        K = len(tau)
        # (close to) the identity, yet every weight positive so that every weight gets a gradient
        init = torch.full((K,), (1 - INIT_SHARE_AT_ZERO) / max(K - 1, 1), dtype=torch.float64)
        init[0] = INIT_SHARE_AT_ZERO if K > 1 else 1.0
        self.theta = nn.Parameter(inverse_softplus(init).float())

    def extra_repr(self):
        tau = [f"{t:.3g}" for t in self.tau.tolist()]
        return f"K={len(tau)}, tau=[{', '.join(tau if len(tau) <= 4 else tau[:2] + ['...', tau[-1]])}]"

    def weights(self):
        return F.softplus(self.theta.float())

    def weight_shares(self):
        """The weights normalised to sum to 1: only their shape matters (q is normalised anyway)."""
        w = self.weights()
        return w / w.sum()

    def weight_entropy(self):
        share = self.weight_shares()
        return -torch.xlogy(share, share).sum()

    def cumulative_weights(self):
        """c at each threshold (K,): the prefix sums of the weights."""
        return torch.cumsum(self.weights(), 0)

    def log_cumulative_weights(self):
        """log c at each threshold (K,), -inf while the weights are 0."""
        return self.cumulative_weights().log()

    def nonzero_log_thresholds(self):
        return log_threshold(self.tau[1:])  # tau_0 = 0 is reached by every token: no need to test it

    def buckets(self, logits):
        """(..., V) int32 bucket of each token: (number of thresholds <= r) - 1, in 0..K-1."""
        return bucket_index(log_ratio(logits), self.nonzero_log_thresholds())

    def forward(self, logits, strength=1.0):
        """logits + strength * log c(r) in fp32 (-inf where c = 0); softmax of it is the MinP+
        distribution. strength (lambda >= 0) scales the head like a knob: 0 is the identity (even
        where c = 0), 1 the fitted head, above 1 a stronger one (c(r)^lambda)."""
        check_strength(strength)
        if strength == 0:
            return logits.float()  # not 0 * log c: that is NaN where c = 0
        log_c = self.log_cumulative_weights()
        if strength != 1:
            log_c = log_c * strength  # -inf stays -inf for strength > 0
        return logits.float() + log_c[self.buckets(logits)]

    @torch.no_grad()
    def bucket_stats(self, logits, targets, chunk_size=None, check=True, per_chunk=chunk_stats, temperatures=None):
        """(S, b, logp_y): probability mass per bucket (N, K) fp32, the target's bucket (N,) long,
        log p of the target (N,) fp32, from logits (N, V) of any float dtype, chunk by chunk.

        temperatures (a list of T > 0): a list of (S, b, logp_y), one per T, those of logits / T
        (divided in fp32, as sampling does); each chunk serves every T while it is in cache, so a
        grid of temperatures costs one read of the logits and K bucket sums per T.
        Peak extra memory is about 8 bytes * chunk_size * V (fp32 log ratios, int32 buckets);
        chunk_size None picks one for the device (default_chunk_rows). check=False skips the
        target-range and NaN checks, each of which waits for the GPU: for a caller whose targets
        are known to be in range and that checks log p_y once at the end (train_head.collect_stats).
        per_chunk: chunk_stats, or the same compiled by torch.compile."""
        if logits.dim() != 2 or targets.shape != logits.shape[:1]:
            raise ValueError(f"bucket_stats wants logits (N, V) and targets (N,), got {tuple(logits.shape)} "
                             f"and {tuple(targets.shape)}: flatten the batch and time dimensions first")
        temps = [1.0] if temperatures is None else list(temperatures)
        if not temps or not all(isinstance(T, numbers.Real) and 0 < T < math.inf for T in temps):
            raise ValueError(f"bucket_stats: temperatures={temperatures!r} must be finite numbers > 0")
        N, V = logits.shape
        K = len(self.tau)
        if check and N and (targets.min() < 0 or targets.max() >= V):
            raise ValueError(f"targets must lie in [0, {V}): drop ignored (-1) positions before bucket_stats")
        chunk_size = chunk_size or default_chunk_rows(V, logits.device)
        log_tau = self.nonzero_log_thresholds().to(logits.device)
        outs = [(torch.empty(N, K, device=logits.device), torch.empty(N, dtype=torch.long, device=logits.device),
                 torch.empty(N, device=logits.device)) for _ in temps]
        for start in range(0, N, chunk_size):
            rows = slice(start, start + chunk_size)
            chunk, y = logits[rows], targets[rows]
            for (S, b, logp_y), T in zip(outs, temps):  # at T = 1 no division: no extra pass over the chunk
                S[rows], b[rows], logp_y[rows] = per_chunk(chunk if T == 1 else chunk.float() / T, y, log_tau, K)
        if check and any(torch.isnan(logp_y).any() for _, _, logp_y in outs):
            raise ValueError("bucket_stats: some rows of logits hold NaN or +inf (or are all -inf): "
                             "the frozen model's forward has overflowed; check its dtype and checkpoint")
        return outs[0] if temperatures is None else outs

    def loss_from_stats(self, S, b, logp_y):
        """Mean -log q_y over the rows: equals F.cross_entropy(self(logits), targets), value and gradient."""
        return self.loss_from_counts(S, target_counts(b, len(self.tau)), logp_y.mean())

    def loss_from_counts(self, S, rows_per_bucket, mean_logp_y):
        """loss_from_stats given how many targets fall in each bucket (K,) and the mean log p_y:
        neither depends on the weights, so a fitting loop computes them once (train_head.head_fitter)."""
        c = self.cumulative_weights()
        # the target term goes through K bucket counts: the gradient then flows through K numbers,
        # where indexing c.log()[b] would backpropagate a sort-based scatter over the rows
        log_c = torch.where(rows_per_bucket > 0, c, 1.0).log()  # a bucket no target is in may have c = 0
        return (S @ c).log().mean() - mean_logp_y - rows_per_bucket @ log_c / len(S)

    def regulariser(self, kind):
        """"smooth" returns -entropy of the normalised weights (minimising it spreads them);
        "sparse" returns +entropy (minimising it concentrates them); "none" returns 0."""
        if kind == "none":
            return self.theta.new_zeros(())
        entropy = self.weight_entropy()
        if kind == "smooth":
            return -entropy
        if kind == "sparse":
            return entropy
        raise ValueError(f"unknown regulariser {kind!r}: use none, smooth (spread the weights) "
                         f"or sparse (concentrate them)")

    @classmethod
    def from_weights(cls, tau, weights):
        """A head with exactly these thresholds and weights (zeros allowed: theta = -inf, c = 0)."""
        tau, w = check_head(tau, weights, "MinPPlusHead.from_weights")
        head = cls(thresholds=tau)
        with torch.no_grad():
            head.theta.copy_(inverse_softplus(w).float())
        return head

    def pruned(self, below):
        """A copy whose weights with a share of the total < below are 0 (export only: a zero weight
        never gets a gradient again). The largest weight always stays."""
        if not 0 <= below <= 1:
            raise ValueError(f"prune threshold {below} must be a share of the total weight, in [0, 1]")
        w, share = self.weights().detach(), self.weight_shares().detach()
        keep = (share >= below) | (share == share.max())
        return type(self).from_weights(self.tau, torch.where(keep, w, 0.0)).to(self.tau.device)

    def save_json(self, path, **meta):
        """Write thresholds, weights and meta (temperature, vocab_size, checkpoint, ...) atomically."""
        clash = {"thresholds", "weights"} & meta.keys()
        if clash:
            raise ValueError(f"save_json: meta may not be named {sorted(clash)}: those keys hold the head itself")
        record = {"thresholds": self.tau.tolist(), "weights": self.weights().tolist(), **meta}
        text = json.dumps(record, indent=1, allow_nan=False)  # before writing: a bad meta leaves no file
        script.write_text(path, text + "\n")

    @classmethod
    def load_json(cls, path, vocab_size=None, checkpoint=None):
        """(head, meta) from a file written by save_json; every problem is a one-line ValueError.

        vocab_size / checkpoint (model.fingerprint of the LM), when given, must match the file's
        (when the file records them)."""
        fix = "re-export it with `python train.py --head minpplus`"
        try:
            info = os.stat(path)
            if not stat.S_ISREG(info.st_mode):  # a FIFO would block, /dev/zero never end
                raise ValueError(f"cannot read the MinP+ head {path} (not a regular file): "
                                 f"pass the path of a head.json")
            if info.st_size > MAX_HEAD_BYTES:
                raise ValueError(f"{path} is {info.st_size:,} bytes, far more than a MinP+ head "
                                 f"(a few KB; at most {MAX_HEAD_BYTES:,}): pass the path of a head.json")
            with open(path) as f:
                text = f.read(MAX_HEAD_BYTES + 1)  # bounded even if it grew: the cut then is not valid JSON
        except FileNotFoundError:
            raise ValueError(f"no MinP+ head at {path}: train one with `python train.py --head minpplus` "
                             f"or pass the path of its head.json") from None
        except (OSError, UnicodeDecodeError) as e:
            raise ValueError(f"cannot read the MinP+ head {path} ({e}): pass the path of a head.json") from None
        try:
            record = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} is not valid JSON ({e.msg} at line {e.lineno}): {fix}") from None
        except RecursionError:  # arrays nested thousands deep
            raise ValueError(f"{path} nests its JSON too deeply to be a MinP+ head: {fix}") from None
        if not isinstance(record, dict) or "thresholds" not in record or "weights" not in record:
            raise ValueError(f"{path} is not a MinP+ head (no 'thresholds' and 'weights' lists): {fix}")
        if record["weights"] is None:  # check_head reads None as "thresholds only"
            raise ValueError(f"{path}: 'weights' is null, not a list of numbers: {fix}")
        tau, w = check_head(record["thresholds"], record["weights"], path)
        meta = {k: v for k, v in record.items() if k not in ("thresholds", "weights")}
        if vocab_size is not None and meta.get("vocab_size") not in (None, vocab_size):
            raise ValueError(f"{path} is a head for vocab_size {meta['vocab_size']} but the model has {vocab_size}: "
                             f"train a head on this model (`python train.py --head minpplus --init_from CKPT`)")
        if checkpoint is not None and meta.get("checkpoint") not in (None, checkpoint):
            raise ValueError(f"{path} was trained on checkpoint {meta['checkpoint']} but the model is {checkpoint}: "
                             f"use the head trained on this model, or train one with --init_from CKPT")
        return cls.from_weights(tau, w), meta


# ----------------------------------------------------------------------------
# what to log: is the head learning, and what did it learn?

@torch.no_grad()
def diagnostics(head, S, b, logp_y):
    """Plain numbers (JSON-ready) describing the head on statistics from bucket_stats."""
    share = head.weight_shares()
    c = head.cumulative_weights()
    base_ce = (-logp_y).mean().item()
    head_ce = head.loss_from_stats(S, b, logp_y).item()
    mass_above = S.flip(1).cumsum(1).flip(1).mean(0)  # mean mass of tokens with r >= tau_k
    return {
        "base_ce": base_ce,
        "head_ce": head_ce,
        "relative_improvement": (base_ce - head_ce) / base_ce if base_ce > 0 else 0.0,
        "thresholds": head.tau.tolist(),
        "weights": share.tolist(),  # normalised: only the shape of w matters
        "weight_entropy": head.weight_entropy().item(),
        "max_entropy": math.log(len(share)),
        "share_above_lowest": (b >= 1).float().mean().item(),  # targets with r >= tau_1
        "mass_above": mass_above.tolist(),
        "curve": (c / c[-1]).tolist(),  # c(r) at each tau, normalised so that c(1) = 1
    }


def format_diagnostics(d, max_rows=8):
    """A few lines for the console: the losses, then the thresholds that hold the weight."""
    tau = d["thresholds"]
    above = f" | targets with r >= {tau[1]:.3g}: {d['share_above_lowest']:.1%}" if len(tau) > 1 else ""
    lines = [f"head CE {d['head_ce']:.4f} | base CE {d['base_ce']:.4f} | improvement {d['relative_improvement']:+.2%}"
             f" | weight entropy {d['weight_entropy']:.2f} of {d['max_entropy']:.2f} nats" + above]
    lines.append(f"  {'tau':>9} {'weight':>7} {'c(tau)':>7} {'mass r>=tau':>11}")
    order = sorted(range(len(tau)), key=lambda k: -d["weights"][k])
    shown = sorted(k for k in order[:max_rows] if d["weights"][k] >= 0.01 or k == order[0])
    for k in shown:
        lines.append(f"  {tau[k]:>9.3g} {d['weights'][k]:>7.1%} {d['curve'][k]:>7.3f} {d['mass_above'][k]:>11.3f}")
    hidden = len(tau) - len(shown)
    if hidden:
        rest = 1 - sum(d["weights"][k] for k in shown)
        lines.append(f"  ({hidden} more thresholds with {rest:.1%} of the weight in all)")
    return "\n".join(lines)


def plot_curve(head, path, title="MinP+ cumulative weight"):
    """Save c(r) / c(1) against r (log axis) as a PNG, beside the c(r) of plain sampling (1 for
    every r) and of min-p 0.1 (0 below r = 0.1, 1 above): q ∝ p · c(r), so the curve is how much of
    each token's probability the head keeps. False when matplotlib is not installed."""
    try:
        from matplotlib.figure import Figure  # optional: no pyplot, so no global backend state
    except ImportError:
        return False
    tau = head.tau.tolist()
    c = head.cumulative_weights().detach()
    curve = (c / c[-1]).tolist()
    left = tau[1] / 10 if len(tau) > 1 else 1e-5  # log axis: draw tau_0 = 0's step from here
    fig = Figure(figsize=(6, 3.5))
    ax = fig.add_subplot()
    ax.step([left] + tau[1:], curve, where="post", lw=2, label="MinP+ (learned)")
    ax.step([left, 0.1, 1.0], [0, 1, 1], where="post", ls="--", color="gray", label="min-p 0.1")
    ax.plot([left, 1.0], [1, 1], ls=":", color="k", label="plain sampling")
    ax.set_xscale("log")
    ax.set(xlim=(left, 1.0), xlabel="r = p / max p", ylabel="c(r) / c(1): share of p kept", title=title)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    script.write_atomically(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    return True
