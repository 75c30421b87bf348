"""The specification of evaluate.py and metrics.py: every metric on distributions with known
answers, the frontier's interpolation, and the whole evaluation end to end (--quick)."""
import csv
import importlib.util
import math

import numpy as np
import pytest
import torch

import synthetic
import evaluate
import train
import metrics
from head import MinPPlusHead
from sample import filter_logits


def metric_values(p, q, targets=None):
    """position_metrics of one or more rows of probabilities (0 in q = removed)."""
    out = metrics.position_metrics(torch.tensor(p), torch.tensor(q).log(), None if targets is None else
                                   torch.tensor(targets))
    return {k: v.tolist() for k, v in out.items()}


def test_metrics_of_a_hand_made_distribution():
    p, q = [0.5, 0.5, 0.0, 0.0], [0.4, 0.3, 0.3, 0.0]
    m = metric_values([p], [q], [1])
    assert m["garbage"][0] == pytest.approx(0.3)  # q's mass where p* = 0
    assert m["lost"][0] == 0  # q removes only a token p* never emits
    assert m["tv"][0] == pytest.approx(0.5 * (0.1 + 0.2 + 0.3))
    assert m["kl"][0] == pytest.approx(0.5 * math.log(0.5 / 0.4) + 0.5 * math.log(0.5 / 0.3), rel=1e-6)
    assert m["entropy"][0] == pytest.approx(-(0.4 * math.log(0.4) + 2 * 0.3 * math.log(0.3)), rel=1e-6)
    assert m["ce"][0] == pytest.approx(-math.log(0.3), rel=1e-6)


def test_a_distribution_that_removes_a_true_token_has_infinite_kl_and_loses_its_mass():
    p = [[0.5, 0.5, 0.0, 0.0]] * 2
    q = [[1.0, 0.0, 0.0, 0.0]] * 2  # greedy: token 1 (p* = 0.5) removed
    m = metric_values(p, q, [0, 1])
    assert m["garbage"] == [0, 0] and m["lost"] == [0.5, 0.5] and m["tv"] == [0.5, 0.5]
    assert m["kl"] == [math.inf, math.inf] and m["entropy"] == [0, 0]
    assert m["ce"][0] == pytest.approx(0, abs=1e-7) and m["ce"][1] == math.inf  # the actual token 1 was removed


def test_the_truth_itself_scores_zero_and_its_own_entropy():
    p = [[0.25] * 4, [0.7, 0.2, 0.1, 0.0]]
    m = metric_values(p, p)
    for name in ("garbage", "lost", "tv", "kl"):
        assert m[name] == pytest.approx([0, 0], abs=1e-6), name
    assert m["entropy"] == pytest.approx([math.log(4), -(0.7 * math.log(0.7) + 0.2 * math.log(0.2) +
                                                          0.1 * math.log(0.1))], rel=1e-6)


def test_window_sums_keep_infinite_kl_and_ce_out_of_the_means_and_count_them():
    p = torch.tensor([[[0.5, 0.5], [0.5, 0.5]], [[1.0, 0.0], [0.5, 0.5]]])
    q_logits = torch.tensor([[[0.0, 0.0], [0.0, -math.inf]], [[0.0, 0.0], [0.0, 0.0]]])
    y = torch.tensor([[0, 1], [0, 0]])
    sums = metrics.window_sums(metrics.position_metrics(p, q_logits, y))
    assert sums.shape == (2, len(metrics.STATS)) and (sums[:, -1] == 2).all()
    m = metrics.means(sums.sum(0))
    assert m["kl_inf_share"] == 0.25 and m["kl"] == pytest.approx(math.log(2) / 3)  # 0, 0, log 2 (and one inf)
    assert m["ce_inf_share"] == 0.25 and m["ce"] == pytest.approx(math.log(2))  # log 2 three times (and one inf)
    assert m["lost"] == pytest.approx(0.5 / 4) and m["garbage"] == pytest.approx(0.5 / 4)


def test_total_variation_bounds_garbage_and_lost_mass_on_random_cases():
    g = torch.Generator().manual_seed(0)
    p = torch.rand(200, 50, generator=g) * (torch.rand(200, 50, generator=g) < 0.3)
    p[:, 0] += 0.01  # every row has some truth
    p /= p.sum(-1, keepdim=True)
    logits = torch.randn(200, 50, generator=g) * 3
    for method, params in (("temperature", {}), ("min_p", dict(min_p=0.1)), ("top_k", dict(top_k=3)),
                           ("top_p", dict(top_p=0.5)), ("temperature", dict(temperature=3.0))):
        m = metrics.position_metrics(p, filter_logits(logits, method, **params))
        assert (m["tv"] >= torch.maximum(m["garbage"], m["lost"]) - 1e-6).all(), method
        assert ((m["garbage"] >= 0) & (m["lost"] >= 0) & (m["tv"] <= 1 + 1e-6)).all()


def test_mixing_two_settings_is_at_least_as_good_as_interpolating_them():
    # the frontier's claim (metrics.best_segments): the per-position mixture beats the coin flip's averages
    g = torch.Generator().manual_seed(1)
    p = torch.softmax(torch.randn(100, 30, generator=g) * 2, -1) * (torch.rand(100, 30, generator=g) < 0.5)
    p = (p + 1e-3 * torch.nn.functional.one_hot(torch.zeros(100, dtype=torch.long), 30)) / p.sum(-1, keepdim=True)
    p /= p.sum(-1, keepdim=True)
    za, zb = (filter_logits(torch.randn(100, 30, generator=g) * 2, "min_p", min_p=m) for m in (0.05, 0.3))
    qa, qb = za.softmax(-1), zb.softmax(-1)
    for w in (0.2, 0.5, 0.9):
        mix = metrics.position_metrics(p, (w * qa + (1 - w) * qb).log())
        a, b = metrics.position_metrics(p, za), metrics.position_metrics(p, zb)
        line = {k: w * a[k] + (1 - w) * b[k] for k in a}
        assert (mix["entropy"] >= line["entropy"] - 1e-6).all() and (mix["tv"] <= line["tv"] + 1e-6).all()
        assert (mix["lost"] <= line["lost"] + 1e-6).all() and torch.allclose(mix["garbage"], line["garbage"], atol=1e-6)


def test_the_best_segment_of_neighbouring_settings_is_chosen_at_each_level():
    x = [0.0, 1.0, 2.0, 3.0, 1.5]
    y = [1.0, 0.2, 0.5, 0.1, 2.0]
    segments = [(0, 1), (1, 2), (2, 3), (1, 4), (0, 3)]
    chosen = metrics.best_segments(x, y, segments, [0.5, 1.5, 2.5, 4.0])
    # at 1.5: 0.35 on (1, 2) beats 0.55 on (0, 3) and 1.1 on (1, 4); at 2.5: 0.25 on (0, 3) beats 0.3 on (2, 3)
    assert chosen == [(0, 1), (1, 2), (0, 3), None]
    assert metrics.at_level(1.0, 2.0, 0.2, 0.5, 1.5) == pytest.approx(0.35)
    assert metrics.at_level(1.0, 2.0, 0.2, 0.5, 2.5) == pytest.approx(0.5)  # outside: the nearer end, no extrapolation
    assert metrics.at_level(np.array([1.0, 1.0]), np.array([2.0, 3.0]), 0.0, 1.0, 2.0) == pytest.approx([1.0, 0.5])


def test_a_frontier_with_a_coarse_grid_interpolates_instead_of_overshooting():
    # a family whose settings have entropies 1 and 3: at entropy 2 it gets the midpoint, not the next point
    sums = np.zeros((2, 1, len(metrics.STATS)))
    col = metrics.STATS.index
    sums[:, 0, col("positions")] = 1
    sums[:, 0, col("entropy")] = [1.0, 3.0]
    sums[:, 0, col("tv")] = [0.1, 0.3]
    tune = metrics.means(sums.sum(1))
    point, boot = metrics.frontier(tune, sums, [(0, 1)], "entropy", "tv", [2.0, 4.0], np.ones((3, 1)))
    assert point[0] == pytest.approx(0.2) and boot[:, 0] == pytest.approx([0.2] * 3)
    assert np.isnan(point[1]) and np.isnan(boot[:, 1]).all()  # beyond the family's reach


def test_segments_join_neighbouring_temperatures_and_knob_values_through_plain_sampling():
    grid = evaluate.setting_grid([1.0, 2.0], methods=("min_p",))
    index = {(s["method"], s["temperature"], s["param"]): i for i, s in enumerate(grid)}
    segments = set(evaluate.family_segments(grid, "min_p"))
    plain1, plain2 = index[("temperature", 1.0, None)], index[("temperature", 2.0, None)]
    weakest1 = index[("min_p", 1.0, evaluate.KNOBS["min_p"][0])]
    weakest2 = index[("min_p", 2.0, evaluate.KNOBS["min_p"][0])]
    assert {(plain1, plain2), (plain1, weakest1), (weakest1, weakest2)} <= segments
    assert (plain1, index[("min_p", 1.0, 0.3)]) not in segments  # only neighbours are joined
    nodes = 1 + len(evaluate.KNOBS["min_p"])  # plain, then each knob value
    assert len(segments) == nodes * 1 + 2 * (nodes - 1)  # every node joined across T, the knob steps at each T
    assert set(evaluate.family_segments(grid, "temperature")) == {(plain1, plain2)}


def test_sample_statistics():
    assert metrics.distinct_n([[1, 2, 3, 1, 2]], 2) == 3 / 4  # (1,2) twice
    assert metrics.distinct_n([[1, 2], [1, 2]], 2) == 1 / 2
    assert metrics.repetition([[1, 2, 3, 4, 1, 2, 3, 4]], 4) == pytest.approx(1 - 4 / 5)
    assert metrics.repetition([[1, 2, 3, 4, 5]], 4) == 0
    p_next = np.array([[[0.5, 0.5, 0.0], [0.0, 1.0, 0.0]], [[0.5, 0.5, 0.0], [0.0, 1.0, 0.0]]])
    valid, nll = metrics.truth_scores(p_next, np.array([[0, 1], [0, 2]]))
    assert valid.tolist() == [True, False] and nll[0] == pytest.approx(math.log(2) / 2) and nll[1] == math.inf


def test_disjoint_truth_windows_start_at_eos_and_never_overlap():
    tokens = np.array([0, 5, 6, 0, 7, 0, 8, 9, 10, 0, 11, 12, 13, 14, 0, 1])
    windows = synthetic.document_windows(tokens, 0, 10, 4, disjoint=True)
    assert windows.tolist() == [[0, 5, 6, 0], [0, 8, 9, 10], [0, 11, 12, 13]]
    assert synthetic.document_windows(tokens, 0, 2, 4, disjoint=True).tolist() == [[0, 5, 6, 0], [0, 11, 12, 13]]
    assert synthetic.document_windows(tokens, 0, 2, 4).tolist() == [[0, 5, 6, 0], [0, 7, 0, 8]]  # the first ones


def test_sampler_params_give_minpplus_its_head_and_strength():
    weights = torch.zeros(32)
    weights[0], weights[10] = 0.5, 1.0
    head = MinPPlusHead.from_weights(MinPPlusHead().tau, weights)
    z = torch.randn(3, 60) * 3
    params = evaluate.sampler_params(dict(method="minpplus", temperature=1.5, param=0.0), {1.5: head})
    assert torch.equal(filter_logits(z, "minpplus", **params), z / 1.5)  # lambda 0: plain temperature
    params = evaluate.sampler_params(dict(method="minpplus", temperature=1.5, param=1.0), {1.5: head})
    assert torch.equal(filter_logits(z, "minpplus", **params), head(z / 1.5))


def test_quick_runs_end_to_end(tmp_path):
    lang = synthetic.SyntheticLanguage(0)
    text = lang.decode(lang.sample_tokens(3000, seed=5))
    (tmp_path / "some.txt").write_text(text)
    (tmp_path / "other.txt").write_text(lang.decode(lang.sample_tokens(3000, seed=6)))
    evaluate.main(["--quick", "--out_dir", str(tmp_path), "--text", str(tmp_path / "some.txt"),
                   "--fit_text", str(tmp_path / "other.txt")])
    with open(tmp_path / "results.csv") as f:
        rows = list(csv.DictReader(f))
    for column in ("model", "temperature", "method", "param", "garbage", "lost", "tv", "kl", "kl_inf_share",
                   "entropy", "ce"):
        assert column in rows[0], column
    assert {r["method"] for r in rows} == {"temperature", *evaluate.KNOBS}
    for r in rows:
        assert float(r["tv"]) >= max(float(r["garbage"]), float(r["lost"])) - 1e-6
    summary = (tmp_path / "summary.md").read_text()
    for section in ("Per temperature", "Matched diversity: TV", "Samples"):
        assert section in summary
    assert (tmp_path / "samples.csv").exists()
    with open(tmp_path / "text.csv") as f:
        text_rows = list(csv.DictReader(f))
    assert {float(r["temperature"]) for r in text_rows} == {0.8, 1.0, 1.3, 1.5, 2.0}  # --text_t_grid + reported
    assert {r["method"] for r in text_rows} == {"temperature", "minpplus", "min_p", "top_p"}
    plain = [r for r in text_rows if r["method"] == "temperature"]
    assert all(0 < float(r["bits_per_byte"]) < 20 and float(r["removed"]) == 0 for r in plain)
    assert any(float(r["removed"]) > 0 and float(r["ce"]) == math.inf for r in text_rows if r["method"] == "min_p")
    auto = [r for r in text_rows if r["auto"] == "True"]
    assert len(auto) == 1 and auto[0]["method"] == "minpplus" and float(auto[0]["param"]) == 1.0  # one MinP+ auto
    for section in ("MinP+ picks its temperature", "MinP+ fitted on other.txt", "MinP+ auto picks T =",
                    "CE (nats/token", "Share of real next tokens removed", "model_nll"):
        assert section in summary, section
    if importlib.util.find_spec("matplotlib"):  # plots only with matplotlib installed
        assert (tmp_path / "frontier.png").stat().st_size > 0 and (tmp_path / "garbage_vs_lost.png").exists()
        assert (tmp_path / "text_frontier.png").stat().st_size > 0


@pytest.mark.parametrize("flags, message", [
    (["--t_grid", "a:b:c"], "--t_grid"), (["--temperatures", "0"], "temperature"), (["--windows", "0"], "at least 1"),
    (["--t_grid", "0.7:3.0:0"], "a step > 0"), (["--t_grid", "1:0.5:0.1"], "start <= stop"),
    (["--t_grid", "0.001:3:0.0001"], r"holds 29,991 temperatures, more than 200: use a larger step"),
    (["--t_grid", "0.1:1e9:1e-9"], r"holds [\d,]+ temperatures, more than 200"),
    (["--t_grid", "0.7:3e20:0.05"], r"holds [\d,]+ temperatures"), (["--t_grid", "0:1e300:1e-300"], "holds endless"),
    (["--quick", "--ckpt", "elsewhere.pt"], "--quick trains its own tiny model: drop --ckpt or drop --quick"),
    (["--temperatures", "1", "nan"], "holds nan: every temperature must be a finite number"),
    (["--temperatures", "4e-7"], "--temperatures holds 4e-07: .* >= 1e-6"),
    (["--fit_text", "a.txt"], "--fit_text needs --text"), (["--text_knobs", "nucleus"], "unknown method 'nucleus'"),
    (["--text_knobs", "min_p=a"], "write METHOD=V,V"), (["--text_t_grid", "0,1"], "--text_t_grid holds 0"),
])
def test_bad_flags_stop_with_one_line(flags, message):
    with pytest.raises(SystemExit, match=message):
        evaluate.main(flags)


def test_flags_that_need_the_model_are_checked_before_any_evaluation(tmp_path, syn_dir, monkeypatch):
    train.main(["--data_dir", syn_dir, "--out_dir", str(tmp_path), "--dim", "32", "--n_layers", "1", "--n_heads", "4",
                "--n_kv_heads", "2", "--max_seq_len", "32", "--max_steps", "1", "--device", "cpu"])
    monkeypatch.setattr(evaluate, "evaluate_synthetic", lambda *a: pytest.fail("evaluated before checking the flags"))
    (tmp_path / "short.txt").write_text("the cat . " * 10)  # ~30 tokens: not two windows of 32
    for flags, message in ((["--new_tokens", "32"], "--new_tokens 32 must be below .* context 32"),
                           (["--text", str(tmp_path / "nowhere.txt")], "cannot read --text"),
                           (["--text", str(tmp_path / "short.txt")], "too short for two windows .* context \\(32\\)")):
        with pytest.raises(SystemExit, match=message):
            evaluate.main(["--ckpt", str(tmp_path / "ckpt.pt"), "--device", "cpu", "--out_dir", str(tmp_path),
                           "--new_tokens", "8", *flags])


def test_paired_tv_differences_and_their_bootstrap_interval():
    sums = np.zeros((2, 3, len(metrics.STATS)))
    sums[..., metrics.STATS.index("positions")] = 10
    sums[0, :, metrics.STATS.index("tv")] = [1, 2, 3]  # mean TV 0.2; per window 0.1, 0.2, 0.3
    sums[1, :, metrics.STATS.index("tv")] = [3, 3, 3]  # mean TV 0.3 in every window
    draws = np.array([[1, 1, 1], [3, 0, 0], [0, 0, 3]])  # all windows; the first three times; the last
    rows = {(1.0, "a"): 0, (1.0, "ref"): 1, (2.0, "a"): 0}  # no reference at T = 2
    diffs = metrics.paired_tv_diffs(rows, sums, draws, ref_name="ref")
    diff, lo, hi = diffs[(1.0, "a")]
    assert diff == pytest.approx(-0.1)
    assert (lo, hi) == pytest.approx(tuple(np.percentile([-0.1, -0.2, 0.0], [2.5, 97.5])))
    assert diffs[(1.0, "ref")] == (0, 0, 0)
    assert np.isnan(diffs[(2.0, "a")]).all()


def test_quick_writes_beside_the_real_results_not_over_them():
    assert evaluate.parse_args([]).out_dir == "out/eval"
    assert evaluate.parse_args(["--quick"]).out_dir == "out/eval-quick"
    assert evaluate.parse_args(["--quick", "--out_dir", "x"]).out_dir == "x"


def test_given_heads_are_used_at_their_temperatures_and_fitted_elsewhere(tmp_path):
    from model import ModelConfig, Transformer, fingerprint

    model = Transformer(ModelConfig(vocab_size=16, dim=16, n_layers=1, n_heads=2, n_kv_heads=1, max_seq_len=8))
    paths = {}
    for name, T in (("one", 1.0), ("two", 2.0), ("again", 2.0)):
        paths[name] = str(tmp_path / f"{name}.json")
        MinPPlusHead().save_json(paths[name], temperature=T, vocab_size=16, checkpoint=fingerprint(model))
    MinPPlusHead().save_json(str(tmp_path / "bare.json"))
    single = evaluate.given_heads([paths["one"]], model)
    assert list(single) == [None]  # one file: every temperature
    given = evaluate.given_heads([paths["two"], paths["one"]], model)
    assert sorted(given) == [1.0, 2.0]
    with pytest.raises(ValueError, match="two --head files are fitted at temperature 2"):
        evaluate.given_heads([paths["two"], paths["again"]], model)
    with pytest.raises(ValueError, match="bare.json records no temperature"):
        evaluate.given_heads([paths["one"], str(tmp_path / "bare.json")], model)
    logits, targets = torch.randn(4, 8, 16), torch.randint(0, 16, (4, 8))
    heads = evaluate.fit_heads(logits, targets, [1.0, 1.5, 2.0], epochs=3, given=given)
    assert heads[1.0] is given[1.0] and heads[2.0] is given[2.0]
    assert all(heads[1.5] is not h for h in given.values())  # fitted: no file records 1.5
    assert all(h is single[None] for h in evaluate.fit_heads(logits, targets, [1.0, 3.0], 3, single).values())
