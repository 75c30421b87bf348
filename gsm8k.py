"""GSM8K-format files: the built-in word problems written as GSM8K writes its own, and reading a
model's final answer from its reply.

    python data.py --task arithmetic --format gsm8k --out_dir data/arith-gsm8k   # train.jsonl, test.jsonl

One JSON object per line, {"question": text, "answer": worked solution ending "#### N"}, as in
GSM8K. A reply's answer is the number right after its last "####", else the last number in it; numbers
compare as numbers (8, 8.0 and 8.00 are equal; the commas of 1,000 are ignored); a reply with no
number is malformed (None).
"""
import json
import os
import re
from fractions import Fraction

import numpy as np

import data
import task

NUMBER = re.compile(r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?")  # 1,000 is one number; "3,4" two


def parse_number(text):
    """The value of a number as written (commas of thousands dropped) as an exact Fraction."""
    return Fraction(text.replace(",", ""))


def extract_answer(reply):
    """The final answer of a reply as a Fraction: the number right after its last '####' (a '$' allowed),
    else the last number anywhere; None when there is none (a malformed reply)."""
    if not isinstance(reply, str):
        raise ValueError(f"a reply is text, not {type(reply).__name__}")
    head, marker, tail = reply.rpartition("####")
    if marker:
        found = NUMBER.match(tail.strip().lstrip("$").lstrip())
        if found:
            return parse_number(found.group())
    numbers = NUMBER.findall(reply)
    return parse_number(numbers[-1]) if numbers else None


def is_correct(reply, answer):
    """Whether the reply's final answer equals answer (a number, or text such as a GSM8K answer field)."""
    given = extract_answer(reply)
    expected = extract_answer(answer) if isinstance(answer, str) else Fraction(answer)
    return given is not None and given == expected


def prose(words):
    """A task question in sentence case ("tom has 3 apples . how many ... ? answer" -> "Tom has 3 apples. How ...?")."""
    words = [w for w in words.split() if w != task.ANSWER]
    out, start = [], True
    for w in words:
        if w in (".", "?"):
            out[-1] += w
            start = True
            continue
        out.append(w.capitalize() if start or w in task.NAMES else w)
        start = False
    return " ".join(out)


def solution(start, amounts, thing):
    """GSM8K's worked answer: one line per step with its arithmetic, then '#### N'."""
    lines, count = [f"It starts with {start} {thing}."], start
    for k in amounts:
        new = count + k
        lines.append(f"{count} {'+' if k > 0 else '-'} {abs(k)} = {new} {thing}.")
        count = new
    return "\n".join(lines + [f"#### {count}"])


def gsm8k_rows(n, steps, max_number, seed):
    """n rows {"question", "answer"} of the problems task.generate_problems(n, steps, max_number, seed) draws."""
    problems = task.generate_problems(n, steps, max_number, seed)
    start, amounts, answers = task.draw_counts(n, steps, max_number, np.random.default_rng(seed))  # its first draws
    rows = []
    for (question, answer), s, a, final in zip(problems, start, amounts, answers):
        if final != answer:
            raise ValueError("the task's generator changed: gsm8k.py no longer replays its counts")
        thing = question.split()[3]  # "<name> has <n> <thing> ."
        rows.append({"question": prose(question), "answer": solution(int(s), [int(k) for k in a], thing)})
    return rows


def write_gsm8k(out_dir, steps=2, max_number=10, train_problems=100_000, eval_problems=3_000, seed=0):
    """train.jsonl and test.jsonl in out_dir: the task's train problems and held-out problems (none a
    question of train), each as GSM8K writes a problem. Returns {"train": count, "test": count}."""
    if min(train_problems, eval_problems) < 1:
        raise ValueError("--train_problems and --eval_problems must be at least 1")
    train = gsm8k_rows(train_problems, steps, max_number, seed + 1)
    seen = {r["question"] for r in train}
    test = list({r["question"]: r for r in gsm8k_rows(2 * eval_problems, steps, max_number, seed + 3)
                 if r["question"] not in seen}.values())[:eval_problems]
    if len(test) < eval_problems:
        raise ValueError(f"only {len(test)} distinct held-out problems with --steps {steps} --max_number "
                         f"{max_number}: ask for fewer --eval_problems or make the task larger")
    data.make_out_dir(out_dir)
    for name, rows in (("train", train), ("test", test)):
        data.write_text(os.path.join(out_dir, f"{name}.jsonl"), "".join(json.dumps(r) + "\n" for r in rows))
    return {"train": len(train), "test": len(test)}
