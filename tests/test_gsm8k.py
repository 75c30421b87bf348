"""GSM8K-format files and reading the final answer of hand-written replies."""
import json
from fractions import Fraction

import pytest

import data
import gsm8k
import task
from test_task import solve


@pytest.mark.parametrize("reply, value", [
    ("She has 3 + 5 = 8 apples.\n#### 8", 8),
    ("#### 8.00", 8), ("The answer is 8.0", 8), ("#### 1,000", 1000), ("so $1,234.50 in all", Fraction("1234.5")),
    ("first 12, then 7 left. #### -3", -3),
    ("#### 4 #### 5", 5), ("#### $12", 12),      # the last marker counts
    ("#### none\nbut 2 + 2 = 4", 4),              # a marker without a number: the last number
    ("3,4 and 5", 5), ("It is 8.", 8), ("x = 1,00", 0),  # "1,00" is no grouped number: 1 then 00
])
def test_extract_answer(reply, value):
    assert gsm8k.extract_answer(reply) == value


def test_malformed_replies_and_comparison():
    assert gsm8k.extract_answer("I do not know.") is None and gsm8k.extract_answer("#### ") is None
    assert not gsm8k.is_correct("no idea", 8)
    assert gsm8k.is_correct("so 8.00", 8) and gsm8k.is_correct("#### 8", "3 + 5 = 8\n#### 8")
    assert not gsm8k.is_correct("#### 80", 8) and not gsm8k.is_correct("#### 8.5", 8)
    with pytest.raises(ValueError, match="a reply is text"):
        gsm8k.extract_answer(8)


def test_data_py_writes_gsm8k_files(tmp_path, capsys):
    out = str(tmp_path / "g")
    data.main(["--task", "arithmetic", "--format", "gsm8k", "--out_dir", out, "--train_problems", "200",
               "--eval_problems", "30", "--max_number", "12", "--steps", "3"])
    assert "test.jsonl (30)" in capsys.readouterr().out
    rows = {name: [json.loads(line) for line in (tmp_path / "g" / f"{name}.jsonl").read_text().splitlines()]
            for name in ("train", "test")}
    assert len(rows["train"]) == 200 and len(rows["test"]) == 30
    assert not {r["question"] for r in rows["train"]} & {r["question"] for r in rows["test"]}
    originals = dict(task.generate_problems(200, 3, 12, seed=1))
    for row, (question, answer) in zip(rows["train"], originals.items()):
        assert row["question"][0].isupper() and row["question"].endswith("now?") and " ." not in row["question"]
        assert gsm8k.extract_answer(row["answer"]) == answer == solve(question)
        lines = row["answer"].splitlines()
        assert len(lines) == 3 + 2 and lines[-1] == f"#### {answer}"  # a line per step, then the answer
        for line in lines[1:-1]:  # "a + b = c <thing>." holds
            a, op, b, _, c = line.split()[:5]
            assert (int(a) + int(b) if op == "+" else int(a) - int(b)) == int(c)
