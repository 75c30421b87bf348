"""The MinP+ head (head.py): what the transform is, what its fast loss equals, how it is saved."""
import copy
import errno
import importlib.util
import json
import math
import os
import threading
from dataclasses import asdict

import pytest
import torch
import torch.nn.functional as F

import head as head_module
import runtime
import sample
import train
import train_head
from head import MinPPlusHead, bucket_sums, diagnostics, format_diagnostics, plot_curve
from optim import AdamW


def random_logits(n, V, scale=3.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, V, generator=g) * scale, torch.randint(0, V, (n,), generator=g)


def random_head(K=32, spacing="log", seed=0):
    head = MinPPlusHead(K, spacing=spacing)
    with torch.no_grad():
        head.theta.copy_(torch.randn(K, generator=torch.Generator().manual_seed(seed)))
    return head


def theta_grad(head, loss):
    head.theta.grad = None
    loss.backward()
    return head.theta.grad.clone()


# ----------------------------------------------------------------------------
# thresholds and the transform

@pytest.mark.parametrize("spacing", ["log", "linear"])
def test_threshold_grid(spacing):
    tau = MinPPlusHead(32, tau_min=1e-3, spacing=spacing).tau
    assert tau.shape == (32,) and tau.dtype == torch.float32
    assert tau[0] == 0 and tau[1] == torch.tensor(1e-3) and tau[-1] == 1
    assert (tau[1:] > tau[:-1]).all()
    steps = tau[2:].log() - tau[1:-1].log() if spacing == "log" else tau[2:] - tau[1:-1]
    assert torch.allclose(steps, steps.mean().expand(30), rtol=1e-4)


def test_bad_constructor_arguments():
    for kwargs, words in [(dict(num_thresholds=2), "at least 3"), (dict(tau_min=0.0), "tau_min"),
                          (dict(tau_min=1.0), "tau_min"), (dict(spacing="cubic"), "spacing"),
                          (dict(tau_min=1e-46), "fp32 cannot tell apart"),  # 0 once rounded to fp32
                          (dict(tau_min=0.999999999), "fp32 cannot tell apart")]:  # 1 once rounded
        with pytest.raises(ValueError, match=words):
            MinPPlusHead(**kwargs)


def test_bucket_is_number_of_thresholds_reached_minus_one():
    head = MinPPlusHead(thresholds=[0.0, 0.1, 0.5, 1.0])
    ratios = torch.tensor([1.0, 0.7, 0.5, 0.3, 0.1, 0.05, 0.0])
    logits = ratios.log() + 4.0  # a shift changes no ratio
    # a ratio exactly at a threshold reaches it, as min-p keeps p >= min_p * max p
    assert head.buckets(logits).tolist() == [3, 2, 2, 1, 1, 0, 0]


def test_untrained_head_is_close_to_identity_with_every_weight_alive():
    head = MinPPlusHead()
    share = head.weights() / head.weights().sum()
    assert share[0] > 0.98 and (share[1:] > 0).all()
    logits, _ = random_logits(64, 500)
    p, q = F.log_softmax(logits, -1), F.log_softmax(head(logits), -1)
    assert (p.exp() * (p - q)).sum(-1).max() < 0.01  # KL(p || q) per row


def test_identity_when_all_weight_on_zero():
    head = MinPPlusHead.from_weights(MinPPlusHead().tau, [2.5] + [0.0] * 31)
    logits, _ = random_logits(16, 300)
    assert torch.allclose(F.softmax(head(logits), -1), F.softmax(logits, -1), atol=1e-7)


@pytest.mark.parametrize("j", [5, 22, 31])
def test_one_hot_weight_is_exactly_min_p(j):
    tau = MinPPlusHead().tau
    head = MinPPlusHead.from_weights(tau, [0.0] * j + [1.0] + [0.0] * (31 - j))
    logits, _ = random_logits(64, 400, scale=2.0)
    p = F.softmax(logits.double(), -1)
    keep = p >= tau[j].double() * p.amax(-1, keepdim=True)
    ratio = p / p.amax(-1, keepdim=True)
    distance = (ratio.log() - tau[j].double().log()).abs()[ratio < 1]  # the top token's r = 1 is exact
    assert distance.min() > 1e-5  # no other token so close to the threshold that fp32 could decide either way
    out = head(logits)
    assert torch.equal(torch.isfinite(out), keep)
    expected = torch.where(keep, p, 0.0)
    assert torch.allclose(F.softmax(out, -1).double(), expected / expected.sum(-1, keepdim=True), atol=1e-6)


@pytest.mark.parametrize("grid", ["default", "typed"])
def test_one_hot_weight_equals_min_p_on_ratios_exactly_at_each_threshold(grid):
    # the default grid, and thresholds as a user types min_p (0.01 ... 0.99: most are not fp32 numbers);
    # log(tau) in fp32 and log(min_p) in fp64 once differed by an ulp for about half of these
    tau = MinPPlusHead().tau.tolist() if grid == "default" else [0.0] + [k / 100 for k in range(1, 100)] + [1.0]
    for j in range(1, len(tau)):
        at = head_module.log_threshold(tau[j])
        logits = torch.stack([torch.tensor(0.0), at, torch.nextafter(at, torch.tensor(-1e9))])[None]
        head = MinPPlusHead.from_weights(tau, [0.0] * j + [1.0] + [0.0] * (len(tau) - 1 - j))
        kept_by_head = torch.isfinite(head(logits))[0].tolist()
        assert kept_by_head == torch.isfinite(sample.min_p(logits, tau[j]))[0].tolist(), tau[j]
        assert kept_by_head == [True, True, False], tau[j]  # at tau_j: kept; a hair below: not


def test_scaling_every_weight_changes_nothing():
    weights = torch.rand(32, generator=torch.Generator().manual_seed(1))
    weights[3] = 0.0
    logits, _ = random_logits(32, 300)
    tau = MinPPlusHead().tau
    base = F.softmax(MinPPlusHead.from_weights(tau, weights)(logits), -1)
    for alpha in (1e-3, 7.0, 1e4):
        scaled = F.softmax(MinPPlusHead.from_weights(tau, alpha * weights)(logits), -1)
        assert torch.allclose(scaled, base, atol=1e-6)


def test_forward_takes_any_leading_shape_and_half_logits():
    head = random_head()
    logits, _ = random_logits(6, 200)
    out = head(logits.view(2, 3, 200))
    assert out.shape == (2, 3, 200) and out.dtype == torch.float32
    assert torch.equal(out.view(6, 200), head(logits))
    half = logits.half()
    assert torch.equal(head(half), head(half.float()))


# ----------------------------------------------------------------------------
# the statistics path equals cross-entropy through the transform

@pytest.mark.parametrize("lanes", [1, 32, 7])
@pytest.mark.parametrize("V", [320, 301])  # a multiple of 32 lanes, and one with a tail
def test_bucket_sums_in_lanes_equal_a_plain_scatter(V, lanes):
    values, _ = random_logits(40, V)
    buckets = torch.randint(0, 32, (40, V), generator=torch.Generator().manual_seed(1), dtype=torch.int32)
    plain = values.new_zeros(40, 32).scatter_add_(1, buckets, values)
    torch.testing.assert_close(bucket_sums(values, buckets, 32, lanes=lanes), plain, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("V", [320, 301])
@pytest.mark.parametrize("chunk_size", [1, 7, 64, None])
def test_loss_from_stats_equals_cross_entropy(V, chunk_size):
    head = random_head()
    logits, targets = random_logits(96, V)
    naive = F.cross_entropy(head(logits), targets)
    naive_grad = theta_grad(head, naive)
    S, b, logp_y = head.bucket_stats(logits, targets, chunk_size=chunk_size)
    assert S.shape == (96, 32) and S.dtype == torch.float32 and b.dtype == torch.long
    assert torch.allclose(S.sum(1), torch.ones(96), atol=1e-5)
    assert torch.equal(b, head.buckets(logits).gather(1, targets[:, None])[:, 0])
    assert torch.allclose(logp_y, F.log_softmax(logits, -1).gather(1, targets[:, None])[:, 0], atol=1e-5)
    fast = head.loss_from_stats(S, b, logp_y)
    assert torch.allclose(fast, naive, rtol=1e-5)
    assert torch.allclose(theta_grad(head, fast), naive_grad, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_logits(dtype):
    head = random_head()
    logits, targets = random_logits(128, 300)
    low = logits.to(dtype)
    S, b, logp_y = head.bucket_stats(low, targets, chunk_size=50)
    # converted chunk by chunk, exactly: the same numbers as from the same logits in fp32
    S_up, b_up, logp_up = head.bucket_stats(low.float(), targets)
    assert torch.equal(b, b_up) and torch.allclose(S, S_up, atol=1e-6) and torch.allclose(logp_y, logp_up, atol=1e-6)
    # and close to the fp32 logits they were rounded from (bf16 keeps 8 bits: a few tokens change bucket)
    tol = {torch.float16: 0.01, torch.bfloat16: 0.1}[dtype]
    S32, b32, logp32 = head.bucket_stats(logits, targets)
    assert (b != b32).float().mean() < tol and (S - S32).abs().sum(1).mean() < tol
    assert (logp_y - logp32).abs().mean() < tol / 5
    loss, loss32 = head.loss_from_stats(S, b, logp_y), head.loss_from_stats(S32, b32, logp32)
    assert abs(loss.item() - loss32.item()) < tol / 5
    assert torch.allclose(loss, F.cross_entropy(head(low), targets), rtol=1e-5)


def test_gradient_reaches_every_weight():
    # every threshold is reached by the top token (r = 1 >= tau), so every weight gets a gradient
    head = MinPPlusHead()
    logits, targets = random_logits(64, 200)
    grad = theta_grad(head, head.loss_from_stats(*head.bucket_stats(logits, targets)))
    assert torch.isfinite(grad).all() and (grad != 0).all()


def test_gradient_of_thresholds_in_an_empty_gap():
    # no token has 0.3 < r < 1, so tau = 0.5, 0.9 and 1 split the tokens alike and get the same
    # gradient (nonzero: the top token reaches them); the thresholds below tell tokens apart
    head = MinPPlusHead.from_weights([0.0, 0.1, 0.5, 0.9, 1.0], [1.0, 0.5, 0.5, 0.5, 0.5])
    g = torch.Generator().manual_seed(0)
    ratios = torch.rand(32, 50, generator=g) * 0.3
    ratios[:, 0] = 1.0
    targets = torch.randint(0, 50, (32,), generator=g)
    grad = theta_grad(head, head.loss_from_stats(*head.bucket_stats(ratios.log(), targets)))
    assert (grad != 0).all()
    assert torch.allclose(grad[2], grad[3]) and torch.allclose(grad[3], grad[4])
    assert not torch.allclose(grad[1], grad[2])


def test_bucket_stats_rejects_bad_input():
    head = MinPPlusHead()
    logits, targets = random_logits(8, 50)
    with pytest.raises(ValueError, match="drop ignored"):
        head.bucket_stats(logits, torch.full((8,), -1))
    with pytest.raises(ValueError, match=r"\(N, V\)"):
        head.bucket_stats(logits.view(2, 4, 50), targets)
    logits[3, 7] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        head.bucket_stats(logits, targets)


# ----------------------------------------------------------------------------
# it learns: targets drawn from a min-p truncation of the model's distribution

def test_planted_min_p_is_recovered():
    torch.manual_seed(0)
    head = MinPPlusHead()  # K = 32, log spacing from 1e-4
    j = int((head.tau - 0.1).abs().argmin())  # tau_j ~ 0.117
    logits, _ = random_logits(3000, 100, scale=2.0, seed=3)
    truth = logits.masked_fill(head.buckets(logits) < j, float("-inf"))  # min-p at tau_j
    targets = torch.multinomial(F.softmax(truth, -1), 1, generator=torch.Generator().manual_seed(4))[:, 0]
    stats = head.bucket_stats(logits, targets)
    optimizer = AdamW(head.parameters(), lr=0.1, weight_decay=0.0)  # the project's own optimiser
    for _ in range(300):
        loss = head.loss_from_stats(*stats)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    share = (head.weights() / head.weights().sum()).detach()
    assert share[j - 1:j + 2].sum() > 0.8, share
    d = diagnostics(head, *stats)
    oracle = MinPPlusHead.from_weights(head.tau, F.one_hot(torch.tensor(j), 32).float())
    assert d["head_ce"] < d["base_ce"] - 0.1
    assert d["head_ce"] < oracle.loss_from_stats(*stats).item() + 0.01  # as good as the truth itself


# ----------------------------------------------------------------------------
# regularisers, pruning, diagnostics

def test_regularisers_are_named_by_what_they_reward():
    head = random_head()
    entropy = -head.regulariser("smooth")
    assert 0 < entropy.item() < math.log(32) and torch.allclose(head.regulariser("sparse"), entropy)
    assert head.regulariser("none").item() == 0
    for kind, sign in (("smooth", +1), ("sparse", -1)):
        step = random_head()
        before = -step.regulariser("smooth").item()
        step.theta.data -= 0.1 * theta_grad(step, step.regulariser(kind))  # one descent step on the regulariser
        assert sign * (-step.regulariser("smooth").item() - before) > 0
    with pytest.raises(ValueError, match="smooth"):
        head.regulariser("entropy")


def test_pruning_drops_small_shares_only_at_export():
    tau = [0.0, 0.01, 0.1, 0.5]
    head = MinPPlusHead.from_weights(tau, [5.0, 3.0, 1.5, 0.5])
    pruned = head.pruned(0.1)
    assert torch.allclose(pruned.weights(), torch.tensor([5.0, 3.0, 1.5, 0.0]))
    assert torch.allclose(head.weights(), torch.tensor([5.0, 3.0, 1.5, 0.5]))  # the original is untouched
    assert torch.allclose(head.pruned(0.9).weights(), torch.tensor([5.0, 0.0, 0.0, 0.0]))  # never all zero
    assert torch.equal(head.pruned(0.0).weights(), head.weights())
    logits, _ = random_logits(4, 100)
    assert torch.isfinite(pruned(logits)).all()  # weight remains on tau = 0: nothing removed
    gated = MinPPlusHead.from_weights(tau, [0.01, 3.0, 1.5, 0.5]).pruned(0.1)
    assert torch.equal(torch.isfinite(gated(logits)), head.buckets(logits) >= 1)


def test_diagnostics_agree_with_direct_computation():
    head = random_head()
    logits, targets = random_logits(200, 150)
    S, b, logp_y = head.bucket_stats(logits, targets)
    d = diagnostics(head, S, b, logp_y)
    json.dumps(d)  # plain numbers, ready for a metrics log
    assert math.isclose(d["base_ce"], F.cross_entropy(logits, targets).item(), rel_tol=1e-5)
    assert math.isclose(d["head_ce"], F.cross_entropy(head(logits), targets).item(), rel_tol=1e-5)
    assert math.isclose(d["relative_improvement"], 1 - d["head_ce"] / d["base_ce"], rel_tol=1e-6)
    assert math.isclose(sum(d["weights"]), 1, rel_tol=1e-5) and 0 < d["weight_entropy"] < d["max_entropy"]
    r_y = F.softmax(logits, -1).gather(1, targets[:, None])[:, 0] / F.softmax(logits, -1).amax(-1)
    assert math.isclose(d["share_above_lowest"], (r_y >= 1e-4).float().mean().item())
    p = F.softmax(logits, -1)
    for k in (0, 10, 31):
        above = (p * (p >= head.tau[k] * p.amax(-1, keepdim=True))).sum(-1).mean().item()
        assert math.isclose(d["mass_above"][k], above, rel_tol=1e-4)
    assert d["curve"][-1] == pytest.approx(1) and all(x <= y + 1e-7 for x, y in zip(d["curve"], d["curve"][1:]))
    text = format_diagnostics(d)
    assert "head CE" in text and "base CE" in text and len(text.splitlines()) <= 12


def test_plot_curve_is_optional(tmp_path):
    path = tmp_path / "curve.png"
    made = plot_curve(random_head(), str(path))
    if importlib.util.find_spec("matplotlib") is None:
        assert made is False and not path.exists()
    else:
        assert made is True and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ----------------------------------------------------------------------------
# saving and loading

def test_state_dict_round_trip_carries_the_thresholds():
    head = random_head(spacing="log")
    assert "tau" in head.state_dict()
    other = MinPPlusHead(32, tau_min=0.01, spacing="linear")
    other.load_state_dict(head.state_dict())
    assert torch.equal(other.tau, head.tau)
    logits, _ = random_logits(8, 200)
    assert torch.equal(other(logits), head(logits))


def test_json_round_trip(tmp_path):
    head = random_head()
    with torch.no_grad():
        head.theta[4] = -float("inf")  # an exact zero weight survives the trip
    path = tmp_path / "head.json"
    meta = dict(temperature=0.8, vocab_size=200, checkpoint="out/ckpt.pt", checkpoint_step=1200, note="planted")
    head.save_json(str(path), **meta)
    assert [p.name for p in tmp_path.iterdir()] == ["head.json"]  # no temp file left behind
    loaded, loaded_meta = MinPPlusHead.load_json(str(path), vocab_size=200, checkpoint="out/ckpt.pt")
    assert loaded_meta == meta
    assert torch.equal(loaded.tau, head.tau) and loaded.weights()[4] == 0
    logits, _ = random_logits(8, 200)
    assert torch.allclose(F.softmax(loaded(logits), -1), F.softmax(head(logits), -1), atol=1e-6)
    with pytest.raises(ValueError, match="thresholds"):
        head.save_json(str(path), thresholds=[0])


GOOD = {"thresholds": [0.0, 0.1, 1.0], "weights": [1.0, 0.5, 0.0], "vocab_size": 200, "checkpoint": "out/ckpt.pt"}


@pytest.mark.parametrize("change, words", [
    (dict(thresholds=[0.0, 0.5, 0.1]), "not strictly ascending"),
    (dict(thresholds=[0.0, 0.1, 0.1]), "not strictly ascending"),
    (dict(thresholds=[0.05, 0.1, 1.0]), "first threshold is 0.05 but must be 0"),
    (dict(thresholds=[0.0, 0.1, 1.5]), "never exceeds 1"),
    (dict(weights=[1.0, -0.5, 0.0]), r"weights\[1\] is -0.5 < 0"),
    (dict(weights=[0.0, 0.0, 0.0]), "every weight is 0"),
    (dict(weights=[1.0, 0.5]), "2 weights for 3 thresholds"),
    (dict(weights=[1.0, "x", 0.0]), "not a number"),
    (dict(weights=[1.0, float("nan"), 0.0]), "finite"),
    (dict(weights=[1.0, 1e39, 0.0]), r"weights\[1\] is 1e\+39: every value must be finite in fp32"),
    (dict(weights=[3e38, 3e38, 0.0]), "sum past fp32's range"),
    (dict(thresholds=[]), "non-empty list"),
])
def test_bad_json_is_rejected_with_a_clear_message(tmp_path, change, words):
    path = tmp_path / "head.json"
    path.write_text(json.dumps({**GOOD, **change}))
    with pytest.raises(ValueError, match=words) as error:
        MinPPlusHead.load_json(str(path))
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_bad_json_files_and_mismatches(tmp_path):
    path = tmp_path / "head.json"
    path.write_text(json.dumps(GOOD))
    MinPPlusHead.load_json(str(path), vocab_size=200, checkpoint="out/ckpt.pt")
    cases = [
        (dict(vocab_size=6400), "vocab_size 200 but the model has 6400"),
        (dict(checkpoint="other/ckpt.pt"), "trained on checkpoint out/ckpt.pt"),
    ]
    for kwargs, words in cases:
        with pytest.raises(ValueError, match=words):
            MinPPlusHead.load_json(str(path), **kwargs)
    for text, words in [('{"thresholds": [0, 1], "weights": [1,', "not valid JSON"),
                        ("[0, 1]", "not a MinP\\+ head"), ('{"weights": [1]}', "not a MinP\\+ head")]:
        path.write_text(text)
        with pytest.raises(ValueError, match=words):
            MinPPlusHead.load_json(str(path))
    with pytest.raises(ValueError, match="no MinP\\+ head at .*train one"):
        MinPPlusHead.load_json(str(tmp_path / "missing.json"))
    with pytest.raises(ValueError, match="cannot read"):
        MinPPlusHead.load_json(str(tmp_path))


def test_load_json_reads_only_a_regular_file_of_a_head_s_size(tmp_path, monkeypatch):
    fifo = str(tmp_path / "fifo.json")
    os.mkfifo(fifo)  # opening it would wait for a writer forever
    writer = threading.Timer(5, lambda: os.close(os.open(fifo, os.O_RDWR)))  # a regression then fails, not hangs
    writer.start()
    for path in (fifo, "/dev/zero"):  # /dev/zero would be read until memory runs out
        with pytest.raises(ValueError, match="cannot read the MinP\\+ head .* \\(not a regular file\\)"):
            MinPPlusHead.load_json(path)
    writer.cancel()
    path = tmp_path / "head.json"
    path.write_text(json.dumps(GOOD) + " " * 200)
    monkeypatch.setattr(head_module, "MAX_HEAD_BYTES", 200)
    with pytest.raises(ValueError, match="head.json is 307 bytes, far more than a MinP\\+ head .*at most 200"):
        MinPPlusHead.load_json(str(path))
    path.write_text(json.dumps(GOOD))
    assert MinPPlusHead.load_json(str(path))[1]["vocab_size"] == 200


def test_a_log_whose_first_write_fails_is_not_left_empty(tmp_path, monkeypatch):
    log = runtime.MetricsLog(str(tmp_path), "head_metrics.jsonl", "epoch")  # a fresh run: writes to .new

    def full_disk(path, mode):  # the file is created, then the write finds no space
        open(path, mode).close()
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(runtime, "open", full_disk, raising=False)
    with pytest.raises(OSError, match="No space left"):
        log.write({"epoch": 1})
    assert os.listdir(tmp_path) == []
    monkeypatch.undo()
    log.write({"epoch": 1})
    monkeypatch.setattr(runtime, "open", full_disk, raising=False)
    with pytest.raises(OSError):
        log.write({"epoch": 2})
    monkeypatch.undo()
    assert (tmp_path / "head_metrics.jsonl.new").read_text() == '{"epoch": 1}\n'  # a log with rows stays


def test_a_resumed_log_drops_a_line_nested_too_deeply_to_read(tmp_path):
    path = tmp_path / "head_metrics.jsonl"
    path.write_text('{"epoch": 1}\n' + "[" * 100_000 + "\n" + '{"epoch": 2}\n')
    runtime.MetricsLog(str(tmp_path), "head_metrics.jsonl", "epoch", resumed_at=5)
    assert path.read_text() == '{"epoch": 1}\n{"epoch": 2}\n'


def saved_head_run(tmp_path):
    """(cfg, a head_ckpt.pt state of 3 fitted epochs as train_head saves it, its path)."""
    cfg = train.TrainConfig(head_epochs=10, head_thresholds=8)
    head = train_head.new_head(cfg, "cpu")
    optimizer = train_head.head_optimizer(head, cfg.head_lr)
    stats = head.bucket_stats(*random_logits(64, 50))
    train_head.head_fitter(head, optimizer, stats, cfg.head_epochs, cfg.head_lr)(0, 3)
    state = {"head": head.state_dict(), "optimizer": optimizer.state_dict(), "epoch": 3,
             "train_config": asdict(cfg), "checkpoint": "lm"}
    return cfg, state, str(tmp_path / "head_ckpt.pt")


def resume(cfg, state, path):
    torch.save(state, path)
    head = train_head.new_head(cfg, "cpu")
    return train_head.resume_head(head, train_head.head_optimizer(head, cfg.head_lr), cfg, path, "lm", "ckpt.pt", "cpu")


@pytest.mark.parametrize("change, message", [
    (dict(epoch="x"), "its epoch is 'x', not a count"),
    (dict(epoch=-5), "its epoch is -5"),
    (dict(epoch=2.0), "its epoch is 2.0"),
    (dict(head={}), "its head state is not theta \\(8,\\), tau \\(8,\\)"),
    (dict(head=None), "its head or optimizer state is missing"),
    (dict(head={"tau": torch.zeros(8), "theta": torch.zeros(5)}), "its head state is not"),
    (dict(head={"tau": torch.linspace(0, 1, 8), "theta": torch.zeros(8)}), "thresholds are not the configured"),
    (dict(head={"tau": "tau", "theta": torch.zeros(8)}), "its head state is not"),
    (dict(optimizer={}), "its optimizer state: KeyError"),
    (dict(optimizer="x"), "its head or optimizer state is missing"),
    (dict(train_config=None), "its train_config is missing"),
])
def test_a_damaged_head_checkpoint_is_refused_in_one_line(tmp_path, change, message):
    cfg, state, path = saved_head_run(tmp_path)
    assert resume(cfg, state, path) == 3
    with pytest.raises(ValueError, match=f"head_ckpt.pt is damaged \\(.*{message}.*\\): delete it or drop --resume"):
        resume(cfg, {k: v for k, v in {**state, **change}.items() if v is not None}, path)


def test_a_head_checkpoint_past_head_epochs_is_refused_and_bad_moments_too(tmp_path):
    cfg, state, path = saved_head_run(tmp_path)
    assert resume(cfg, {**state, "epoch": 10}, path) == 10  # finished: resuming only exports
    with pytest.raises(ValueError, match="is at epoch 1000000000, past --head_epochs 10: pass --head_epochs"):
        resume(cfg, {**state, "epoch": 10**9}, path)
    moments = copy.deepcopy(state["optimizer"])
    moments["state"][0]["exp_avg"] = torch.zeros(3)
    with pytest.raises(ValueError, match="is damaged \\(its optimizer state: ValueError\\)"):
        resume(cfg, {**state, "optimizer": moments}, path)


def test_from_weights_validates_too():
    with pytest.raises(ValueError, match="every weight is 0"):
        MinPPlusHead.from_weights([0.0, 0.5], [0.0, 0.0])
    with pytest.raises(ValueError, match="first threshold"):
        MinPPlusHead.from_weights([0.1, 0.5], [1.0, 1.0])


# ----------------------------------------------------------------------------
# CUDA: the training path's fp16 autocast logits

@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_fp16_autocast_stats_match_fp32_on_cuda():
    torch.manual_seed(0)
    N, V, dim = 1024, 6400, 64
    hidden = torch.randn(N, dim, device="cuda")
    unembed = torch.randn(V, dim, device="cuda") * 0.4
    targets = torch.randint(0, V, (N,), device="cuda")
    head = random_head().cuda()
    with torch.autocast("cuda", dtype=torch.float16):
        logits16 = hidden @ unembed.T
    assert logits16.dtype == torch.float16
    logits32 = (hidden.double() @ unembed.double().T).float()
    S, b, logp_y = head.bucket_stats(logits16, targets, chunk_size=300)
    S32, b32, logp32 = head.bucket_stats(logits32, targets)
    assert (b != b32).float().mean() < 0.01
    # fp16 rounding moves a few tokens across a threshold (a near-tie with the top one lands at r = 1)
    assert (S - S32).abs().sum(1).mean() < 0.05 and (logp_y - logp32).abs().mean() < 0.01
    loss, loss32 = head.loss_from_stats(S, b, logp_y), head.loss_from_stats(S32, b32, logp32)
    assert abs(loss.item() - loss32.item()) < 0.01
    # the GPU path agrees with the CPU one on the very same fp16 logits, and with autograd's answer
    S_cpu, b_cpu, logp_cpu = copy.deepcopy(head).cpu().bucket_stats(logits16.cpu(), targets.cpu())
    assert torch.equal(b.cpu(), b_cpu) and torch.allclose(S.cpu(), S_cpu, atol=1e-5)
    assert torch.allclose(logp_y.cpu(), logp_cpu, atol=1e-5)
    naive = F.cross_entropy(head(logits16), targets)
    naive_grad = theta_grad(head, naive)
    assert torch.allclose(loss, naive, rtol=1e-5)
    # loose: autograd sums the gather's N * V fp32 gradient terms into K slots in some order
    assert torch.allclose(theta_grad(head, loss), naive_grad, rtol=1e-2, atol=1e-4)
