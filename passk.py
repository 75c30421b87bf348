"""pass@k and maj@k: the chance that k draws hold the right answer, and that their majority vote is right.

A sampler's answer to a problem is one of: the right answer, some other answer, or no answer (a
malformed reply). With q its chance of each outcome, for k independent draws

    pass@k = 1 − (1 − q_right)^k              (a verifier picks the right one if any draw has it)
    maj@k  = P(the right answer gets the most votes among the k draws)

malformed replies cast no vote and a tie at the top is broken by a fair coin, so a right answer
tied with t others counts 1 / (1 + t). maj@k is exact here: a dynamic programme over the
multinomial counts (plurality_win), summed over how many votes the right answer gets. Where q is
not known (answers of many tokens), n ≥ k sampled draws give unbiased estimates of both: pass@k as
1 − C(n − c, k) / C(n, k) with c right draws, and maj@k as the same programme over the draws'
counts with hypergeometric weights (the vote of a k-subset of the n draws, averaged over every
subset). Intervals are bootstrap percentiles over problems; frontiers join neighbouring settings
of one family as metrics.best_segments does, here to reach the most pass@16 at a given pass@1.
"""
import math

import numpy as np

import metrics

KS = (1, 2, 4, 8, 16)  # pass@k at these k
MAJ_KS = (4, 8, 16)  # maj@k at these


def pass_at_k(q_right, k):
    """Exact pass@k of each problem from its chance q_right of a right answer per draw."""
    q = np.asarray(q_right, dtype=np.float64)
    if k < 1 or np.any((q < -1e-9) | (q > 1 + 1e-9)):
        raise ValueError(f"pass@k needs k >= 1 (got {k}) and chances in [0, 1]")
    return 1.0 - (1.0 - np.clip(q, 0.0, 1.0)) ** k


def pass_at_k_from_draws(n, c, k):
    """Unbiased pass@k from n draws of which c are right: 1 − C(n − c, k) / C(n, k), as a stable product."""
    n, c = np.broadcast_arrays(np.asarray(n, dtype=np.int64), np.asarray(c, dtype=np.int64))
    if k < 1 or np.any(n < k) or np.any((c < 0) | (c > n)):
        raise ValueError(f"pass@{k} from draws needs n >= k >= 1 and 0 <= c <= n")
    out = np.empty(n.shape)
    for i in np.ndindex(n.shape):
        if n[i] - c[i] < k:
            out[i] = 1.0
        else:  # C(n-c, k) / C(n, k) = prod_{j < k} (n - c - j) / (n - j)
            j = np.arange(k)
            out[i] = 1.0 - np.prod((n[i] - c[i] - j) / (n[i] - j))
    return out


def plurality_win(w_right, w_others, w_none, k):
    """Σ over vote counts of the k draws where the right answer has the most votes (ties weighted
    1 / (1 + t) for t others tied with it) of the product of each outcome's weight at its count.

    w_right (B, k+1), w_others (B, C, k+1), w_none (B, k+1): weight of each outcome at each count
    0..k. With w(m) = q^m / m! the sum times k! is the multinomial chance (maj_at_k); with
    w(m) = C(n_j, m) it counts the k-subsets of n draws that vote right (maj_at_k_from_draws)."""
    B, C = w_others.shape[:2]
    total = np.zeros(B)
    for c in range(1, k + 1):  # the right answer's votes
        rest, ties = k - c, (k - c) // c  # votes left for the others and malformed; most others tied at c
        d = np.zeros((B, rest + 1, ties + 1))  # d[b, s, t]: weight of s votes spent, t others tied at c
        d[:, 0, 0] = 1.0
        for j in range(C):
            w = w_others[:, j]
            new = d * w[:, :1, None]
            for m in range(1, min(c, rest) + 1):
                if m < c:
                    new[:, m:] += d[:, :rest + 1 - m] * w[:, m, None, None]
                else:
                    new[:, m:, 1:] += d[:, :rest + 1 - m, :-1] * w[:, m, None, None]
            d = new
        spent = np.arange(rest + 1)
        by_ties = np.einsum("bst,bs->bt", d, w_none[:, rest - spent])  # the malformed take what is left
        total += w_right[:, c] * (by_ties / (1.0 + np.arange(ties + 1))).sum(-1)
    return total


def maj_at_k(q_right, q_others, k):
    """Exact maj@k of each problem: q_right (B,) the chance of the right answer per draw, q_others
    (B, C) that of each wrong answer; whatever is left (1 − all of them) is a malformed reply."""
    q_right, q_others = np.asarray(q_right, dtype=np.float64), np.asarray(q_others, dtype=np.float64)
    q_none = np.clip(1.0 - q_right - q_others.sum(-1), 0.0, 1.0)
    if k < 1 or q_others.ndim != 2 or np.any(q_others < -1e-9) or np.any(q_right < -1e-9) or np.any(q_none > 1):
        raise ValueError(f"maj@k needs k >= 1 (got {k}), q_right (B,), q_others (B, C), chances >= 0")
    m = np.arange(k + 1)
    fact = np.array([math.factorial(i) for i in m], dtype=np.float64)

    def weights(q):
        return np.clip(q, 0.0, 1.0)[..., None] ** m / fact

    win = plurality_win(weights(q_right), weights(q_others), weights(q_none), k) * math.factorial(k)
    return np.clip(win, 0.0, 1.0)


def maj_at_k_from_draws(right, others, n, k):
    """Unbiased maj@k from n draws per problem: right (B,) how many were right, others (B, C) how many
    gave each wrong answer (the rest were malformed); the vote of a random k of the n draws."""
    right, others, n = (np.asarray(a, dtype=np.int64) for a in (right, others, n))
    none = n - right - others.sum(-1)
    if k < 1 or np.any(n < k) or np.any(none < 0) or np.any(right < 0) or np.any(others < 0):
        raise ValueError(f"maj@{k} from draws needs n >= k >= 1 and counts that add up to at most n")
    m = np.arange(k + 1)

    def weights(count):
        return np.vectorize(math.comb, otypes=[np.float64])(count[..., None], m)

    subsets = np.vectorize(math.comb, otypes=[np.float64])(n, k)
    return plurality_win(weights(right), weights(others), weights(none), k) / subsets


# ----------------------------------------------------------------------------
# Intervals and frontiers over problems


def bootstrap_ci(values, draws):
    """95 % percentile interval of the mean of per-problem values (..., P) over draws (D, P) of counts."""
    means = np.asarray(values, dtype=np.float64) @ draws.T / draws.shape[1]
    return np.percentile(means, 2.5, -1), np.percentile(means, 97.5, -1)


def best_reachable(tune_x, tune_y, report_x, report_y, segments, levels, draws):
    """The most y a family reaches at each x level: the segment of neighbouring settings chosen on
    the tune problems (tune_x, tune_y: (S,) means), read on the report problems (report_x,
    report_y: (S, P) per-problem values) with its mixing weight solved there, for the whole set
    and each bootstrap draw (draws (D, P)). Returns (point (L,), resampled (D, L)); nan where no
    segment spans a level."""
    chosen = metrics.best_segments(tune_x, -np.asarray(tune_y), segments, levels)
    P = report_x.shape[1]
    point, resampled = np.full(len(levels), np.nan), np.full((len(draws), len(levels)), np.nan)
    for j, (level, pair) in enumerate(zip(levels, chosen)):
        if pair is None:
            continue
        xs, ys = report_x[list(pair)], report_y[list(pair)]
        point[j] = metrics.at_level(*xs.mean(1), *ys.mean(1), level)
        bx, by = xs @ draws.T / P, ys @ draws.T / P
        resampled[:, j] = metrics.at_level(bx[0], bx[1], by[0], by[1], level)
    return point, resampled


def frontier_table(curves):
    """{family: (point (L,), {other: (diff (L,), lo, hi)})}: each family against every other at the
    same levels, differences paired over the same bootstrap draws (95 % intervals); curves:
    {family: best_reachable(...)}."""
    table = {}
    for family, (point, boot) in curves.items():
        diffs = {}
        for other, (o_point, o_boot) in curves.items():
            if other == family:
                continue
            d = boot - o_boot
            ok = np.isfinite(d).any(0)
            lo, hi = np.full(len(point), np.nan), np.full(len(point), np.nan)
            lo[ok], hi[ok] = np.nanpercentile(d[:, ok], 2.5, 0), np.nanpercentile(d[:, ok], 97.5, 0)
            diffs[other] = (point - o_point, lo, hi)
        table[family] = (point, diffs)
    return table
