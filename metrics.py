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
matched diversity along its frontier (best_segments, frontier, matched_table): chosen on one half
of the held-out windows, read on the other.
"""
import warnings

import numpy as np
import torch
import torch.nn.functional as F

import synthetic

# what window_sums adds up per window; means() turns them into per-position figures
STATS = ("garbage", "lost", "tv", "entropy", "kl", "kl_inf", "ce", "ce_inf", "positions")
COLUMNS = ("garbage", "lost", "tv", "kl", "kl_inf_share", "entropy", "ce", "ce_inf_share")


def position_metrics(p_true, logits, targets=None, p_entropy=None):
    """Each metric of the module docstring at every position: p_true (..., V) probabilities,
    logits (..., V) whose softmax is q (-inf = removed), targets (...) ids or None, p_entropy
    synthetic.truth_entropy(p_true) or None (a caller scoring many q precomputes it once: p*
    never changes). Returns a dict of (...) float64 tensors; kl and ce are +inf
    where infinite."""
    log_q = F.log_softmax(logits.float(), dim=-1)  # a finite logit keeps a finite log q: no underflow
    q = log_q.exp()
    p = p_true.float()
    removed = torch.isneginf(log_q)
    lost = torch.where(removed, p, 0.0).sum(-1)
    log_q = log_q.masked_fill_(removed, 0.0)  # q log q and p* log q are then 0 there, not nan
    p_entropy = synthetic.truth_entropy(p) if p_entropy is None else p_entropy
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
            "ce_all": np.where(s["ce_inf"] > 0, np.inf, s["ce"] / n),  # over every position: inf if any is
        }


def bootstrap_weights(n_windows, n_draws, seed):
    """(n_draws, n_windows) counts: how often each window is drawn in each resample (with
    replacement, n_windows draws each). Weighted window sums give the resampled sums."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(n_windows, np.full(n_windows, 1 / n_windows), size=n_draws).astype(np.float64)


# ----------------------------------------------------------------------------
# Frontiers: the best quality a family of samplers reaches at each diversity


def best_segments(x, y, segments, levels):
    """For each level, the segment (a, b) of neighbouring settings whose interpolation reaches
    x = level with the least y, or None where no segment spans the level. x, y: one value per
    setting; segments: (a, b) index pairs.

    Why segments: a sampler may flip a coin at every position between settings a and b, using a
    with probability w and b otherwise. Its expected per-position diversity and quality are then
    exactly w x_a + (1 - w) x_b and w y_a + (1 - w) y_b, so every point of a segment is achievable.
    (The per-position mixture q = w q_a + (1 - w) q_b, sampled directly, does at least as well:
    H and 1 - L are concave in q, TV, G, KL and CE convex.) Only neighbouring settings are joined
    (next temperature, next knob value): a fine grid then tells the family's real curve, while a
    hull over all pairs would let every family mix its best setting with the grid's hottest one."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    out = []
    for level in levels:
        best, best_y = None, np.inf
        for a, b in segments:
            lo, hi = min(x[a], x[b]), max(x[a], x[b])
            if not lo <= level <= hi:
                continue
            w = 1.0 if hi == lo else (x[b] - level) / (x[b] - x[a])  # the weight of a
            value = w * y[a] + (1 - w) * y[b]
            if value < best_y:
                best, best_y = (a, b), value
        out.append(best)
    return out


def at_level(xa, xb, ya, yb, level):
    """y on the segment from (xa, ya) to (xb, yb) where x = level, the weight kept in [0, 1] (a
    mixture of the two settings; when the level lies just outside the segment, its nearer end)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.where(xa == xb, 1.0, np.clip((xb - level) / (xb - xa), 0.0, 1.0))
    return w * ya + (1 - w) * yb


def frontier(tune_means, report_sums, segments, x_name, y_name, levels, draws):
    """Quality y at each diversity level x on one family's frontier: the segment of neighbouring
    settings that reaches the level with the least y on the tuning half (tune_means: means() of
    every setting; best_segments), read on the report half (report_sums: (settings, W, STATS)
    window sums) with its mixing weight solved there, for the whole half and for each bootstrap
    draw (draws: (B, W) counts). x_name "kept" is 1 - lost. Returns (point (levels,),
    resampled (B, levels)); nan where the family does not reach a level."""
    tune = {**tune_means, "kept": 1 - np.asarray(tune_means["lost"])}
    chosen = best_segments(tune[x_name], tune[y_name], segments, levels)
    point, resampled = np.full(len(levels), np.nan), np.full((len(draws), len(levels)), np.nan)
    for j, (level, pair) in enumerate(zip(levels, chosen)):
        if pair is None:
            continue
        full = means(report_sums[list(pair)].sum(1))
        boot = means(np.einsum("bw,swk->bsk", draws, report_sums[list(pair)]))
        for m in (full, boot):
            m["kept"] = 1 - m["lost"]
        point[j] = at_level(*full[x_name], *full[y_name], level)
        resampled[:, j] = at_level(*boot[x_name].T, *boot[y_name].T, level)
    return point, resampled


def matched_table(fams, tune_means, report_sums, levels, draws, x_name="entropy", y_name="tv",
                  refs=("temperature", "minpplus")):
    """{family: (values (levels,), {reference: (diff (levels,), lo, hi)})} at matched diversity
    (fams: {family: its segments of neighbouring settings}), differences paired over the same
    bootstrap draws of report windows (95 % intervals)."""
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


def paired_tv_diffs(rows, report_sums, draws, ref_name="minpplus λ=1"):
    """{(T, name): (TV - TV of the row (T, ref_name), 95 % interval)} over the same bootstrap draws;
    rows: {(T, name): setting index}, report_sums: (settings, W, stats) per-window sums."""
    idx = sorted(set(rows.values()))
    boot = dict(zip(idx, means(np.einsum("bw,swk->bsk", draws, report_sums[idx]))["tv"].T))
    full = dict(zip(idx, means(report_sums[idx].sum(1))["tv"]))
    out = {}
    for (T, name), i in rows.items():
        ref = rows.get((T, ref_name))
        if ref is None:
            out[(T, name)] = (np.nan, np.nan, np.nan)
            continue
        d = boot[i] - boot[ref]
        out[(T, name)] = (full[i] - full[ref], np.percentile(d, 2.5), np.percentile(d, 97.5))
    return out


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
