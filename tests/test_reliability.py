"""What a careless or hostile user does: bad flags and files, damaged checkpoints, a full disk,
SIGKILL in the middle of a save, Ctrl-C or a killed rank under torchrun, an absurd learning rate,
and random (also NaN and infinite) logits thrown at every sampler."""
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import corpus
import data
import runtime
import script
import train
from head import MinPPlusHead
from sample import METHODS, filter_logits

from test_train import SMALL

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def trained(tmp_path_factory, syn_dir):
    """A run of 4 steps: its out_dir holds ckpt.pt and metrics.jsonl."""
    out = tmp_path_factory.mktemp("run")
    train.main(["--data_dir", syn_dir, "--out_dir", str(out), *SMALL, "--max_steps", "4", "--eval_interval", "2"])
    return out


def one_line_error(argv, message, main=train.main):
    with pytest.raises(SystemExit, match=message) as error:
        main(argv)
    assert str(error.value).startswith("error: ") and "\n" not in str(error.value)


def test_token_ids_beyond_the_vocabulary_are_a_one_line_error_and_only_a_changed_file_is_scanned(
        tmp_path, syn_dir, monkeypatch):
    real_scan, scanned = corpus.scan_max_id, []
    monkeypatch.setattr(corpus, "scan_max_id", lambda tokens: scanned.append(len(tokens)) or real_scan(tokens))
    copied = tmp_path / "copied"
    shutil.copytree(syn_dir, copied)  # copy2 keeps each file's size and modification time
    corpus.open_split(str(copied), "train", corpus.load_meta(str(copied)))
    assert scanned == []  # meta.json's largest id still describes the file: nothing read
    meta = corpus.load_meta(str(copied))
    tokens = np.fromfile(copied / "train.bin", dtype=meta["dtype"])
    tokens[len(tokens) // 2] = meta["vocab_size"] + 5  # an edited or mixed-up file of the same size
    tokens.tofile(copied / "train.bin")
    one_line_error(["--data_dir", str(copied), "--out_dir", str(tmp_path / "out"), *SMALL, "--max_steps", "1"],
                   f"train.bin holds token id {meta['vocab_size'] + 5} >= vocab_size {meta['vocab_size']}")
    assert scanned == [len(tokens)]
    shutil.copy(os.path.join(syn_dir, "val.bin"), copied / "val.bin")  # a new modification time, the same ids
    corpus.open_split(str(copied), "val", meta)  # scanned, and fine
    assert scanned == [len(tokens), meta["val_tokens"]]


def test_damaged_checkpoints_are_one_line_errors_on_resume(tmp_path, syn_dir, trained):
    good = (trained / "ckpt.pt").read_bytes()
    ckpt = torch.load(trained / "ckpt.pt", weights_only=True)
    damaged = {"empty": (b"", "ckpt.pt is empty"),
               "truncated": (good[:len(good) // 2], "cannot read .*as a checkpoint")}
    for name, (content, message) in damaged.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "ckpt.pt").write_bytes(content)
        one_line_error(["--data_dir", syn_dir, "--out_dir", str(tmp_path / name), *SMALL, "--resume"], message)
    started = time.perf_counter()
    for name, edit in (("edited", {"model_config": {**ckpt["model_config"], "layers": 3}}),
                       ("huge", {"model_config": {**ckpt["model_config"], "n_layers": 10**9}}),
                       ("wide", {"model_config": {**ckpt["model_config"], "dim": 10**6}}),
                       ("long", {"model_config": {**ckpt["model_config"], "max_seq_len": 10**11}}),
                       ("typo", {"model_config": {**ckpt["model_config"], "dim": "zz"}}),
                       ("lr", {"train_config": {**ckpt["train_config"], "lr": "zz"}}),
                       ("no_rng", {"rng": None})):
        (tmp_path / name).mkdir()
        torch.save({**ckpt, **edit}, tmp_path / name / "ckpt.pt")
        one_line_error(["--data_dir", syn_dir, "--out_dir", str(tmp_path / name), *SMALL, "--resume"],
                       "damaged or was edited")
    assert time.perf_counter() - started < 60  # an edited size is refused before the model is built


def test_a_resumed_run_refuses_a_model_flag_that_differs(syn_dir, trained):
    one_line_error(["--data_dir", syn_dir, "--out_dir", str(trained), *SMALL, "--resume", "--dim", "64"],
                   "--dim 64 differs from the resumed checkpoint's model")


def test_bad_paths_and_flags_are_one_line_errors(tmp_path, syn_dir):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    run = ["--data_dir", syn_dir, *SMALL, "--max_steps", "1"]
    one_line_error([*run, "--out_dir", str(a_file)], "--out_dir .*a_file is a file")
    one_line_error([*run, "--out_dir", str(a_file / "below")], "lies under a file")
    one_line_error(["--out_dir", str(a_file)], "--out_dir .*a_file is a file", main=data.main)
    for flags, message in ((["--block_size", "-1"], "--block_size must be >= 0"),
                           (["--warmup_steps", "-1"], "--warmup_steps must be >= 0"),
                           (["--lr", "nan"], "--lr is nan: it must be a finite number"),
                           (["--grad_clip", "inf"], "--grad_clip is inf"),
                           (["--lr", "1e39", "--warmup_steps", "0"], "--lr 1e\\+39 is beyond float32's range"),
                           (["--device", "meta"], "--device 'meta' is not one this project runs on"),
                           (["--batch_size", "1000000000"], "exceed 16,777,216 tokens a micro-batch")):
        one_line_error([*run, "--out_dir", str(tmp_path / "out"), *flags], message)
    text = tmp_path / "t.txt"
    text.write_text("some text\n" * 50)
    for size in ("-5", "0", "1", "257"):
        one_line_error(["--input", str(text), "--out_dir", str(tmp_path / "d"), "--vocab_size", size],
                       "must be above 257", main=data.main)
    bad_meta = tmp_path / "bad_meta"
    bad_meta.mkdir()
    (bad_meta / "meta.json").write_text("{not json")
    one_line_error(["--data_dir", str(bad_meta), "--out_dir", str(tmp_path / "out"), *SMALL], "cannot read .*meta.json")


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root may write anywhere")
def test_an_unwritable_out_dir_is_a_one_line_error(tmp_path, syn_dir):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    one_line_error(["--data_dir", syn_dir, "--out_dir", str(locked), *SMALL], "not writable")


@pytest.mark.parametrize("content, message", [
    ('{"thresholds": [0, 0.5], "weights": [1, 1e400]}', "weights\\[1\\] is inf"),
    ('{"thresholds": [0, 0.5], "weights": [1, ' + "9" * 400 + "]}", "weights\\[1\\] is 9+: every value"),
    ('{"thresholds": [0, 0.5], "weights": ' + "[" * 50_000 + "]" * 50_000 + "}", "nests its JSON too deeply"),
])
def test_hostile_head_files_are_value_errors(tmp_path, content, message):
    path = tmp_path / "head.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        MinPPlusHead.load_json(str(path))


def test_metrics_are_strict_json_and_a_resume_logs_each_step_once(tmp_path, syn_dir):
    run = ["--data_dir", syn_dir, "--out_dir", str(tmp_path), *SMALL, "--eval_interval", "3"]
    (tmp_path / "metrics.jsonl").write_text('{"step": 9, "train_loss_step": 1.0}\n')  # an older run's log
    train.main([*run, "--max_steps", "4"])
    log = runtime.MetricsLog(str(tmp_path), "metrics.jsonl", "step", resumed_at=4)
    log.write({"step": 3, "loss": math.nan})  # kept by the resume: must be strict JSON
    log.write({"step": 5, "loss": 1.0})  # a row past the checkpoint, as a crash leaves
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 5, "train_lo')  # a write cut short by a kill
    train.main([*run, "--max_steps", "6", "--resume"])

    def refuse(constant):
        raise ValueError(f"bare {constant} in metrics.jsonl")

    rows = [json.loads(line, parse_constant=refuse) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in rows if "train_loss_step" in r]
    assert steps == [1, 2, 3, 4, 5, 6]
    assert [r["loss"] for r in rows if "loss" in r] == [None]
    assert runtime.strict_json({"a": [math.inf, 1.0], "b": math.nan}) == {"a": [None, 1.0], "b": None}


def test_a_fresh_run_that_fails_before_saving_leaves_the_last_runs_log(tmp_path, syn_dir, monkeypatch):
    run = ["--data_dir", syn_dir, "--out_dir", str(tmp_path), *SMALL, "--eval_interval", "2"]
    train.main([*run, "--max_steps", "4"])
    before = (tmp_path / "metrics.jsonl").read_text()
    real_forward, calls = train.Transformer.forward, []

    def forward_that_breaks(self, idx, targets=None, cache=None):
        out = real_forward(self, idx, targets, cache)
        calls.append(1)
        return (out[0], out[1] * math.nan) if self.training and len(calls) > 1 else out

    monkeypatch.setattr(train.Transformer, "forward", forward_that_breaks)
    with pytest.raises(SystemExit, match="loss is nan at step 2: stopping; the last good checkpoint .*\\(step 4\\) "
                                         "is untouched"):
        train.main([*run, "--max_steps", "4"])  # fresh, not --resume: it would replace the checkpoint at step 2
    assert (tmp_path / "metrics.jsonl").read_text() == before  # the checkpoint's log, as the checkpoint
    assert torch.load(tmp_path / "ckpt.pt", weights_only=True)["step"] == 4
    monkeypatch.undo()
    train.main([*run, "--max_steps", "2"])  # fresh, and it saves: its log replaces the old one
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "train_loss_step" in r] == [1, 2]
    assert not (tmp_path / "metrics.jsonl.new").exists()


def test_a_diverged_but_finite_step_never_replaces_the_last_good_checkpoint(tmp_path, syn_dir):
    run = ["--data_dir", syn_dir, "--out_dir", str(tmp_path), *SMALL, "--eval_interval", "1", "--warmup_steps", "10"]
    with pytest.raises(SystemExit) as stopped:  # an absurd learning rate, a checkpoint every step
        train.main([*run, "--max_steps", "30", "--lr", "1000"])
    message = str(stopped.value)
    found = re.fullmatch(r"error: val loss \S+ at step (\d+) is above the unigram loss .*: the run diverged; "
                         r"stopping; the last good checkpoint \S+ \(step (\d+)\) is untouched\. Lower --lr", message)
    assert found, message
    failed, kept = map(int, found.groups())
    evals = {r["step"]: r for r in map(json.loads, (tmp_path / "metrics.jsonl").read_text().splitlines())
             if "val_loss" in r}
    assert failed == max(evals) and kept == failed - 1 == torch.load(tmp_path / "ckpt.pt", weights_only=True)["step"]
    best = min(evals[step]["val_loss"] for step in evals if step < failed)
    assert evals[failed]["val_loss"] > max(evals[failed]["unigram_loss"], best + math.log(2))
    train.main([*run, "--resume", "--lr", "1e-2", "--max_steps", str(kept + 2)])  # the kept one trains on
    assert torch.load(tmp_path / "ckpt.pt", weights_only=True)["step"] == kept + 2


def test_non_finite_weights_are_never_saved(tmp_path):
    path = str(tmp_path / "ckpt.pt")
    runtime.save_checkpoint({"model": {"w": torch.ones(3)}, "step": 1}, path)
    with pytest.raises(FloatingPointError, match="1 tensor.*model.w.*the last good checkpoint .* is untouched"):
        runtime.save_checkpoint({"model": {"w": torch.tensor([1.0, math.nan])}, "step": 2}, path)
    assert torch.load(path, weights_only=True)["step"] == 1
    with pytest.raises(FloatingPointError, match="no checkpoint was saved yet"):
        runtime.save_checkpoint({"opt": [{"exp_avg": torch.tensor([math.inf])}]}, str(tmp_path / "new.pt"))


def test_a_failed_save_removes_its_temp_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    path = str(tmp_path / "ckpt.pt")
    runtime.save_checkpoint({"step": 1}, path)

    def full_disk(obj, f):  # what torch.save does when the disk fills mid-write
        with open(f, "wb") as out:
            out.write(b"partial")
        raise RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 64 vs 0")

    monkeypatch.setattr(torch, "save", full_disk)
    monkeypatch.setattr(script, "disk_full", lambda error, path: True)
    with pytest.raises(OSError, match="could not write .*ckpt.pt \\(the disk is full\\); the previous file"):
        runtime.save_checkpoint({"step": 2}, path)
    assert os.listdir(tmp_path) == ["ckpt.pt"]
    monkeypatch.undo()
    assert torch.load(path, weights_only=True)["step"] == 1


def test_what_a_kill_in_the_first_save_leaves_is_removed_by_the_next_run(tmp_path, syn_dir, trained, capsys):
    (tmp_path / "ckpt.pt.tmp").write_bytes(b"the first part of a checkpoint")  # no ckpt.pt: none was renamed
    (tmp_path / "metrics.jsonl.new").write_text('{"step": 1, "train_loss_step": 5.2}\n')
    one_line_error(["--data_dir", syn_dir, "--out_dir", str(tmp_path), *SMALL, "--resume"], "no checkpoint at")
    assert os.listdir(tmp_path) == []
    assert "removed ckpt.pt.tmp, metrics.jsonl.new" in capsys.readouterr().out
    head_dir = tmp_path / "head"
    head_dir.mkdir()
    for name in ("head_ckpt.pt.tmp", "head.json.tmp", "head_metrics.jsonl.new"):
        (head_dir / name).write_text("debris")
    one_line_error(["--head", "minpplus", "--init_from", str(trained / "ckpt.pt"), "--data_dir", syn_dir,
                    "--out_dir", str(head_dir), "--device", "cpu", "--head_tokens", "500", "--head_val_tokens",
                    "500", "--resume"], "no head checkpoint at")
    assert os.listdir(head_dir) == []


def test_sigkill_during_saves_never_leaves_an_unreadable_checkpoint(tmp_path, syn_dir):
    """Kill training at random moments while it saves every step; every time, the checkpoint reads
    and the run resumes, and the last run finishes."""
    command = [sys.executable, "train.py", "--data_dir", syn_dir, "--out_dir", str(tmp_path), *SMALL,
               "--max_steps", "400", "--eval_interval", "1", "--eval_batches", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for kill in range(3):
        resume = ["--resume"] if (tmp_path / "ckpt.pt").exists() else []
        process = subprocess.Popen(command + resume, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        deadline = time.time() + 120
        while not (tmp_path / "ckpt.pt").exists() and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(1.0 + 0.37 * kill)  # some steps (and saves) in
        process.send_signal(signal.SIGKILL)
        process.wait()
        step = torch.load(tmp_path / "ckpt.pt", weights_only=True)["step"]
        assert step >= 1
    finished = subprocess.run(command + ["--resume", "--max_steps", str(step + 2)], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-1000:]
    assert torch.load(tmp_path / "ckpt.pt", weights_only=True)["step"] == step + 2


def start_ranks(syn_dir, out_dir, world_size=2):
    """train.py's ranks as torchrun starts them: one process each, in a session of its own (torchrun
    forwards a Ctrl-C to each), rendezvous through the environment. Their output goes to files."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, "train.py", "--data_dir", syn_dir, "--out_dir", str(out_dir), *SMALL,
               "--max_steps", "100000", "--eval_interval", "20", "--eval_batches", "1"]
    ranks = []
    for rank in range(world_size):
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
               "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world_size),
               "LOCAL_WORLD_SIZE": str(world_size)}
        output = open(out_dir / f"rank{rank}.txt", "w+")
        ranks.append((subprocess.Popen(command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT,
                                       start_new_session=True), output))
    deadline = time.time() + 300
    log = out_dir / "metrics.jsonl.new"
    while not (log.exists() and log.read_text().count("\n") >= 3) and time.time() < deadline:
        time.sleep(0.05)  # a few steps in: every rank is in the training loop
    return ranks


def finish(ranks):
    """(exit status, the lines of output that are not progress bars) of each rank."""
    results = []
    for process, output in ranks:
        process.wait(timeout=300)
        output.seek(0)
        lines = [line for line in output.read().replace("\r", "\n").splitlines()
                 if line.strip() and not line.startswith("train:")]
        results.append((process.returncode, lines))
        output.close()
    return results


def test_ctrl_c_under_torchrun_saves_and_every_rank_exits_130_with_one_line_at_most(tmp_path, syn_dir):
    (tmp_path / "int").mkdir()
    ranks = start_ranks(syn_dir, tmp_path / "int")
    for process, _ in ranks:
        os.killpg(process.pid, signal.SIGINT)  # what torchrun does on Ctrl-C
    (code0, lines0), (code1, lines1) = finish(ranks)
    step = torch.load(tmp_path / "int" / "ckpt.pt", weights_only=True)["step"]
    assert (code0, code1) == (130, 130), lines0 + lines1
    assert lines0[-1] == f"interrupted: saved {tmp_path / 'int' / 'ckpt.pt'} at step {step}; continue with --resume"
    assert not any("interrupt" in line for line in lines0[:-1]) and lines1 == []
    (tmp_path / "kill").mkdir()
    ranks = start_ranks(syn_dir, tmp_path / "kill")
    os.killpg(ranks[1][0].pid, signal.SIGKILL)  # a rank killed: the other's collective fails
    (code0, lines0), (code1, _) = finish(ranks)
    assert code1 == -signal.SIGKILL and code0 == 1
    assert lines0[-1].startswith("error: another process of this run stopped (Connection ")
    assert not any("Traceback" in line for line in lines0), lines0


# ----------------------------------------------------------------------------
# property-based: every sampler on random logits with ties, infinities, huge and tiny values

KNOBS = {  # method -> its parameter's values, loosest first (the support can only shrink along them)
    "top_k": ("top_k", [50, 7, 3, 1]),
    "top_p": ("top_p", [1.0, 0.95, 0.6, 0.2, 1e-9]),
    "min_p": ("min_p", [0.0, 0.01, 0.2, 0.9, 1.0]),
    "typical": ("typical_p", [1.0, 0.9, 0.5, 1e-9]),
    "epsilon": ("epsilon_cutoff", [0.0, 1e-4, 0.05, 0.5]),
    "eta": ("eta_cutoff", [0.0, 1e-4, 0.05, 0.5]),
    "top_nsigma": ("n_sigma", [10.0, 2.0, 0.5, 0.0]),
}
special = st.sampled_from([0.0, 1.0, -1.0, 80.0, -80.0, 1e30, -1e30, 1e-30, float("-inf")])
logit_values = st.one_of(st.floats(-50, 50, allow_nan=False, width=32), special)


@st.composite
def logit_rows(draw, V=None):
    V = draw(st.integers(1, 12)) if V is None else V
    values = draw(st.lists(logit_values, min_size=V, max_size=V))
    if draw(st.booleans()):  # ties are common in real logits (quantised models, repeated tokens)
        values = [values[0] if draw(st.booleans()) else v for v in values]
    if all(v == float("-inf") for v in values):
        values[draw(st.integers(0, V - 1))] = 0.0  # a row needs one possible token
    return torch.tensor([values], dtype=torch.float32)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(logits=logit_rows(), method=st.sampled_from(sorted(KNOBS)),
       temperature=st.sampled_from([0.3, 1.0, 2.5]), temperature_last=st.booleans())
def test_every_sampler_gives_a_valid_distribution_whose_support_shrinks_along_its_knob(
        logits, method, temperature, temperature_last):
    name, values = KNOBS[method]
    previous = None
    for value in values:
        out = filter_logits(logits, method, temperature=temperature, temperature_last=temperature_last,
                            **{name: value})
        probs = torch.softmax(out, -1)
        assert torch.isfinite(probs).all() and abs(probs.sum().item() - 1) < 1e-5
        support = torch.isfinite(out) & (out > float("-inf"))
        assert support.sum() >= 1 and not (support & torch.isinf(logits) & (logits < 0)).any()
        if method != "typical":  # typical may drop the top token when it is atypical; the others never do
            assert support[0, logits[0].argmax()]
        if previous is not None:
            assert not (support & ~previous).any()  # tightening never adds a token
        previous = support


@st.composite
def broken_batches(draw):
    """(logits, row, cause): a batch of valid rows in which one row holds a NaN or a +inf, or is all -inf."""
    V = draw(st.integers(1, 12))
    logits = torch.cat([draw(logit_rows(V)) for _ in range(draw(st.integers(1, 4)))])
    row, cause = draw(st.integers(0, len(logits) - 1)), draw(st.sampled_from(["NaN", "+inf", "-inf"]))
    if cause == "-inf":
        logits[row] = float("-inf")
    else:
        logits[row, draw(st.integers(0, V - 1))] = float("nan") if cause == "NaN" else float("inf")
    return logits, row, cause


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=broken_batches(), method=st.sampled_from(sorted(KNOBS) + ["greedy", "temperature", "minpplus"]),
       temperature=st.sampled_from([0.0, 0.3, 1.0, 2.5]), temperature_last=st.booleans())
def test_nan_inf_or_all_minus_inf_logits_are_a_value_error_naming_the_row(batch, method, temperature,
                                                                          temperature_last):
    logits, row, cause = batch
    params = {KNOBS[method][0]: KNOBS[method][1][1]} if method in KNOBS else {}
    params |= {"head": MinPPlusHead(4)} if method == "minpplus" else {}
    message = {"NaN": "holds NaN", "+inf": "holds \\+inf", "-inf": "is all -inf"}[cause]
    with pytest.raises(ValueError, match=f"^logits row {row} {message}"):
        filter_logits(logits, method, temperature=temperature, temperature_last=temperature_last, **params)


def test_logits_that_are_no_tensor_or_have_no_vocabulary_are_value_errors():
    for logits, message in (([[0.0, 1.0]], "logits must be a tensor .*, not a list"),
                            (torch.tensor(1.0), "logits must be a tensor .*, not one of shape \\(\\)"),
                            (torch.zeros(2, 0), "no vocabulary: logits of shape \\(2, 0\\)")):
        with pytest.raises(ValueError, match=message):
            filter_logits(logits, "top_p", top_p=0.9)
    assert filter_logits(torch.zeros(0, 5), "top_p", top_p=0.9).shape == (0, 5)  # no rows: nothing to check


def test_the_fuzzed_methods_are_all_the_truncating_ones():
    assert set(KNOBS) == set(METHODS) - {"greedy", "temperature", "minpplus"}


json_values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=5)),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner,
                                                                                        max_size=3), max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(thresholds=json_values | st.lists(st.floats(0, 1), max_size=6),
       weights=json_values | st.lists(st.floats(-1, 1e39), max_size=6))
def test_any_head_file_loads_or_is_a_value_error(tmp_path_factory, thresholds, weights):
    path = tmp_path_factory.mktemp("fuzz") / "head.json"
    path.write_text(json.dumps({"thresholds": thresholds, "weights": weights}))
    try:
        head, _ = MinPPlusHead.load_json(str(path))
    except ValueError:
        return
    w = head.weights()
    assert torch.isfinite(w).all() and (w >= 0).all() and w.sum() > 0 and head.tau[0] == 0


def test_a_script_main_turns_errors_into_one_line_and_lets_bugs_through(capsys):
    def raising(error):
        def run(argv):
            raise error
        return run
    for error, message in ((ValueError("--x 3 is bad: pass 2"), "error: --x 3 is bad: pass 2"),
                           (OSError("could not write f (the disk is full)"), "error: could not write f"),
                           (MemoryError(), "error: out of memory: pass smaller sizes"),
                           (RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried"), "out of memory")):
        with pytest.raises(SystemExit, match=message) as exit_:
            script.run_script(raising(error))
        assert "\n" not in str(exit_.value)
    saved = "interrupted: saved c.pt at step 3"
    for interrupt, line in ((script.Interrupted(saved), saved + "\n"),
                            (script.Interrupted(""), ""),  # another rank's: rank 0 speaks for the run
                            (KeyboardInterrupt(), "interrupted\n")):  # a Ctrl-C before anything was saved
        with pytest.raises(SystemExit) as exit_:
            script.run_script(raising(interrupt))
        assert exit_.value.code == 130 and capsys.readouterr().err == line
    for bug in (KeyError("x"), RuntimeError("shape mismatch")):  # a bug keeps its traceback
        with pytest.raises(type(bug)):
            script.run_script(raising(bug))
    assert script.run_script(lambda argv: argv, ["--a"]) == ["--a"]
