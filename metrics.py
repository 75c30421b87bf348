"""Metrics for evaluate.py: a sampling distribution q against the exact next-token distribution p*,
the quality-versus-diversity frontier of a family of samplers, and statistics of sampled text.

Per position, with q = softmax(logits) and p* the truth (both over the same V tokens):
    garbage G = q's mass on tokens with p* = 0          (what the sampler may say that is wrong)
    lost    L = p*'s mass on tokens q removes (q = 0)    (what the sampler can never say)
    TV        = 1/2 sum |p* - q|  >= max(G, L)           (G and L are parts of the positive and
                                                          negative halves of p* - q, each worth TV)
    KL(p*||q) = sum p* log(p* / q): infinite where L > 0
    H(q)      = -sum q log q                             (diversity)
    CE        = -log q(y) on the actual next token y:    infinite where q(y) = 0
Positions are summed per window (window_sums), so a bootstrap over windows only re-weights sums.
A family of settings (one sampler over its knob and the temperature) is compared with another at
matched diversity along its frontier (lower_hull, frontier, matched_table): chosen on one half of
the held-out windows, read on the other.
"""
import warnings

import numpy as np
import torch
import torch.nn.functional as F

# what window_sums adds up per window; means() turns them into per-position figures
STATS = ("garbage", "lost", "tv", "entropy", "kl", "kl_inf", "ce", "ce_inf", "positions")
COLUMNS = ("garbage", "lost", "tv", "kl", "kl_inf_share", "entropy", "ce", "ce_inf_share")


def truth_entropy(p_true):
    """H(p*) at each position (...): position_metrics takes it precomputed, as p* never changes."""
    return -torch.special.xlogy(p_true.float(), p_true.float()).sum(-1)


def position_metrics(p_true, logits, targets=None, p_entropy=None):
    """Each metric of the module docstring at every position: p_true (..., V) probabilities,
    logits (..., V) whose softmax is q (-inf = removed), targets (...) ids or None, p_entropy
    truth_entropy(p_true) or None. Returns a dict of (...) float64 tensors; kl and ce are +inf
    where infinite."""
    log_q = F.log_softmax(logits.float(), dim=-1)  # a finite logit keeps a finite log q: no underflow
    q = log_q.exp()
    p = p_true.float()
    removed = torch.isneginf(log_q)
    lost = torch.where(removed, p, 0.0).sum(-1)
    log_q = log_q.masked_fill_(removed, 0.0)  # q log q and p* log q are then 0 there, not nan
    p_entropy = truth_entropy(p) if p_entropy is None else p_entropy
    out = {
        "garbage": (1 - torch.where(p > 0, q, 0.0).sum(-1)).clamp_min(0),
        "lost": lost,
        "tv": 0.5 * (p - q).abs().sum(-1),
        "entropy": -(q * log_q).sum(-1),
        # sum p* log p* - sum p* log q: infinite where a token with p* > 0 is removed
        "kl": torch.where(lost > 0, torch.inf, -p_entropy - (p * log_q).sum(-1)),
    }
    if targets is not None:
        ce = -log_q.gather(-1, targets[..., None])[..., 0]
        out["ce"] = torch.where(removed.gather(-1, targets[..., None])[..., 0], torch.inf, ce)
    return {k: v.double() for k, v in out.items()}


def window_sums(metrics):
    """Per-window sums (W, len(STATS)) float64 of position_metrics over (W, T) positions; the
    infinite kl / ce are counted (kl_inf, ce_inf) and left out of their sums."""
    W, T = metrics["tv"].shape
    sums = torch.zeros(W, len(STATS), dtype=torch.float64)
    for i, name in enumerate(STATS[:4]):
        sums[:, i] = metrics[name].sum(1)
    for name in ("kl", "ce"):
        if name not in metrics:
            continue
        value = metrics[name]
        infinite = torch.isinf(value)
        sums[:, STATS.index(name)] = torch.where(infinite, 0.0, value).sum(1)
        sums[:, STATS.index(name + "_inf")] = infinite.sum(1).double()
    sums[:, -1] = T
    return sums.numpy()


def means(sums):
    """Per-position figures (dict of COLUMNS) from sums over positions (..., len(STATS)): kl and ce
    are means over the positions where they are finite (nan when none is), with their infinite
    share beside them."""
    s = {name: sums[..., i] for i, name in enumerate(STATS)}
    n = s["positions"]
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "garbage": s["garbage"] / n, "lost": s["lost"] / n, "tv": s["tv"] / n, "entropy": s["entropy"] / n,
            "kl": s["kl"] / (n - s["kl_inf"]), "kl_inf_share": s["kl_inf"] / n,
            "ce": s["ce"] / (n - s["ce_inf"]), "ce_inf_share": s["ce_inf"] / n,
        }


def bootstrap_weights(n_windows, n_draws, seed):
    """(n_draws, n_windows) counts: how often each window is drawn in each resample (with
    replacement, n_windows draws each). Weighted window sums give the resampled sums."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(n_windows, np.full(n_windows, 1 / n_windows), size=n_draws).astype(np.float64)


# ----------------------------------------------------------------------------
# Frontiers: the best quality a family of samplers reaches at each diversity


def lower_hull(x, y):
    """Indices of the points (x, y) on their lower convex hull, in increasing x (nan points skipped).

    Why the hull: between two settings a and b a sampler may flip a coin at every position, using
    a with probability w and b otherwise. Its expected per-position diversity and quality are then
    exactly the interpolations w x_a + (1 - w) x_b and w y_a + (1 - w) y_b; so every point on a segment
    between two settings is achievable, and the hull's lower edge is the best the family can do at
    each diversity. (The per-position mixture q = w q_a + (1 - w) q_b, sampled directly, does at
    least as well: H and 1 - L are concave in q, TV, G, KL and CE convex, so the mixture is at
    least as diverse and at most as bad as the interpolation.)"""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    order = [i for i in np.lexsort((y, x)) if np.isfinite(x[i]) and np.isfinite(y[i])]
    hull = []
    for i in order:
        if hull and x[hull[-1]] == x[i]:
            continue  # same x, higher y (lexsort put the lowest first)
        while len(hull) >= 2:
            a, b = hull[-2], hull[-1]  # drop b when it lies on or above the segment from a to i
            if (y[b] - y[a]) * (x[i] - x[a]) >= (y[i] - y[a]) * (x[b] - x[a]):
                hull.pop()
            else:
                break
        hull.append(i)
    return hull


def along_chain(x, y, levels):
    """y interpolated linearly at each level of x along a chain of points (..., n) taken in their
    order (a hull's vertices): the first segment whose ends bracket the level; nan when none does.
    x, y: (..., n) arrays (a leading axis of bootstrap resamples is fine); returns (..., len(levels))."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    out = np.full(x.shape[:-1] + (len(levels),), np.nan)
    if x.shape[-1] == 1:
        for j, level in enumerate(levels):
            out[..., j] = np.where(x[..., 0] == level, y[..., 0], np.nan)
        return out
    x0, x1, y0, y1 = x[..., :-1], x[..., 1:], y[..., :-1], y[..., 1:]
    for j, level in enumerate(levels):
        inside = (np.minimum(x0, x1) <= level) & (level <= np.maximum(x0, x1))
        first = inside.argmax(-1)[..., None]
        pick = lambda a: np.take_along_axis(a, first, -1)[..., 0]
        a0, a1, b0, b1 = pick(x0), pick(x1), pick(y0), pick(y1)
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(a1 == a0, 0.0, (level - a0) / (a1 - a0))
        out[..., j] = np.where(inside.any(-1), b0 + share * (b1 - b0), np.nan)
    return out


def frontier(tune_means, report_sums, members, x_name, y_name, levels, draws):
    """Quality y at each diversity level x on one family's frontier: the settings on the lower
    convex hull of its (x, y) points on the tuning half (tune_means: means() of every setting;
    lower_hull: interpolating between them is achievable), read along that chain on the report
    half (report_sums: (settings, W, STATS) window sums), for the whole half and for each bootstrap
    draw (draws: (B, W) counts). members: the family's setting indices; x_name "kept" is 1 - lost.
    Returns (point (levels,), resampled (B, levels))."""
    x_tune = np.asarray([tune_means[x_name][i] for i in members])
    y_tune = np.asarray([tune_means[y_name][i] for i in members])
    chain = [members[k] for k in lower_hull(x_tune, y_tune)]
    full = means(report_sums[chain].sum(1))
    resampled = means(np.einsum("bw,swk->bsk", draws, report_sums[chain]))
    full["kept"], resampled["kept"] = 1 - full["lost"], 1 - resampled["lost"]
    return (along_chain(full[x_name], full[y_name], levels),
            along_chain(resampled[x_name], resampled[y_name], levels))


def matched_table(fams, tune_means, report_sums, levels, draws, x_name="entropy", y_name="tv",
                  refs=("temperature", "minpplus")):
    """{family: (values (levels,), {reference: (diff (levels,), lo, hi)})} at matched diversity,
    differences paired over the same bootstrap draws of report windows (95 % intervals)."""
    curves = {f: frontier(tune_means, report_sums, m, x_name, y_name, levels, draws) for f, m in fams.items()}
    table = {}
    for family, (point, boot) in curves.items():
        diffs = {}
        for ref in refs:
            if ref != family:
                d = boot - curves[ref][1]
                with warnings.catch_warnings():  # a level outside a frontier: nan, shown as a dash
                    warnings.simplefilter("ignore", RuntimeWarning)
                    lo, hi = np.nanpercentile(d, 2.5, 0), np.nanpercentile(d, 97.5, 0)
                diffs[ref] = (point - curves[ref][0], lo, hi)
        table[family] = (point, diffs)
    return table


# ----------------------------------------------------------------------------
# Sampled text


def distinct_n(sequences, n):
    """Distinct n-grams over all sequences / all n-grams (1 = no n-gram repeats anywhere)."""
    grams = [tuple(s[i:i + n]) for s in sequences for i in range(len(s) - n + 1)]
    return len(set(grams)) / len(grams) if grams else float("nan")


def repetition(sequences, n=4):
    """Mean over sequences of the share of n-grams that repeat an earlier one in the same sequence."""
    shares = []
    for s in sequences:
        grams = [tuple(s[i:i + n]) for i in range(len(s) - n + 1)]
        if grams:
            shares.append(1 - len(set(grams)) / len(grams))
    return float(np.mean(shares)) if shares else float("nan")


def truth_scores(p_next, tokens):
    """(valid (B,) bool, nll (B,) mean -log p* per token, inf when invalid) of continuations
    tokens (B, N) under p_next (B, N, V): p* of each token given everything before it."""
    p = np.take_along_axis(np.asarray(p_next), np.asarray(tokens)[..., None], -1)[..., 0]
    valid = (p > 0).all(-1)
    with np.errstate(divide="ignore"):
        nll = -np.log(p).mean(-1)
    return valid, nll
