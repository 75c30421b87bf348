"""End-to-end runs of train.py on a very small model and syn_dir (seconds each on a CPU)."""
import dataclasses
import json
import math
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch

import corpus
import sample
import train
import train_head
from model import ModelConfig, Transformer

SMALL = ["--dim", "32", "--n_layers", "2", "--n_heads", "4", "--n_kv_heads", "2", "--max_seq_len", "32",
         "--batch_size", "8", "--eval_batches", "4", "--truth_windows", "8", "--device", "cpu"]


def run(out_dir, syn_dir, *extra):
    return train.main(["--data_dir", syn_dir, "--out_dir", str(out_dir), *SMALL, *extra])


def run_head(out_dir, syn_dir, *extra):
    """Head training on out_dir/ckpt.pt (or --init_from) with small statistics; extra flags win."""
    return train.main(["--head", "minpplus", "--out_dir", str(out_dir), "--data_dir", syn_dir, "--device", "cpu",
                       "--head_tokens", "2000", "--head_val_tokens", "1000", "--batch_size", "8",
                       "--truth_windows", "4", *extra])


def watch_head_loss(monkeypatch, then):
    """Count the calls of MinPPlusHead.loss_from_counts (one per fitting step, one per eval);
    then(n, loss) sees the n-th call's loss and returns the one to use. Returns the call list."""
    real_loss, calls = train_head.MinPPlusHead.loss_from_counts, []

    def watched(self, *args):
        calls.append(1)
        return then(len(calls), real_loss(self, *args))

    monkeypatch.setattr(train_head.MinPPlusHead, "loss_from_counts", watched)
    return calls


def interrupt_at(call):
    """A watch_head_loss action: a real SIGINT at that call, the loss untouched."""
    def then(n, loss):
        if n == call:
            os.kill(os.getpid(), signal.SIGINT)
        return loss
    return then


def read_metrics(out_dir, name="metrics.jsonl"):
    with open(os.path.join(out_dir, name)) as f:
        return [json.loads(line) for line in f]


def test_training_lowers_the_loss_and_beats_unigram(tmp_path, syn_dir):
    run(tmp_path, syn_dir, "--max_steps", "150", "--eval_interval", "150", "--lr", "1e-2", "--warmup_steps", "10")
    steps = [r for r in read_metrics(tmp_path) if "train_loss_step" in r]
    evals = [r for r in read_metrics(tmp_path) if "val_loss" in r]
    assert sum(r["train_loss_step"] for r in steps[-10:]) / 10 < steps[0]["train_loss_step"] - 1.0
    assert evals[-1]["val_loss"] < evals[-1]["unigram_loss"]
    assert 0 < evals[-1]["kl_truth"] < steps[0]["train_loss_step"]
    ckpt = torch.load(tmp_path / "ckpt.pt", weights_only=False)
    assert ckpt["step"] == 150 and ckpt["model_config"]["dim"] == 32


def test_ctrl_c_saves_and_resume_continues_exactly_like_an_uninterrupted_run(tmp_path, syn_dir, monkeypatch):
    common = ["--max_steps", "20", "--eval_interval", "10", "--warmup_steps", "5"]
    run(tmp_path / "straight", syn_dir, *common)
    real_get_batch, calls = corpus.get_batch, []

    def get_batch_then_interrupt(*args, **kwargs):  # a real SIGINT during step 7
        calls.append(1)
        if len(calls) == 7:
            os.kill(os.getpid(), signal.SIGINT)
        return real_get_batch(*args, **kwargs)

    monkeypatch.setattr(corpus, "get_batch", get_batch_then_interrupt)
    with pytest.raises(SystemExit) as stopped:
        run(tmp_path / "split", syn_dir, *common)
    assert stopped.value.code == 130  # after the save, as a shell reports a program Ctrl-C ended
    monkeypatch.setattr(corpus, "get_batch", real_get_batch)
    assert torch.load(tmp_path / "split" / "ckpt.pt", weights_only=False)["step"] == 7
    run(tmp_path / "split", syn_dir, "--resume")  # bare: the other flags come from the run it resumes
    a = torch.load(tmp_path / "straight" / "ckpt.pt", weights_only=False)
    b = torch.load(tmp_path / "split" / "ckpt.pt", weights_only=False)
    assert a["step"] == b["step"] == 20
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert a["rng"] == b["rng"]


def test_grad_clip_zero_measures_the_norm_and_never_clips(tmp_path, syn_dir, monkeypatch):
    limits = []
    real_clip = train.clip_grad_norm_
    monkeypatch.setattr(train, "clip_grad_norm_", lambda params, max_norm: limits.append(max_norm) or
                        real_clip(params, max_norm))
    run(tmp_path / "off", syn_dir, "--max_steps", "2", "--eval_interval", "2", "--grad_clip", "0")
    run(tmp_path / "on", syn_dir, "--max_steps", "2", "--eval_interval", "2", "--grad_clip", "0.5")
    assert limits == [math.inf, math.inf, 0.5, 0.5]
    assert all(r["grad_norm"] > 0 for r in read_metrics(tmp_path / "off") if "grad_norm" in r)


def test_learning_rate_warms_up_from_zero_to_the_peak(tmp_path, syn_dir):
    run(tmp_path, syn_dir, "--max_steps", "12", "--eval_interval", "6", "--warmup_steps", "4")
    lrs = [r["lr"] for r in read_metrics(tmp_path) if "lr" in r]
    assert lrs[0] == 0.0 and max(lrs) == pytest.approx(3e-3)


def test_head_training_improves_on_an_undertrained_model(tmp_path, syn_dir, capsys):
    run(tmp_path, syn_dir, "--max_steps", "150", "--eval_interval", "150", "--lr", "1e-2", "--warmup_steps", "10")
    run_head(tmp_path, syn_dir, "--head_tokens", "20000", "--head_val_tokens", "8000", "--head_epochs", "40",
             "--head_lr", "0.2", "--truth_windows", "8", "--head_prune_below", "0.01")
    rows = read_metrics(tmp_path, "head_metrics.jsonl")
    assert [r["epoch"] for r in rows] == [8, 16, 24, 32, 40]
    assert not any("head_ce" in r for r in read_metrics(tmp_path))  # the LM's log is the LM's alone
    assert rows[-1]["head_ce"] < rows[-1]["base_ce"]
    assert rows[-1]["kl_head"] < rows[-1]["kl_base"]
    with open(tmp_path / "head.json") as f:
        exported = json.load(f)
    assert exported["vocab_size"] == corpus.load_meta(syn_dir)["vocab_size"]
    assert exported["temperature"] == 1.0
    # the sampling CLI finds the head beside the checkpoint and uses it
    sample.main(["--ckpt", str(tmp_path / "ckpt.pt"), "--method", "minpplus", "--num_samples", "2",
                 "--max_new_tokens", "8", "--device", "cpu"])
    printed = capsys.readouterr().out
    assert printed.count("--- sample") == 2 and "tokens/s (cpu, minpplus)" in printed
    # a head is bound to the weights it was trained on, wherever the files move
    run(tmp_path / "other", syn_dir, "--max_steps", "2", "--eval_interval", "2")
    with pytest.raises(SystemExit, match="trained on checkpoint"):
        sample.main(["--ckpt", str(tmp_path / "other" / "ckpt.pt"), "--method", "minpplus",
                     "--head", str(tmp_path / "head.json"), "--device", "cpu"])


def test_bad_flags_exit_with_a_message(tmp_path, syn_dir):
    with pytest.raises(SystemExit, match="unknown --preset"):
        run(tmp_path, syn_dir, "--preset", "huge")
    with pytest.raises(SystemExit, match="no meta.json"):
        train.main(["--data_dir", str(tmp_path / "nothing"), "--out_dir", str(tmp_path), "--device", "cpu"])
    with pytest.raises(SystemExit, match="--resume but no checkpoint"):
        run(tmp_path / "fresh", syn_dir, "--resume")
    for flags, message in ((["--dim", "30"], "dim=30 is not divisible by n_heads=4"),
                           (["--n_kv_heads", "0"], "n_kv_heads=0 must be at least 1"),
                           (["--eval_interval", "0"], "--eval_interval must be at least 1"),
                           (["--lr", "-1"], "--lr must be >= 0, got -1.0"),
                           (["--hidden_dim", "-5"], "hidden_dim=-5 must be at least 1"),
                           (["--block_size", "9000", "--max_seq_len", "9000"],
                            r"val split has [\d,]+ tokens, too few for one window of 9000")):
        with pytest.raises(SystemExit, match=message):
            run(tmp_path / "bad", syn_dir, *flags)
        assert not (tmp_path / "bad" / "metrics.jsonl").exists()  # stopped before the first step


@pytest.mark.parametrize("broken", ["loss", "gradient"])
def test_non_finite_loss_or_gradient_stops_and_keeps_the_last_good_checkpoint(tmp_path, syn_dir, monkeypatch,
                                                                              broken):
    run(tmp_path, syn_dir, "--max_steps", "4", "--eval_interval", "2", "--warmup_steps", "1")
    real_forward, calls = train.Transformer.forward, []

    def forward_that_breaks(self, idx, targets=None, cache=None):
        out = real_forward(self, idx, targets, cache)
        if not self.training:
            return out
        calls.append(1)
        if len(calls) == 4:  # the resumed run's 4th step (step 8), after its checkpoint at step 6
            return out[0], out[1] * float("nan") if broken == "loss" else NanGradient.apply(out[1])
        return out

    monkeypatch.setattr(train.Transformer, "forward", forward_that_breaks)
    message = "loss is nan at step 8" if broken == "loss" else "gradient norm is nan at step 8"
    with pytest.raises(SystemExit, match=message + ".*the last good checkpoint .*\\(step 6\\) is untouched"):
        run(tmp_path, syn_dir, "--resume", "--max_steps", "12")
    kept = torch.load(tmp_path / "ckpt.pt", weights_only=False)
    assert kept["step"] == 6 and all(torch.isfinite(w).all() for w in kept["model"].values())


def test_interrupted_head_training_resumes_exactly(tmp_path, syn_dir, monkeypatch):
    run(tmp_path / "lm", syn_dir, "--max_steps", "30", "--eval_interval", "30", "--lr", "1e-2", "--warmup_steps", "5")
    head_args = ["--init_from", str(tmp_path / "lm" / "ckpt.pt"), "--head_tokens", "6000", "--head_val_tokens", "2000",
                 "--head_epochs", "20"]
    run_head(tmp_path / "straight", syn_dir, *head_args)
    watch_head_loss(monkeypatch, interrupt_at(6))  # a real SIGINT in the sixth epoch (evals call it too)
    with pytest.raises(SystemExit) as stopped:
        run_head(tmp_path / "split", syn_dir, *head_args)
    assert stopped.value.code == 130
    monkeypatch.undo()
    interrupted = torch.load(tmp_path / "split" / "head_ckpt.pt", weights_only=False)
    assert interrupted["epoch"] == 8 and not (tmp_path / "split" / "head.json").exists()  # the round it was in
    with pytest.raises(SystemExit, match="was fitted with --head_tokens 6000.*--head_thresholds 32"):
        run_head(tmp_path / "split", syn_dir, *head_args, "--head_tokens", "2000", "--head_thresholds", "16",
                 "--resume")
    run_head(tmp_path / "split", syn_dir, *head_args, "--resume")
    a = torch.load(tmp_path / "straight" / "head_ckpt.pt", weights_only=False)
    b = torch.load(tmp_path / "split" / "head_ckpt.pt", weights_only=False)
    assert a["epoch"] == b["epoch"] == 20
    straight, split = (read_metrics(tmp_path / run, "head_metrics.jsonl") for run in ("straight", "split"))
    assert [r["epoch"] for r in split] == [r["epoch"] for r in straight] == [4, 8, 12, 16, 20]
    assert split[-1]["head_ce"] == straight[-1]["head_ce"]
    assert torch.equal(a["head"]["theta"], b["head"]["theta"]) and torch.equal(a["head"]["tau"], b["head"]["tau"])
    with open(tmp_path / "straight" / "head.json") as f, open(tmp_path / "split" / "head.json") as g:
        assert json.load(f)["weights"] == json.load(g)["weights"]
    run(tmp_path / "lm", syn_dir, "--resume", "--max_steps", "32")  # the LM trains on in place
    with pytest.raises(SystemExit, match="fitted on other weights"):
        run_head(tmp_path / "split", syn_dir, *head_args, "--resume")


def test_head_kl_and_ce_are_both_at_the_head_temperature(tmp_path, syn_dir):
    run(tmp_path, syn_dir, "--max_steps", "30", "--eval_interval", "30", "--lr", "1e-2", "--warmup_steps", "5")
    rows = {}
    for T in ("0.5", "1.0"):  # the untrained head (99 % of its weight on tau = 0): nearly the identity
        run_head(tmp_path / T, syn_dir, "--init_from", str(tmp_path / "ckpt.pt"), "--temperature", T,
                 "--head_lr", "0", "--head_epochs", "1")
        rows[T] = read_metrics(tmp_path / T, "head_metrics.jsonl")[-1]
        assert rows[T]["head_ce"] == pytest.approx(rows[T]["base_ce"], abs=0.01)
        assert rows[T]["kl_head"] == pytest.approx(rows[T]["kl_base"], abs=0.01)  # both KLs at the head's T
    assert rows["0.5"]["kl_base"] > rows["1.0"]["kl_base"] + 0.1  # which matters: T = 0.5 is far from the truth


def test_bad_head_flags_exit_with_a_message_before_any_work(tmp_path, syn_dir):
    with pytest.raises(SystemExit, match="--temperature, --head_positions only apply to the head: add --head minpplus"):
        run(tmp_path, syn_dir, "--head_positions", "answer", "--temperature", "2")  # LM mode would ignore them
    assert not (tmp_path / "ckpt.pt").exists()
    run(tmp_path, syn_dir, "--max_steps", "2", "--eval_interval", "2")
    for flags, message in ((["--head_tokens", "0"], "--head_tokens must be at least 1"),
                           (["--head_prune_below", "2"], "--head_prune_below 2.0 must be a share"),
                           (["--block_size", "64"], "--block_size 64 exceeds .* max_seq_len 32"),
                           (["--head_thresholds", "2"], "num_thresholds=2: need at least 3"),
                           (["--head_spacing", "cubic"], "unknown spacing 'cubic'"),
                           (["--temperature", "nan"], "--temperature is nan: it must be a finite number"),
                           (["--temperature", "0"], "--temperature must be > 0"),
                           (["--head_lr", "-1"], "--head_lr must be >= 0"),
                           (["--dim", "64"], "--dim cannot change the frozen model")):
        with pytest.raises(SystemExit, match=message):
            run_head(tmp_path / "bad", syn_dir, "--init_from", str(tmp_path / "ckpt.pt"), *flags)
        assert not (tmp_path / "bad" / "head_ckpt.pt").exists()
    ckpt = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    torch.save({k: v for k, v in ckpt.items() if k != "train_config"}, tmp_path / "bare.pt")  # not train.py's
    with pytest.raises(SystemExit, match="bare.pt was trained on data in None, which is not here.*pass --data_dir"):
        train.main(["--head", "minpplus", "--init_from", str(tmp_path / "bare.pt"), "--out_dir", str(tmp_path / "bad"),
                    "--device", "cpu"])


def test_head_training_under_torchrun_says_to_use_one_process(syn_dir, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(SystemExit, match="head training runs in one process"):
        train.main(["--head", "minpplus", "--data_dir", syn_dir])


def test_collect_stats_stops_on_a_target_the_logits_rule_out(syn_dir):
    meta = corpus.load_meta(syn_dir)
    V = meta["vocab_size"]

    def only_token_0(x):  # every other token at -inf: log p_y = -inf for most targets
        return torch.where(torch.arange(V) == 0, 0.0, float("-inf")).expand(*x.shape, V)

    with pytest.raises(ValueError, match="logits hold NaN or inf under float32 autocast: check the checkpoint"):
        train_head.collect_stats(only_token_0, train_head.MinPPlusHead(), corpus.open_split(syn_dir, "val", meta), 256,
                            train.TrainConfig(batch_size=4, block_size=32), "cpu")


def test_ctrl_c_in_the_last_head_round_still_exports_the_head(tmp_path, syn_dir, monkeypatch):
    run(tmp_path, syn_dir, "--max_steps", "4", "--eval_interval", "4")
    calls = watch_head_loss(monkeypatch, interrupt_at(9))  # 5 rounds of one epoch: a step, then an eval
    run_head(tmp_path, syn_dir, "--head_epochs", "5")  # call 9 is the last step
    assert len(calls) == 11 and (tmp_path / "head.json").exists()  # 5 steps, 5 evals, the final summary
    assert torch.load(tmp_path / "head_ckpt.pt", weights_only=False)["epoch"] == 5


def test_frozen_logits_that_overflow_fp16_stop_with_the_dtype_fix(tmp_path, syn_dir, monkeypatch):
    run(tmp_path, syn_dir, "--max_steps", "5", "--eval_interval", "5")
    real_load = train_head.load_checkpoint

    def loud(path, device):  # the same LM with logits ~1e6: past fp16's 65504, well inside bf16's range
        model, ckpt = real_load(path, device)
        with torch.no_grad():
            model.norm.weight.mul_(1e6)
        return model, ckpt

    monkeypatch.setattr(train_head, "load_checkpoint", loud)
    with pytest.raises(SystemExit, match="under float16 autocast: pass --dtype bfloat16"):
        run_head(tmp_path, syn_dir, "--dtype", "float16")
    assert not os.path.exists(tmp_path / "head_ckpt.pt")
    run_head(tmp_path, syn_dir, "--dtype", "bfloat16", "--head_epochs", "5")
    assert json.loads((tmp_path / "head.json").read_text())["vocab_size"] == corpus.load_meta(syn_dir)["vocab_size"]


def test_the_head_is_fitted_and_judged_on_the_two_halves_of_held_out_text(syn_dir):
    meta = corpus.load_meta(syn_dir)
    val = np.asarray(corpus.open_split(syn_dir, "val", meta))
    fit, judge = train_head.head_texts(train.TrainConfig(data_dir=syn_dir, block_size=32), meta)
    assert len(fit) == len(val) // 2 and np.array_equal(np.concatenate([fit, judge]), val)
    fit, judge = train_head.head_texts(train.TrainConfig(data_dir=syn_dir, block_size=32, head_data="train"), meta)
    assert np.array_equal(fit, corpus.open_split(syn_dir, "train", meta)) and np.array_equal(judge, val)
    with pytest.raises(ValueError, match="too short to halve"):
        train_head.head_texts(train.TrainConfig(data_dir=syn_dir, block_size=len(val) // 2), meta)
    with pytest.raises(SystemExit, match="unknown --head_data"):
        train.main(["--head", "minpplus", "--head_data", "test", "--data_dir", syn_dir])


class NanGradient(torch.autograd.Function):
    """The identity whose gradient is NaN: a finite loss that ruins the weights."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * float("nan")


@pytest.mark.parametrize("broken", ["loss", "gradient"])
def test_non_finite_head_training_stops_and_keeps_the_last_good_head_checkpoint(tmp_path, syn_dir, monkeypatch,
                                                                                  broken):
    run(tmp_path, syn_dir, "--max_steps", "4", "--eval_interval", "4")
    def break_it(n, loss):  # calls 1-2: the first round's steps, 3: its eval, 4-5: round two
        if broken == "loss" and n > 3:
            return loss * float("nan")
        if broken == "gradient" and n == 5:  # the round's last step: its loss is finite
            return NanGradient.apply(loss)
        return loss

    watch_head_loss(monkeypatch, break_it)
    message = "head loss is nan" if broken == "loss" else "weights are not finite"
    with pytest.raises(SystemExit, match=message):
        run_head(tmp_path, syn_dir, "--head_epochs", "10")
    kept = torch.load(tmp_path / "head_ckpt.pt", weights_only=False)
    assert kept["epoch"] == 2 and torch.isfinite(kept["head"]["theta"]).all()
    assert not (tmp_path / "head.json").exists()


def test_ddp_under_torchrun_on_cpu_trains_and_resumes(tmp_path, syn_dir):
    def torchrun(*extra):
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                   "train.py", "--data_dir", syn_dir, "--out_dir", str(tmp_path), *SMALL, *extra]
        return subprocess.run(command, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                              capture_output=True, text=True, timeout=300)

    done = torchrun("--max_steps", "30", "--eval_interval", "15", "--lr", "1e-2", "--warmup_steps", "5")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "2 processes" in done.stdout and done.stdout.count("step 15:") == 1  # rank 0 alone reports
    ckpt = torch.load(tmp_path / "ckpt.pt", weights_only=False)
    assert ckpt["step"] == 30 and len(ckpt["rng"]) == 2 and ckpt["rng"][0] != ckpt["rng"][1]
    steps = [r for r in read_metrics(tmp_path) if "train_loss_step" in r]
    assert steps[-1]["train_loss_step"] < steps[0]["train_loss_step"] - 0.5
    assert steps[0]["tokens_per_s"] > 0 and len(steps) == 30
    resumed = torchrun("--max_steps", "40", "--eval_interval", "20", "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert torch.load(tmp_path / "ckpt.pt", weights_only=False)["step"] == 40
    with pytest.raises(SystemExit, match="same number of processes"):
        run(tmp_path, syn_dir, "--max_steps", "50", "--resume")


def late(fn, cycles):
    """fn that first holds the current CUDA stream for `cycles` GPU clock cycles."""
    def delayed(*args, **kwargs):
        torch.cuda._sleep(cycles)
        return fn(*args, **kwargs)
    return delayed


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU"))])
def test_collect_stats_are_the_statistics_of_the_frozen_logits_at_the_temperature(syn_dir, device):
    meta = corpus.load_meta(syn_dir)
    tokens = corpus.open_split(syn_dir, "train", meta)
    torch.manual_seed(0)
    model = Transformer(ModelConfig(vocab_size=meta["vocab_size"], dim=32, n_layers=2, n_heads=4,
                                                n_kv_heads=2, max_seq_len=32)).to(device).eval().requires_grad_(False)
    head = train_head.MinPPlusHead().to(device)
    cfg = train.TrainConfig(batch_size=4, block_size=32, temperature=0.8)
    batches, expected = 8, []
    text = torch.from_numpy(np.asarray(tokens, dtype=np.int64))
    available = (len(text) - 1) // 32
    starts = [w * available // 31 * 32 for w in range(31)]  # 984 targets: 31 windows spread over the text
    for first in range(0, 31, 4):  # 4 a batch (the last has 3)
        x = torch.stack([text[i:i + 32] for i in starts[first:first + 4]]).to(device)
        y = torch.stack([text[i + 1:i + 33] for i in starts[first:first + 4]]).to(device)
        with torch.no_grad(), train_head.autocast(device, train_head.frozen_dtype(device)):
            logits = model(x)
        expected.append(head.bucket_stats(logits.view(-1, logits.size(-1)).float() / 0.8, y.view(-1)))  # T in fp32
    S, b, logp_y = (torch.cat(parts) for parts in zip(*expected))
    # one stream; the statistics on a second stream (CUDA); the same with torch.compile'd statistics
    runs = [(False, None, False), (True, None, False), (True, None, True)]
    if device == "cuda":  # make races show: a late forward (is its output awaited?), late statistics
        runs += [(True, "forward", False), (True, "statistics", False)]  # (are the logits kept from the next forward?)
    real_forward, real_stats = model.forward, head.bucket_stats
    for overlap, delayed, compiled in runs:
        model.forward = late(real_forward, 50_000_000) if delayed == "forward" else real_forward
        head.bucket_stats = late(real_stats, 50_000_000) if delayed == "statistics" else real_stats
        run_cfg = dataclasses.replace(cfg, compile=compiled)
        torch._dynamo.utils.counters.clear()
        got = train_head.collect_stats(model, head, tokens, batches * 4 * 32 - 40, run_cfg, device, overlap=overlap)
        assert (torch._dynamo.utils.counters["stats"]["unique_graphs"] > 0) == compiled
        torch.testing.assert_close(got[0], S, rtol=1e-5, atol=1e-6)
        assert torch.equal(got[1], b)
        torch.testing.assert_close(got[2], logp_y, rtol=1e-5, atol=1e-6)


def planted_stats(n_rows, device, seed=0):
    """Statistics whose targets favour high ratios: a head fitted on them moves its weight up."""
    generator = torch.Generator().manual_seed(seed)
    S = torch.rand(n_rows, 32, generator=generator)
    S = S / S.sum(1, keepdim=True)
    b = torch.randint(16, 32, (n_rows,), generator=generator)
    logp_y = -torch.rand(n_rows, generator=generator)
    return S.to(device), b.to(device), logp_y.to(device)


def fitted_head(stats, cuda_graph, epochs=30, rounds=(0, 10, 25, 30)):
    """A head fitted for `epochs` in calls of fit(first, last) over `rounds`; the loss after each."""
    torch.manual_seed(0)
    head = train_head.MinPPlusHead().to(stats[0].device)
    optimizer = train_head.head_optimizer(head, 0.1)
    fit = train_head.head_fitter(head, optimizer, stats, epochs, 0.1, cuda_graph=cuda_graph)
    losses = [fit(first, last).item() for first, last in zip(rounds, rounds[1:])]
    return head, optimizer, losses


def test_head_fitter_steps_on_all_rows_on_the_cosine_schedule_and_learns():
    stats = planted_stats(3500, "cpu")
    head, optimizer, losses = fitted_head(stats, cuda_graph=False)
    assert int(next(iter(optimizer.state.values()))["step"]) == 30  # one step per epoch
    last_lr = optimizer.param_groups[0]["lr"]
    assert float(last_lr) == pytest.approx(train_head.cosine_lr(29, 0.1, 0.01, 3, 30))
    untrained = train_head.MinPPlusHead().loss_from_stats(*stats).item()
    assert head.loss_from_stats(*stats).item() < untrained - 0.03 and losses[-1] < losses[0]
    # the same as plain full-batch steps of the loss on every row, on the host optimizer
    torch.manual_seed(0)
    reference = train_head.MinPPlusHead()
    plain = train_head.AdamW(reference.parameters(), lr=0.1, betas=(0.9, 0.99), weight_decay=0.0)
    for epoch in range(30):
        plain.param_groups[0]["lr"] = train_head.cosine_lr(epoch, 0.1, 0.01, 3, 30)
        reference.theta.grad, = torch.autograd.grad(reference.loss_from_stats(*stats), [reference.theta])
        plain.step()
    torch.testing.assert_close(head.theta, reference.theta, rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_graph_head_fitting_equals_eager_fitting_on_cuda():
    stats = planted_stats(3500, "cuda")
    graphed, _, graphed_losses = fitted_head(stats, cuda_graph=True)
    eager, _, eager_losses = fitted_head(stats, cuda_graph=False)
    torch.testing.assert_close(graphed.theta, eager.theta, rtol=1e-5, atol=1e-6)
    assert graphed_losses == pytest.approx(eager_losses, rel=1e-5)
