"""pass@k and maj@k against known answers and brute-force enumeration of every sequence of draws."""
import itertools
import math

import numpy as np
import pytest

import metrics
import passk


def brute_force_maj(q, k):
    """maj@k by listing every sequence of k draws: q[0] the right answer, q[1:-1] wrong ones, q[-1] malformed."""
    win = 0.0
    for seq in itertools.product(range(len(q)), repeat=k):
        votes = np.bincount([s for s in seq if s != len(q) - 1], minlength=len(q) - 1)
        if votes[0] > 0 and votes[0] == votes.max():
            win += np.prod([q[s] for s in seq]) / (votes == votes.max()).sum()
    return win


def test_pass_at_k_known_answers():
    assert passk.pass_at_k(0.5, 2) == pytest.approx(0.75)
    assert passk.pass_at_k([0.0, 1.0, 0.1], 16).tolist() == pytest.approx([0.0, 1.0, 1 - 0.9 ** 16])
    with pytest.raises(ValueError, match="k >= 1"):
        passk.pass_at_k(0.5, 0)


def test_pass_at_k_from_draws_is_unbiased():
    """Its mean over the binomial number of right draws is the closed form 1 - (1 - p)^k."""
    for n, k, p in ((4, 2, 0.5), (32, 16, 0.07), (10, 1, 0.3), (20, 8, 0.9)):
        c = np.arange(n + 1)
        chance = np.array([math.comb(n, i) * p ** i * (1 - p) ** (n - i) for i in c])
        assert (chance * passk.pass_at_k_from_draws(n, c, k)).sum() == pytest.approx(1 - (1 - p) ** k)
    assert passk.pass_at_k_from_draws(3, [0, 1, 3], 3).tolist() == [0.0, 1.0, 1.0]  # n = k: any right draw
    assert passk.pass_at_k_from_draws(4, 1, 2) == pytest.approx(0.5)  # half the pairs of 4 hold the right one
    with pytest.raises(ValueError, match="n >= k"):
        passk.pass_at_k_from_draws(3, 1, 4)


def test_maj_at_k_by_hand():
    # only the right answer or malformed: any right vote wins, so maj@k = pass@k
    assert passk.maj_at_k([0.1], [[0.0]], 4) == pytest.approx(1 - 0.9 ** 4)
    # right p, one wrong answer 1 - p: k = 2 ties half the time, so maj@2 = p^2 + p(1 - p) = p
    assert passk.maj_at_k([0.3], [[0.7]], 2) == pytest.approx(0.3)
    assert passk.maj_at_k([0.3], [[0.7]], 3) == pytest.approx(0.3 ** 3 + 3 * 0.3 ** 2 * 0.7)
    assert passk.maj_at_k([1.0, 0.0], [[0.0, 0.0], [0.5, 0.5]], 16).tolist() == pytest.approx([1.0, 0.0])
    # a plurality, not a majority: 0.4 right against four wrong answers of 0.15 wins the vote of 16 most often
    assert passk.maj_at_k([0.4], [[0.15] * 4], 16)[0] > 0.7 > 0.4  # the vote beats one draw


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5])
def test_maj_at_k_matches_brute_force(k):
    rng = np.random.default_rng(k)
    for _ in range(4):
        q = rng.dirichlet(np.ones(4))  # right, two wrong answers, malformed
        assert passk.maj_at_k(q[:1], q[None, 1:3], k)[0] == pytest.approx(brute_force_maj(q, k), abs=1e-12)


def test_maj_at_k_is_a_batch_of_problems():
    rng = np.random.default_rng(0)
    q = rng.dirichlet(np.ones(5), size=6)
    batch = passk.maj_at_k(q[:, 0], q[:, 1:4], 8)
    single = [passk.maj_at_k(row[:1], row[None, 1:4], 8)[0] for row in q]
    assert batch == pytest.approx(single, abs=1e-12)
    assert ((0 <= batch) & (batch <= 1)).all()


def test_maj_at_k_from_draws_is_unbiased():
    """Averaged over every way n draws can fall, the estimate is the exact maj@k."""
    q, n, k = np.array([0.35, 0.3, 0.2, 0.15]), 6, 3  # right, two wrong, malformed
    expected = 0.0
    for counts in itertools.product(range(n + 1), repeat=3):
        if sum(counts) > n:
            continue
        full = (*counts, n - sum(counts))
        chance = math.factorial(n) / np.prod([math.factorial(c) for c in full]) * np.prod(q ** np.array(full))
        expected += chance * passk.maj_at_k_from_draws([counts[0]], [counts[1:]], [n], k)[0]
    assert expected == pytest.approx(passk.maj_at_k(q[:1], q[None, 1:3], k)[0], abs=1e-12)
    # n = k: the vote of the draws themselves
    assert passk.maj_at_k_from_draws([2, 1, 1], [[1], [2], [1]], [3, 3, 3], 3).tolist() == pytest.approx([1, 0, 0.5])
    with pytest.raises(ValueError, match="n >= k"):
        passk.maj_at_k_from_draws([1], [[1]], [2], 3)


def test_bootstrap_ci():
    draws = metrics.bootstrap_weights(50, 200, 0)
    lo, hi = passk.bootstrap_ci(np.full(50, 0.25), draws)
    assert lo == pytest.approx(0.25) and hi == pytest.approx(0.25)
    values = np.r_[np.zeros(25), np.ones(25)]
    lo, hi = passk.bootstrap_ci(values, draws)
    assert 0.3 < lo < 0.5 < hi < 0.7


def test_best_reachable_interpolates_neighbours_and_reads_the_report_set():
    # three settings of one family: x = pass@1, y = pass@16; only (0, 1) and (1, 2) are neighbours
    tune_x, tune_y = np.array([0.5, 0.4, 0.2]), np.array([0.6, 0.8, 0.7])
    report_x = np.array([[0.5, 0.5], [0.4, 0.4], [0.2, 0.2]])
    report_y = np.array([[0.6, 0.6], [0.8, 0.8], [0.7, 0.7]])
    draws = metrics.bootstrap_weights(2, 10, 0)
    point, boot = passk.best_reachable(tune_x, tune_y, report_x, report_y, [(0, 1), (1, 2)], [0.45, 0.3, 0.6], draws)
    assert point[:2] == pytest.approx([0.7, 0.75]) and np.isnan(point[2])  # 0.6: beyond every setting
    assert boot[:, 0] == pytest.approx(np.full(10, 0.7))
    table = passk.frontier_table({"a": (point, boot), "b": (point - 0.1, boot - 0.1)})
    diff, lo, hi = table["a"][1]["b"]
    assert diff[:2] == pytest.approx([0.1, 0.1]) and lo[0] == pytest.approx(0.1) and np.isnan(diff[2])
