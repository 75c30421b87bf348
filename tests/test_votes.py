"""The task's answer chances: by hand, and against answers actually sampled from a small LM."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import corpus
import passk
import task
import train
import votes
import word_problems
from model import load_checkpoint
from sample import generate


def test_answer_chances_by_hand():
    # vocabulary: 0 <eos>, 1 "x", 2 "1", 3 "2", 4 "3"; one problem whose answer is "2" (id 3)
    first = torch.log(torch.tensor([[0.1, 0.1, 0.2, 0.4, 0.2]]))
    after = torch.log(torch.tensor([[0.5, 0.5, 1e-9, 1e-9, 1e-9], [0.9, 0.1, 1e-9, 1e-9, 1e-9],
                                    [1.0, 1e-9, 1e-9, 1e-9, 1e-9]]))
    out = SimpleNamespace(first=first, cands=torch.tensor([[3, 2, 4]]), second=after[None], right=torch.tensor([3]),
                          eos_id=0)
    q_right, q_others = votes.answer_chances(out, "temperature", 1.0)
    assert q_right == pytest.approx([0.4 * 0.5]) and q_others[0] == pytest.approx([0.2 * 0.9, 0.2 * 1.0])
    q_right, q_others = votes.answer_chances(out, "greedy", 0.0)  # "2" then argmax: <eos> and "x" tie, <eos> wins
    assert q_right == pytest.approx([1.0]) and q_others[0] == pytest.approx([0.0, 0.0])
    scores = votes.per_problem(out, "min_p", 1.0, min_p=0.6)  # keeps "2" alone, then <eos> and "x" evenly
    assert scores["pass@1"] == pytest.approx([0.5]) and scores["pass@2"] == pytest.approx([0.75])
    assert scores["maj@4"] == pytest.approx([1 - 0.5 ** 4])  # its only rival is a malformed reply


def test_exact_chances_agree_with_sampled_answers(tmp_path):
    data_dir, out_dir = str(tmp_path / "task"), str(tmp_path / "lm")
    word_problems.prepare_task(data_dir, max_number=6, train_problems=300, val_problems=20, eval_problems=24)
    train.main(["--data_dir", data_dir, "--out_dir", out_dir, "--dim", "32", "--n_layers", "1", "--n_heads", "4",
                "--n_kv_heads", "2", "--max_seq_len", "32", "--batch_size", "8", "--max_steps", "30",
                "--eval_interval", "30", "--eval_batches", "1", "--device", "cpu"])
    model, _ = load_checkpoint(f"{out_dir}/ckpt.pt", "cpu")
    token_id = corpus.load_tokenizer(data_dir).get_vocab()
    problems = task.Problems(task.load_problems(data_dir, token_id), token_id)
    number_of = {i: int(w) for w, i in token_id.items() if w.isdigit()}
    out = votes.answer_outcomes(model, problems, set(number_of), 0)
    assert (out.cands == out.right[:, None]).any(1).all() and out.cands.shape[1] == len(number_of)
    exact = votes.per_problem(out, "temperature", 1.5, ks=(1, 4), maj_ks=(4,))
    n = 64  # draws per problem
    replies = generate(model, [p for p in problems.prompts for _ in range(n)], task.ANSWER_BUDGET, eos_id=0,
                       temperature=1.5, generator=torch.Generator().manual_seed(0))
    given = np.array([task.read_answer(r, number_of, 0) for r in replies], dtype=object).reshape(len(problems), n)
    right = np.array([(g == a).sum() for g, a in zip(given, problems.answers)])
    others = np.array([[sum(x == v for x in g) for v in range(7) if v != a] for g, a in zip(given, problems.answers)])
    assert right.mean() / n == pytest.approx(exact["pass@1"].mean(), abs=0.03)  # 1,536 draws: SD under 0.013
    assert passk.pass_at_k_from_draws(n, right, 4).mean() == pytest.approx(exact["pass@4"].mean(), abs=0.05)
    assert passk.maj_at_k_from_draws(right, others, np.full(len(right), n), 4).mean() == pytest.approx(
        exact["maj@4"].mean(), abs=0.05)
