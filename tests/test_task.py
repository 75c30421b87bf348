"""The arithmetic task: its answers, its answer mask, the scoring, and the evaluation end to end."""
import json
import os

import numpy as np
import pytest
import torch

import corpus
import data
import evaluate
import task
import train
import word_problems
import train_head

PLUS = {"finds", "buys", "gets"}  # what the words mean, written here without looking at task.py's templates
MINUS = {"loses", "sells", "takes"}
PRONOUNS = {"he", "she"}


def solve(question):
    """The answer, read off the question's words as a person would."""
    sentences = " ".join(question.split()[:-1]).split(" . ")  # drop the answer marker
    first = sentences[0].split()
    assert first[1] == "has"
    count = int(first[2])
    for sentence in sentences[1:-1]:
        words = sentence.rstrip(" .").split()
        words = [w for w in words if w not in ("then", "later", "after", "that")]
        amount = int(next(w for w in words if w.isdigit()))
        verb = words[1]
        if verb == "gives":  # "he gives 3 to anna" loses them; "anna gives him 3" gains them
            count += -amount if words[0] in PRONOUNS else amount
        elif verb in PLUS:
            count += amount
        elif verb in MINUS:
            count -= amount
        else:
            raise AssertionError(f"unknown verb in {sentence!r}")
    assert sentences[-1].startswith("how many")
    return count


@pytest.mark.parametrize("steps,max_number", [(1, 5), (2, 20), (4, 9)])
def test_generated_answers_are_right(steps, max_number):
    problems = word_problems.generate_problems(500, steps, max_number, seed=steps)
    for question, answer in problems:
        assert question.endswith(" " + word_problems.ANSWER)
        assert question.count(" . ") == steps + 1
        assert solve(question) == answer
        assert all(0 <= int(w) <= max_number for w in question.split() if w.isdigit())


def test_generator_is_deterministic_and_varied():
    assert word_problems.generate_problems(50, seed=3) == word_problems.generate_problems(50, seed=3)
    assert word_problems.generate_problems(50, seed=3) != word_problems.generate_problems(50, seed=4)
    answers = [a for _, a in word_problems.generate_problems(2000, 2, 10)]
    assert set(answers) == set(range(11))
    with pytest.raises(ValueError, match="--steps"):
        word_problems.generate_problems(5, steps=0)


@pytest.fixture(scope="module")
def task_dir(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("arith"))
    word_problems.prepare_task(path, steps=2, max_number=12, train_problems=300, val_problems=50, eval_problems=40)
    return path


def test_prepare_writes_what_data_py_writes(task_dir):
    meta = corpus.load_meta(task_dir)
    assert meta["kind"] == "task" and meta["eos_id"] == 0
    tok = corpus.load_tokenizer(task_dir)
    assert tok.token_to_id(corpus.EOS) == 0 and tok.token_to_id(corpus.UNK) == 1
    assert tok.token_to_id(word_problems.ANSWER) == meta["answer_id"]
    train = corpus.open_split(task_dir, "train", meta)
    assert train[0] == 0 and train[-1] == 0 and (np.asarray(train) == meta["answer_id"]).sum() == 300
    text = tok.decode(np.asarray(train[1:60]).tolist())
    assert "has" in text and word_problems.ANSWER in text and corpus.UNK not in text
    problems = task.load_problems(task_dir)
    assert len(problems) == 40
    train_questions = {q for q, _ in word_problems.generate_problems(300, 2, 12, seed=1)}
    assert not train_questions & {q for q, _ in problems}  # held out for real
    assert all(solve(q) == a for q, a in problems)


def test_data_py_hands_task_to_task_py(tmp_path, capsys):
    data.main(["--task", "arithmetic", "--out_dir", str(tmp_path), "--train_problems", "100",
               "--val_problems", "20", "--eval_problems", "10", "--max_number", "7"])
    assert corpus.load_meta(str(tmp_path))["max_number"] == 7
    assert "10 held-out problems" in capsys.readouterr().out


def test_mask_selects_exactly_the_answer_tokens():
    A, E = 50, 0  # answer marker, <eos>
    tokens = [E, 5, 6, A, 7, E, 8, 9, 9, A, 3, 4, E, 5]
    mask = corpus.answer_mask(tokens, A, E)
    assert np.flatnonzero(mask).tolist() == [4, 5, 10, 11, 12]
    assert not corpus.answer_mask([A, 7, E], A, E)[0]  # the marker itself is no answer token


def test_mask_on_a_generated_corpus(task_dir):
    meta = corpus.load_meta(task_dir)
    tokens = np.asarray(corpus.open_split(task_dir, "train", meta))
    mask = corpus.answer_mask(tokens, meta["answer_id"], meta["eos_id"])
    starts = np.flatnonzero(tokens == meta["answer_id"]) + 1  # every answer: one number, then <eos>
    assert mask.sum() == 2 * len(starts)
    assert mask[starts].all() and mask[starts + 1].all() and (tokens[starts + 1] == 0).all()
    vocab = corpus.load_tokenizer(task_dir).get_vocab()
    numbers = {i for w, i in vocab.items() if w.isdigit()}
    assert all(t in numbers for t in tokens[starts])


def test_scoring_on_hand_made_answers():
    E = 0
    number_of = {10: 6, 11: 5}  # token id -> value
    outputs = [[10, E], [11, E], [10], [E], [10, 10], [99, E], [10, 11]]
    correct, malformed = task.score(outputs, [6, 6, 6, 6, 6, 6, 6], number_of, E)
    assert correct.tolist() == [True, False, False, False, False, False, False]
    assert malformed.tolist() == [False, False, True, True, True, True, True]


def test_wilson_interval():
    low, high = task.wilson_interval(0, 10)
    assert low == 0 and high == pytest.approx(0.2775, abs=1e-4)
    low, high = task.wilson_interval(5, 10)
    assert (low, high) == (pytest.approx(0.2366, abs=1e-4), pytest.approx(0.7634, abs=1e-4))
    assert task.wilson_interval(10, 10)[1] == 1


def test_expected_accuracy_is_the_chance_of_a_right_answer():
    problems = task.Problems([("x", 1), ("x", 2)], {corpus.EOS: 0, "x": 3, "1": 1, "2": 2})
    logits = torch.full((2, 2, 4), -1e9)
    logits[0, 0, 1], logits[0, 1, 0] = 0, 0  # row 0: certainly "1 <eos>", right
    logits[1, 0, 1:3], logits[1, 1, 0] = 0, 0  # row 1: "1" or "2" evenly, then <eos>: right half the time
    assert task.expected_accuracy(logits, problems, 0, "temperature", 1.0) == pytest.approx(0.75)
    assert task.expected_accuracy(logits, problems, 0, "greedy", 1.0) == pytest.approx(0.5)  # argmax: the lower id


def test_quick_end_to_end(tmp_path):
    rows = evaluate.main(["--task", "--quick", "--out_dir", str(tmp_path), "--device", "cpu"])  # goes to task.py
    results = json.loads((tmp_path / "task_results.json").read_text())
    assert results == rows
    methods = {r["method"] for r in rows}
    assert {"greedy", "min_p tuned", "top_p tuned", "MinP+ all positions", "MinP+ answer positions"} <= methods
    assert len(rows) == 1 + 11 * len(task.TEMPERATURES)
    for r in rows:
        assert 0 <= r["ci_low"] <= r["accuracy"] <= r["ci_high"] <= 1 and 0 <= r["malformed"] <= 1
        # what was sampled and scored agrees with the exact chance of a right answer (100 draws: SD <= 0.05)
        assert r["accuracy"] == pytest.approx(r["expected_accuracy"], abs=0.15)
        # pass@1 is the same exact chance, computed from each candidate answer's logits instead
        assert r["pass@1"] == pytest.approx(r["expected_accuracy"], abs=1e-5)
        passes = [r[f"pass@{k}"] for k in (1, 2, 4, 8, 16)]
        assert passes == sorted(passes) and r["pass@16_ci"][0] <= r["pass@16"] <= r["pass@16_ci"][1]
    greedy = rows[0]
    assert all(greedy[f] == pytest.approx(greedy["accuracy"]) for f in ("pass@16", "maj@16"))  # 16 equal draws
    assert "Frontiers" in (tmp_path / "task_passk.md").read_text()
    assert greedy["method"] == "greedy" and greedy["malformed"] < 0.2  # the tiny LM has learnt the answer format
    assert greedy["accuracy"] == pytest.approx(greedy["expected_accuracy"], abs=1e-6)  # deterministic: exact


def test_eval_refuses_data_without_a_task(tmp_path):
    data.prepare_synthetic(str(tmp_path / "syn"), train_tokens=2000, val_tokens=500)
    with pytest.raises(SystemExit, match="holds no task"):
        task.main(["--task", str(tmp_path / "syn"), "--ckpt", str(tmp_path / "none.pt")])
    for flags, message in ((["--report_problems", "0"], "must be at least 1"), (["--head_tokens", "0"], "at least 1"),
                           (["--temperatures", "1", "0"], "--temperatures holds 0: every temperature must be")):
        with pytest.raises(SystemExit, match=message):  # before the data or the model is read
            task.main(["--task", str(tmp_path / "nowhere"), *flags])


SMALL_LM = ["--dim", "32", "--n_layers", "2", "--n_heads", "4", "--n_kv_heads", "2", "--max_seq_len", "32",
            "--batch_size", "8", "--max_steps", "20", "--eval_interval", "20", "--eval_batches", "2", "--device", "cpu"]


@pytest.fixture(scope="module")
def lm_dir(task_dir, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("lm"))
    train.main(["--data_dir", task_dir, "--out_dir", out, *SMALL_LM])
    return out


def test_answer_rows_line_up_with_the_statistics(task_dir):
    meta = corpus.load_meta(task_dir)
    tokens = np.asarray(corpus.open_split(task_dir, "val", meta))
    cfg = train.TrainConfig(data_dir=task_dir, block_size=16, batch_size=4)
    rows = train_head.answer_rows(tokens, 10_000, cfg, meta).numpy()
    starts = np.concatenate(corpus.tiling_batches(tokens, cfg.batch_size, cfg.block_size, 10_000))
    positions = (starts[:, None] + 1 + np.arange(cfg.block_size)).reshape(-1)  # each row's target position
    assert len(rows) == len(positions)
    kept = positions[rows]
    numbers = tokens[kept] != meta["eos_id"]
    assert (tokens[kept[numbers] - 1] == meta["answer_id"]).all()  # a number right after the marker
    assert (tokens[kept[~numbers] - 2] == meta["answer_id"]).all()  # the <eos> after that number
    assert abs(numbers.sum() - (~numbers).sum()) <= 1  # pairs (one may straddle the end of what was read)


def test_head_on_answer_positions(lm_dir, task_dir, capsys):
    train.main(["--head", "minpplus", "--out_dir", lm_dir, "--head_positions", "answer", "--device", "cpu",
                "--head_epochs", "10", "--batch_size", "8"])
    out = capsys.readouterr().out
    with open(os.path.join(lm_dir, "head.json")) as f:
        assert "answer positions" in json.load(f)["fitted_on"]
    n_answers = int(out.split("fitted on ")[1].split(" positions")[0].replace(",", ""))
    assert 0 < n_answers <= 2 * 25  # val's first half holds 25 problems: two answer tokens each, at most


def test_answer_positions_need_task_data(tmp_path):
    path = str(tmp_path / "syn")
    data.prepare_synthetic(path, train_tokens=2000, val_tokens=2000)
    meta = corpus.load_meta(path)
    cfg = train.TrainConfig(data_dir=path, block_size=16)
    with pytest.raises(ValueError, match="--head_positions answer needs task data"):
        train_head.answer_rows(corpus.open_split(path, "val", meta), 1000, cfg, meta)
    with pytest.raises(SystemExit, match="unknown --head_positions"):
        train.main(["--head", "minpplus", "--head_positions", "answers", "--data_dir", path])


def test_task_knobs_and_counts_are_bounded(tmp_path):
    for steps, max_number in ((0, 10), (word_problems.MAX_STEPS + 1, 10), (2, 1), (2, word_problems.MAX_NUMBER + 1)):
        with pytest.raises(ValueError, match=r"need 1 <= --steps <= \d+ and 2 <= --max_number <= \d+"):
            word_problems.generate_problems(5, steps, max_number)
    for counts in ((0, 10, 10), (10, -1, 10), (10, 10, 0)):
        with pytest.raises(ValueError, match="must be at least 1"):
            word_problems.prepare_task(str(tmp_path / "t"), 2, 10, *counts)
    assert not (tmp_path / "t").exists()  # refused before anything is written
    biggest = word_problems.generate_problems(2000, word_problems.MAX_STEPS, word_problems.MAX_NUMBER)
    longest = max(len(q.split()) for q, _ in biggest)
    assert longest + 1 + task.ANSWER_BUDGET <= 128  # <eos>, question, answer: within the tiny preset's context


def test_eval_refuses_problems_longer_than_the_context(lm_dir, task_dir, tmp_path):
    long_dir = str(tmp_path / "long")
    word_problems.prepare_task(long_dir, steps=5, max_number=12, train_problems=20, val_problems=20, eval_problems=20)
    model, _ = task.load_checkpoint(os.path.join(lm_dir, "ckpt.pt"), "cpu")  # a context of 32 tokens
    with pytest.raises(ValueError, match=r"beyond the model's context 32: train with --max_seq_len \d+"):
        task.evaluate_task(model, long_dir, tune_problems=10, report_problems=10)  # refused before any answer
    for flags in (["--task", task_dir, "--quick"], ["--task", "--quick", "--ckpt", "mine.pt"]):
        with pytest.raises(SystemExit, match="--quick makes its own tiny task and LM"):
            task.main(flags)


@pytest.mark.parametrize("line, message", [
    ("[1, 2]", 'not a row {"question": text, "answer": integer}'),
    ('{"question": "tom has 3 apples ."}', "not a row"),
    ('{"question": "tom has 3 apples .", "answer": "3"}', "not a row"),
    ('{"question": "tom has 3 apples .", "answer": true}', "not a row"),
    ('{"question": 3, "answer": 3}', "not a row"),
    ("not json", "not a row"),
    ("[" * 100_000, "not a row"),
    ('{"question": "tom has 3 pears and plums .", "answer": 3}', "words not in the task's vocabulary \\(pears and"),
    ('{"question": "tom has 3 apples .", "answer": 99}', "not in the task's vocabulary \\(99\\)"),
    ('{"question": "tom has 3 apples .", "answer": -1}', "not in the task's vocabulary \\(-1\\)"),
])
def test_load_problems_names_the_line_of_a_malformed_row(tmp_path, line, message):
    path = str(tmp_path)
    word_problems.prepare_task(path, max_number=10, train_problems=20, val_problems=10, eval_problems=5)
    rows = (tmp_path / "problems.jsonl").read_text().splitlines()
    rows[2] = line
    (tmp_path / "problems.jsonl").write_text("\n".join(rows) + "\n")
    with pytest.raises(ValueError, match=message) as error:
        task.load_problems(path)
    assert "problems.jsonl line 3: " in str(error.value) and "\n" not in str(error.value)
    assert "re-run data.py --task arithmetic" in str(error.value)


def test_an_interrupted_task_preparation_leaves_no_meta_json(tmp_path, monkeypatch):
    path = str(tmp_path)
    word_problems.prepare_task(path, max_number=10, train_problems=20, val_problems=10, eval_problems=5)
    assert len(task.load_problems(path)) == 5

    def ctrl_c(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(corpus, "write_split", ctrl_c)  # after the new tokenizer.json, before the new meta.json
    with pytest.raises(KeyboardInterrupt):
        word_problems.prepare_task(path, max_number=20, train_problems=20, val_problems=10, eval_problems=5)
    assert corpus.load_tokenizer(path).token_to_id("20") is not None  # the new vocabulary beside the old files
    with pytest.raises(ValueError, match="no meta.json .*interrupted"):
        corpus.load_meta(path)


def test_auto_temperature_on_answer_positions(lm_dir, tmp_path, capsys):
    common = ["--head", "minpplus", "--init_from", os.path.join(lm_dir, "ckpt.pt"), "--head_positions", "answer",
              "--device", "cpu", "--head_epochs", "10", "--batch_size", "8"]
    train.main([*common, "--out_dir", str(tmp_path / "auto"), "--temperature", "auto", "--head_t_grid", "0.5,2"])
    auto_out = capsys.readouterr().out
    with open(tmp_path / "auto" / "head.json") as f:
        record = json.load(f)
    assert "answer positions" in record["fitted_on"]
    search = {r["temperature"]: r for r in record["temperature_search"]}
    assert list(search) == [0.5, 1.0, 2.0] and record["temperature"] == min(search, key=lambda T: search[T]["fit_ce"])
    # each temperature's row is what a fixed --temperature run reports on the same answer positions
    train.main([*common, "--out_dir", str(tmp_path / "two"), "--temperature", "2"])
    fixed_out = capsys.readouterr().out
    with open(tmp_path / "two" / "head_metrics.jsonl") as f:
        fixed = json.loads(f.readlines()[-1])
    assert search[2.0]["head_ce"] == pytest.approx(fixed["head_ce"], rel=1e-5)
    assert search[2.0]["base_ce"] == pytest.approx(fixed["base_ce"], rel=1e-6)
    positions = [out.split("fitted on ")[1].split(" held-out")[0] for out in (auto_out, fixed_out)]
    assert positions[0] == positions[1] and "answer positions only" in positions[0]
