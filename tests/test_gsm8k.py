"""GSM8K-format files: reading them, reading a number out of a reply, the built-in problems written in the
format, and the evaluation and head data of a tiny random model laid out as convert.py writes one."""
import itertools
import json
import re
from collections import Counter
from dataclasses import asdict
from fractions import Fraction

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

import corpus
import data
import evaluate
import gsm8k
import pretrained_tokenizer
import train
import word_problems
from model import ModelConfig, Transformer

CHATML = ("{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}"
          "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
PROBLEMS = [  # hand-written, GSM8K style: reasoning and calculator notes before "####"
    {"question": "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
                 "How many clips did Natalia sell altogether in April and May?",
     "answer": "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips.\n#### 72"},
    {"question": "A shop had 1,200 pens and sold 250. How many are left?", "answer": "1,200 - 250 = 950\n#### 950"},
    {"question": "The temperature was 3 degrees and fell by 5. What is it now?", "answer": "3 - 5 = -2\n#### -2"},
    {"question": "Half of 5 dollars is how much?", "answer": "5 / 2 = 2.5\n#### $2.50"},
]


def write_jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return str(path)


def one_line_error(main, argv, message):
    with pytest.raises(SystemExit, match=message) as error:
        main(argv)
    assert str(error.value).startswith("error: ") and "\n" not in str(error.value)


@pytest.mark.parametrize("reply, number", [
    ("There are 72 clips.", 72), ("She sold 48 + 24 = 72 clips.\n#### 72", 72), ("#### 8.00", 8),
    ("#### 8.0", 8), ("so it is 8", 8), ("The shop has 1,200 - 250 = 950 pens left.", 950), ("#### 1,000", 1000),
    ("It is -2 degrees.", -2), ("3 - 5 = -2", -2), ("He pays $2.50.", Fraction(5, 2)), ("The answer is 42.", 42),
    ("#### 12\nso the first guess of 7 was wrong", 12), ("The answer is \\boxed{17}", 17),
    ("Steps 1, 2, 3", 3), ("#### none\nbut maybe 9 or 10", 10), ("maybe 9 or 10", 10), ("Total: 10-4=6", 6),
    ("It costs $1,299.99", Fraction(129999, 100)),
    ("#### 4 #### 5", 5), ("#### $12", 12), ("#### The answer is 7, not 9", 9), ("x = 1,00", 0),
    ("I don't know.", None), ("", None), ("#### ", None), ("x2 and v3 are names", None),
])
def test_the_number_a_reply_gives(reply, number):
    assert word_problems.extract_answer(reply) == number


def test_numbers_compare_as_numbers_and_the_file_answer_reads_like_a_reply(tmp_path):
    same = ["8", "8.0", "8.00", "#### 8", "$8", "8."]
    assert {word_problems.extract_answer(r) for r in same} == {8}
    extract = word_problems.extract_answer
    assert extract("1,000") == extract("1000") != extract("1,0000")
    problems = word_problems.read_problems(write_jsonl(tmp_path / "p.jsonl", PROBLEMS))
    assert [p[2] for p in problems] == [72, 950, -2, Fraction(5, 2)]
    assert [p[0] for p in problems] == [p["question"] for p in PROBLEMS]
    replies = ["48 + 24 = 72 clips", "950.", "#### -2.0", "It is 2.5 dollars"]
    given, correct = gsm8k.score(replies, [p[2] for p in problems])
    assert correct == [True] * 4 and given[3] == Fraction(5, 2)
    assert gsm8k.score(["no idea", "#### 951"], [72, 950]) == ([None, 951], [False, False])
    assert word_problems.is_correct("so 8.00", 8) and word_problems.is_correct("#### 72", PROBLEMS[0]["answer"])
    assert not word_problems.is_correct("#### 8.5", 8) and not word_problems.is_correct("no idea", 8)
    with pytest.raises(ValueError, match="a reply is text"):
        word_problems.extract_answer(8)


@pytest.mark.parametrize("line, message", [
    ("{not json", "not JSON"), ("[1, 2]", "not an object"), ('{"question": "q"}', "not an object"),
    ('{"question": "q", "answer": 72}', "not an object"),
    ('{"question": " ", "answer": "#### 1"}', "the question is empty"),
    ('{"question": "q", "answer": "it is 72"}', 'no "####"'),
    ('{"question": "q", "answer": "72 ####"}', "no number right after"),
])
def test_a_bad_line_is_a_one_line_error_naming_file_and_line(tmp_path, line, message):
    path = write_jsonl(tmp_path / "bad.jsonl", [PROBLEMS[0], "", line])  # the blank line 2 is skipped
    with pytest.raises(ValueError, match=rf"bad\.jsonl line 3: .*{message}") as error:
        word_problems.read_problems(path)
    assert "\n" not in str(error.value)


def test_missing_empty_and_non_utf8_files_are_refused(tmp_path):
    with pytest.raises(ValueError, match="no file at"):
        word_problems.read_problems(str(tmp_path / "none.jsonl"))
    with pytest.raises(ValueError, match="holds no problems"):
        word_problems.read_problems(write_jsonl(tmp_path / "empty.jsonl", [""]))
    (tmp_path / "latin.jsonl").write_bytes(json.dumps(PROBLEMS[0]).encode()[:-2] + b'\xe9"}\n')
    with pytest.raises(ValueError, match="not UTF-8"):
        word_problems.read_problems(str(tmp_path / "latin.jsonl"))


PLUS, MINUS = {"finds", "buys", "gets"}, {"loses", "sells", "takes"}  # read as a person would, not from task.py


def solve(question):
    sentences = re.findall(r"[^.?]+[.?]", question)
    count = int(re.search(r"\d+", sentences[0])[0])
    for sentence in sentences[1:-1]:
        words = sentence.lower().split()
        words = [w for w in words if w not in ("then", "later", "after", "that")]
        amount = int(next(w for w in words if w.isdigit()))
        gains = words[1] in PLUS or words[1] == "gives" and words[0] not in ("he", "she")
        count += amount if gains else -amount
    return count


def test_builtin_problems_round_trip_through_the_gsm8k_format(tmp_path):
    out = tmp_path / "arith"
    data.main(["--task", "arithmetic", "--format", "gsm8k", "--out_dir", str(out), "--steps", "3",
               "--train_problems", "200", "--eval_problems", "60", "--seed", "4"])
    train_rows, test_rows = (word_problems.read_problems(str(out / f"{s}.jsonl")) for s in ("train", "test"))
    assert (len(train_rows), len(test_rows)) == (200, 60)
    builtin = word_problems.generate_problems(200, steps=3, seed=5)
    assert [final for _, _, final in train_rows] == [a for _, a in builtin]  # every answer parses back
    assert not {q for q, _, _ in train_rows} & {q for q, _, _ in test_rows}
    for question, answer, final in train_rows + test_rows:
        assert solve(question) == final
        assert question[0].isupper() and question.endswith("?") and " ." not in question
        notes = re.findall(r"<<(\d+)([+-])(\d+)=(\d+)>>", answer)
        assert len(notes) == 3 and answer.count("\n") == 3
        for a, op, b, result in notes:
            assert int(a) + (int(b) if op == "+" else -int(b)) == int(result)
        assert int(notes[-1][3]) == final
    with pytest.raises(ValueError, match="give 6, not its answer 7"):
        question = "tom has 3 apples . he finds 3 apples . how many apples does tom have now ? answer"
        word_problems.worked_solution(question, 7)


# ----------------------------------------------------------------------------
# End to end on a tiny random model laid out as convert.py writes one


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(directory with ckpt.pt, tokenizer.json and tokenizer_meta.json; GSM8K-format file of built-in problems)."""
    root = tmp_path_factory.mktemp("gsm8k")
    files = root / "arith"
    word_problems.write_gsm8k(str(files), train_problems=40, eval_problems=12)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator([(files / "train.jsonl").read_text(), "<|im_start|>assistant\n" * 50], trainer=trainer)
    model_dir = root / "model"
    model_dir.mkdir()
    tok.save(str(model_dir / "tokenizer.json"))
    V = tok.get_vocab_size()
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=V, dim=32, n_layers=2, n_heads=4, n_kv_heads=2, max_seq_len=512)
    torch.save({"model": Transformer(config).state_dict(), "model_config": asdict(config), "step": None,
                "converted_from": {"source": "tiny", "format": "test", "architecture": "llama"}},
               model_dir / "ckpt.pt")
    end = tok.token_to_id("<|im_end|>")
    meta = pretrained_tokenizer.special_tokens(V, tok.token_to_id("<|im_start|>"), end, [end], False, CHATML)
    (model_dir / pretrained_tokenizer.META_FILE).write_text(json.dumps(meta))
    return model_dir, files


def test_evaluation_end_to_end_on_a_tiny_converted_model(tiny, tmp_path, capsys):
    model_dir, files = tiny
    ckpt, test_file = str(model_dir / "ckpt.pt"), str(files / "test.jsonl")
    common = ["--task", test_file, "--ckpt", ckpt, "--max_answer_tokens", "12", "--device", "cpu"]
    evaluate.main(common + ["--batch_size", "5", "--out_dir", str(tmp_path / "a")])
    printed = capsys.readouterr().out
    results = json.loads((tmp_path / "a" / "gsm8k_results.json").read_text())
    replies = [json.loads(line) for line in (tmp_path / "a" / "gsm8k_replies.jsonl").read_text().splitlines()]
    finals = [f for _, _, f in word_problems.read_problems(test_file)]
    assert [r["sampler"] for r in results["rows"]] == ["greedy", "temperature 1", "top_p 0.9", "min_p 0.1"]
    for row in results["rows"]:
        mine = [r for r in replies if r["sampler"] == row["sampler"]]
        assert [r["problem"] for r in mine] == list(range(12)) and row["n"] == 12
        for r in mine:
            given = word_problems.extract_answer(r["reply"])
            assert r["given"] == (None if given is None else word_problems.number_text(given))
            final = finals[r["problem"]]
            assert r["correct"] == (given == final) and r["answer"] == word_problems.number_text(final)
        assert row["correct"] == sum(r["correct"] for r in mine) and row["accuracy"] == row["correct"] / 12
        assert row["malformed"] == sum(r["given"] is None for r in mine) / 12
        assert row["ci_low"] <= row["accuracy"] <= row["ci_high"] and 0 < row["mean_tokens"] <= 12
        assert row["sampler"] in printed
    # greedy is the same whatever the batches, and each reply belongs to its own problem
    evaluate.main(common + ["--batch_size", "1", "--samplers", "greedy", "--problems", "4",
                            "--out_dir", str(tmp_path / "b")])
    one_by_one = [json.loads(line) for line in (tmp_path / "b" / "gsm8k_replies.jsonl").read_text().splitlines()]
    assert [r["reply"] for r in one_by_one] == [r["reply"] for r in replies if r["sampler"] == "greedy"][:4]
    evaluate.main(common + ["--fewshot", "2", "--train", str(files / "train.jsonl"), "--samplers", "greedy",
                            "--problems", "3", "--out_dir", str(tmp_path / "c")])
    assert json.loads((tmp_path / "c" / "gsm8k_results.json").read_text())["prompting"].startswith("2-shot")
    one_line_error(evaluate.main, common + ["--fewshot", "2"], "--fewshot N and --train FILE.jsonl go together")
    one_line_error(evaluate.main, common + ["--fewshot", "41", "--train", str(files / "train.jsonl")],
                   "--fewshot 41 but .* holds 40 problems")
    one_line_error(evaluate.main, ["--task", str(files / "none.jsonl"), "--ckpt", ckpt], "no file at")


def test_head_fitted_on_answer_tokens_and_sampled(tiny, tmp_path, capsys):
    model_dir, files = tiny
    head_data, head_dir = tmp_path / "data", tmp_path / "head"
    data.main(["--input", str(files / "train.jsonl"), "--format", "gsm8k", "--tokenizer", str(model_dir),
               "--out_dir", str(head_data)])
    meta = corpus.load_meta(str(head_data))
    tok, _ = pretrained_tokenizer.load(str(model_dir))
    ids = np.fromfile(head_data / "val.bin", dtype=meta["dtype"])
    answers = tok.decode(ids[corpus.answer_mask(ids, meta["answer_id"], meta["eos_id"])].tolist())
    rows = word_problems.read_problems(str(files / "train.jsonl"))[meta["problems"]["train"]:]
    cue = answers[:answers.index(rows[0][1])]  # the end of the assistant's cue, after the marker
    assert "assistant\n".endswith(cue) and cue.endswith("\n")
    assert answers == "".join(cue + a for _, a, _ in rows)  # the answers (and that cue), nothing else
    train.main(["--head", "minpplus", "--init_from", str(model_dir / "ckpt.pt"), "--data_dir", str(head_data),
                "--out_dir", str(head_dir), "--head_positions", "answer", "--head_data", "train", "--block_size", "64",
                "--batch_size", "4", "--head_tokens", "1024", "--head_val_tokens", "256", "--head_epochs", "5",
                "--device", "cpu"])
    assert "answer positions only" in capsys.readouterr().out
    evaluate.main(["--task", str(files / "test.jsonl"), "--ckpt", str(model_dir / "ckpt.pt"), "--head",
                   str(head_dir / "head.json"), "--problems", "4", "--max_answer_tokens", "6", "--device", "cpu",
                   "--out_dir", str(tmp_path / "e")])
    rows = json.loads((tmp_path / "e" / "gsm8k_results.json").read_text())["rows"]
    assert rows[-1]["sampler"] == "MinP+ head.json" and rows[-1]["head_strength"] == 1.0


def brute_force(draws, answer, k):
    """pass@k and maj@k of one problem by enumerating every k-subset of its draws (ties: a fair share)."""
    passes, wins, subsets = 0.0, 0.0, list(itertools.combinations(draws, k))
    for subset in subsets:
        passes += answer in subset
        votes = Counter(g for g in subset if g is not None)
        top = max(votes.values(), default=0)
        leaders = [g for g, v in votes.items() if v == top]
        wins += (answer in leaders) / len(leaders) if leaders else 0.0  # all malformed: no winner
    return passes / len(subsets), wins / len(subsets)


def test_pass_and_maj_from_draws_equal_every_subset_counted():
    rng = np.random.default_rng(0)
    finals = [Fraction(3), Fraction(7), Fraction(1, 2), Fraction(0)]
    outcomes = [Fraction(3), Fraction(7), Fraction(1, 2), Fraction(0), Fraction(5), None]
    given = [[outcomes[i] for i in rng.choice(len(outcomes), 8, p=[.3, .2, .1, .1, .2, .1])] for _ in finals]
    given[3] = [None] * 8  # every draw malformed: no vote, no pass
    scores = gsm8k.draw_scores(given, finals, 8, 8)
    assert sorted(scores) == ["maj@4", "pass@1", "pass@2", "pass@4"]  # 2k <= 8 draws
    for i, (draws, answer) in enumerate(zip(given, finals)):
        for k in (1, 2, 4):
            assert scores[f"pass@{k}"][i] == pytest.approx(brute_force(draws, answer, k)[0], abs=1e-12)
        assert scores["maj@4"][i] == pytest.approx(brute_force(draws, answer, 4)[1], abs=1e-12)
    assert scores["pass@4"][3] == scores["maj@4"][3] == 0
    greedy = gsm8k.draw_scores([[Fraction(3)], [None], [Fraction(2)], [Fraction(0)]], finals, 1, 8)
    assert all(list(v) == [1, 0, 0, 1] for v in greedy.values())  # greedy's one answer is every draw's


def test_draws_give_pass_at_k_and_maj_at_k_rows_matching_their_replies(tiny, tmp_path, capsys):
    model_dir, files = tiny
    evaluate.main(["--task", str(files / "test.jsonl"), "--ckpt", str(model_dir / "ckpt.pt"), "--problems", "3",
                   "--max_answer_tokens", "6", "--draws", "8", "--samplers", "greedy", "temperature",
                   "--temperature", "3", "--device", "cpu", "--out_dir", str(tmp_path)])
    assert "pass@4" in capsys.readouterr().out
    results = json.loads((tmp_path / "gsm8k_results.json").read_text())
    replies = [json.loads(line) for line in (tmp_path / "gsm8k_replies.jsonl").read_text().splitlines()]
    finals = [f for _, _, f in word_problems.read_problems(str(files / "test.jsonl"))][:3]
    greedy, sampled = results["rows"]
    assert greedy["draws"] == 1 and sampled["draws"] == 8 and results["draws"] == 8
    for row in results["rows"]:
        mine = [r for r in replies if r["sampler"] == row["sampler"]]
        assert [(r["problem"], r["draw"]) for r in mine] == [(p, d) for p in range(3) for d in range(row["draws"])]
        given = [[None if r["given"] is None else Fraction(r["given"]) for r in mine if r["problem"] == p]
                 for p in range(3)]
        expected = gsm8k.draw_scores(given, finals, row["draws"], 8)
        assert {k for k in row if k.startswith(("pass@", "maj@")) and not k.endswith("_ci")} == set(expected)
        for name, values in expected.items():
            low, high = row[name + "_ci"]
            assert row[name] == pytest.approx(values.mean()) and low <= row[name] <= high
        assert row["pass@1"] == pytest.approx(row["accuracy"])
    assert greedy["pass@4"] == greedy["maj@4"] == greedy["accuracy"]
    one_line_error(evaluate.main, ["--task", str(files / "test.jsonl"), "--ckpt", str(model_dir / "ckpt.pt"),
                                   "--draws", "0"], "--draws must be at least 1")
