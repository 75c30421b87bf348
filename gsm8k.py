"""GSM8K-format files: word problems with worked answers, and a converted model's accuracy on them.

    python data.py --task arithmetic --format gsm8k --out_dir data/arith-gsm8k    # built-in problems: train/test.jsonl
    python evaluate.py --task data/arith-gsm8k/test.jsonl --ckpt out/smollm2/ckpt.pt   # accuracy of each sampler
    python data.py --input train.jsonl --format gsm8k --tokenizer out/smollm2 --out_dir data/gsm8k-head
    python train.py --head minpplus --init_from out/smollm2/ckpt.pt --data_dir data/gsm8k-head \\
        --head_positions answer --head_data train --block_size 512     # a head fitted on answer tokens

A file holds one JSON object per line, {"question": text, "answer": text}, the answer's final number
after "####" as in GSM8K (reasoning and <<48/2=24>> calculator notes may come before it). A model's
reply gives the number right after its last "####", else its last number; numbers compare as numbers
(8, 8.0 and 8.00 are equal, 1,000 is 1000, "$5." is 5); a reply without a number is malformed.
Prompts go through the model's chat template, or are --fewshot N solved problems of a --train file
as plain text ("Question: ...\\nAnswer: ..."). For the head, data.py writes each problem as its
prompt, its answer and the end of turn, and names the prompt's last token that occurs nowhere
earlier in it the answer marker, so that train.py --head_positions answer keeps the answer's
tokens (and the few cue tokens after the marker) through data.answer_mask.
"""
import argparse
import json
import os
import re
from fractions import Fraction

import numpy as np
import torch
from tqdm import tqdm

import data
import pretrained_tokenizer
import script
import task
from model import load_checkpoint, pick_device
from sample import generate, load_head

INSTRUCTION = "Solve it step by step, then write the final answer as a number after ####."
# a number: a sign only where no word or number comes just before it, an optional $, thousands
# grouped by commas (1,000) or plain digits, decimals; "8." ends a sentence, not a decimal
NUMBER_RE = re.compile(r"(?<![\w.])([-\u2212])?\$?(\d{1,3}(?:,\d{3})+(?!\d)|\d+)(\.\d+)?")


# ----------------------------------------------------------------------------
# Numbers and answers


def numbers(text):
    """Every number in text, in order, as exact Fractions."""
    for m in NUMBER_RE.finditer(text):
        value = Fraction(m[2].replace(",", "") + (m[3] or ""))
        yield -value if m[1] else value


def after_marker(text):
    """The number right after text's last "####" (blanks and a $ may come between), or None."""
    found = NUMBER_RE.match(text.rpartition("####")[2].lstrip()) if "####" in text else None
    return None if found is None else next(numbers(found[0]))


def extract_answer(reply):
    """The number a reply gives: the one right after its last "####", else its last number; None when
    it has none (a malformed reply)."""
    if not isinstance(reply, str):
        raise ValueError(f"a reply is text, not {type(reply).__name__}")
    found = after_marker(reply)
    if found is None:
        for found in numbers(reply):
            pass
    return found


def is_correct(reply, answer):
    """Whether the reply's number equals answer (a number, or a GSM8K answer text)."""
    given = extract_answer(reply)
    return given is not None and given == (extract_answer(answer) if isinstance(answer, str) else Fraction(answer))


def number_text(value):
    """A Fraction as JSON-friendly text: 72, -3.5."""
    return str(value.numerator) if value.denominator == 1 else repr(float(value))


def parse_row(line):
    """(question, answer text, final number) of one line, or a string saying what is wrong with it."""
    try:
        row = json.loads(line)
    except (json.JSONDecodeError, RecursionError):
        return "not JSON"
    if not isinstance(row, dict) or not all(isinstance(row.get(k), str) for k in ("question", "answer")):
        return 'not an object {"question": text, "answer": text}'
    if not row["question"].strip():
        return "the question is empty"
    if "####" not in row["answer"]:
        return 'the answer has no "####" before its final number'
    final = after_marker(row["answer"])
    if final is None:
        return 'no number right after the answer\'s last "####"'
    return row["question"], row["answer"], final


def read_problems(path):
    """[(question, answer text, final number)] of a GSM8K-format file (blank lines skipped); ValueError
    naming the file and line of the first bad one."""
    if not os.path.isfile(path):
        raise ValueError(f"no file at {path}: pass a GSM8K-format .jsonl file")
    problems = []
    try:
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if line.strip():
                    problem = parse_row(line)
                    if isinstance(problem, str):
                        raise ValueError(f"{path} line {number}: {problem} (GSM8K format: one "
                                         f'{{"question": ..., "answer": "... #### N"}} per line)')
                    problems.append(problem)
    except UnicodeDecodeError as e:
        raise ValueError(f"{path} is not UTF-8 ({e.reason} at byte {e.start}): convert it to UTF-8") from None
    if not problems:
        raise ValueError(f"{path} holds no problems: one JSON object per line with question and answer")
    return problems


# ----------------------------------------------------------------------------
# The built-in word problems in GSM8K format (data.py --task arithmetic --format gsm8k)


def step_pattern(template):
    """A task.py sentence template as a regular expression whose one group is the amount {k}."""
    parts = re.split(r"(\{\w\})", template)
    return re.compile("".join(r"(\d+)" if p == "{k}" else r"\S+" if p.startswith("{") else re.escape(p)
                              for p in parts))


STEPS = [(step_pattern(t), +1) for t in task.GAINS] + [(step_pattern(t), -1) for t in task.LOSSES]


def pretty(text):
    """task.py's lower-case words as sentences: names and sentence starts capitalised, no space before . or ?"""
    text = " ".join(w.capitalize() if w in task.NAMES else w for w in text.split())
    text = text.replace(" .", ".").replace(" ?", "?")
    return re.sub(r"(^|[.?] )([a-z])", lambda m: m[1] + m[2].upper(), text)


def worked_solution(question, answer):
    """(the question as sentences, a GSM8K answer: one line per step with its calculator note, then
    "#### answer") of a task.generate_problems problem; ValueError when its steps do not give answer."""
    sentences = [s.strip() for s in re.findall(r"[^.?]+[.?]", question)]
    first = re.fullmatch(r"(\S+) has (\d+) (\S+) \.", sentences[0]) if sentences else None
    if first is None or not question.endswith(f"? {task.ANSWER}"):
        raise ValueError(f"not a built-in word problem: {question[:60]!r}")
    name, count, thing = first[1].capitalize(), int(first[2]), first[3]
    lines = []
    for sentence in sentences[1:-1]:
        body = next(sentence[len(p):] for p in sorted(task.STEP_PREFIXES, key=len, reverse=True)
                    if sentence.startswith(p))
        found = [(int(m[1]), sign) for pattern, sign in STEPS for m in [pattern.fullmatch(body)] if m]
        if len(found) != 1:
            raise ValueError(f"cannot read the step {sentence!r} of a built-in word problem")
        (k, sign), op = found[0], "+" if found[0][1] > 0 else "-"
        lines.append(f"{pretty(sentence[:-2])}, so {name} has {count} {op} {k} = "
                     f"<<{count}{op}{k}={count + sign * k}>>{count + sign * k} {thing}.")
        count += sign * k
    if count != answer:
        raise ValueError(f"the steps of {question[:60]!r} give {count}, not its answer {answer}")
    return pretty(question[:-len(task.ANSWER)]), "\n".join(lines + [f"#### {answer}"])


def write_gsm8k(out_dir, steps=2, max_number=10, train_problems=1000, eval_problems=500, seed=0):
    """Write the built-in word problems into out_dir as train.jsonl and test.jsonl (no test question is
    a train question); returns {split: number of problems}."""
    if min(train_problems, eval_problems) < 1:
        raise ValueError("--train_problems and --eval_problems must be at least 1")
    train = task.generate_problems(train_problems, steps, max_number, seed + 1)
    seen = {q for q, _ in train}
    test = list(dict(p for p in task.generate_problems(2 * eval_problems, steps, max_number, seed + 3)
                     if p[0] not in seen).items())[:eval_problems]
    if len(test) < eval_problems:
        raise ValueError(f"only {len(test)} distinct test problems with --steps {steps} --max_number "
                         f"{max_number}: ask for fewer --eval_problems or make the task larger")
    script.make_out_dir(out_dir)
    for split, problems in (("train", train), ("test", test)):
        rows = [dict(zip(("question", "answer"), worked_solution(q, a))) for q, a in problems]
        script.write_text(os.path.join(out_dir, f"{split}.jsonl"), "".join(json.dumps(r) + "\n" for r in rows))
    return {"train": len(train), "test": len(test)}


# ----------------------------------------------------------------------------
# Prompts, and the head's data (data.py --input FILE.jsonl --format gsm8k --tokenizer DIR)


def prompt_texts(questions, meta, tokenizer, shots=(), instruction=INSTRUCTION):
    """Each question as the model's prompt: after len(shots) solved problems as plain text when shots
    are given, else in the model's chat template (with the instruction after it)."""
    if shots:
        solved = "".join(f"Question: {q}\nAnswer: {a}\n\n" for q, a, _ in shots)
        return [f"{solved}Question: {q}\nAnswer:" for q in questions]
    if not meta.get("chat_template"):
        raise ValueError("this model has no chat template: pass --fewshot N --train FILE.jsonl (solved problems)")
    return [pretrained_tokenizer.render_chat(meta, f"{q}\n{instruction}".strip(), tokenizer) for q in questions]


def answer_marker(prompts, end):
    """(the id at the latest position j of the first prompt that is not the end id and that every prompt
    has at the same distance from its end and nowhere before; how many tokens follow it): the answer
    marker data.answer_mask needs. ValueError when no token is one."""
    first = prompts[0]
    for j in range(len(first) - 1, -1, -1):
        tail = len(first) - j
        if first[j] != end and all(len(p) >= tail and p[-tail] == first[j] and first[j] not in p[:-tail]
                                   for p in prompts):
            return first[j], tail - 1
    raise ValueError("no token marks where the answer starts in every prompt: use a model with a chat template")


def head_examples(problems, tokenizer, meta, instruction=INSTRUCTION):
    """(token ids of each problem: prompt, answer, end of turn; the answer marker; the end-of-turn id; the
    number of answer-mask positions in each problem)."""
    end = (meta["stop_ids"] or [meta.get("eos_id")])[0]
    if end is None:
        raise ValueError("the model names no end of text or of turn in tokenizer_meta.json: convert it again")
    chat = bool(meta.get("chat_template"))
    texts = prompt_texts([q for q, _, _ in problems], meta, tokenizer, (), instruction) if chat else \
        [f"Question: {q}\nAnswer:" for q, _, _ in problems]
    prompts = [pretrained_tokenizer.encode(tokenizer, meta, t) for t in texts]
    answers = [tokenizer.encode(a if chat else " " + a, add_special_tokens=False).ids + [end] for _, a, _ in problems]
    marker, cue = answer_marker(prompts, end)
    if any(end in a[:-1] for a in answers):
        raise ValueError("an answer holds the model's end-of-turn token: remove it from the file")
    return [p + a for p, a in zip(prompts, answers)], marker, end, [cue + len(a) for a in answers]


def prepare_head_data(input_path, tokenizer_dir, out_dir, val_fraction=0.2, instruction=INSTRUCTION):
    """Tokenize a GSM8K-format file with a converted model's tokenizer into out_dir (train.bin, val.bin,
    tokenizer.json, meta.json with the answer marker): the last val_fraction of the problems is val.
    Every problem's answer-mask positions are checked against data.answer_mask."""
    problems = read_problems(input_path)
    tokenizer, tok_meta = pretrained_tokenizer.load(tokenizer_dir)
    if not 0 < val_fraction < 1 or len(problems) < 2:
        raise ValueError(f"--val_fraction {val_fraction} must lie in (0, 1), and {input_path} needs 2 problems")
    rows, marker, end, answered = head_examples(problems, tokenizer, tok_meta, instruction)
    vocab_size, cut = tok_meta["vocab_size"], min(len(rows) - 1, max(1, round(len(rows) * (1 - val_fraction))))
    script.make_out_dir(out_dir)
    data.unmark_complete(out_dir)
    script.write_atomically(os.path.join(out_dir, "tokenizer.json"), tokenizer.save)
    meta = {"kind": "text", "source": os.path.basename(input_path), "format": "gsm8k", "vocab_size": vocab_size,
            "eos_id": end, "answer_id": marker, "dtype": np.dtype(data.token_dtype(vocab_size)).name,
            "problems": {"train": cut, "val": len(rows) - cut}}
    for split, part, counts in (("train", rows[:cut], answered[:cut]), ("val", rows[cut:], answered[cut:])):
        ids = np.array([i for r in part for i in r], dtype=np.int64)
        expected = np.concatenate([np.arange(len(r)) >= len(r) - n for r, n in zip(part, counts)])
        if not np.array_equal(data.answer_mask(ids, marker, end), expected):
            raise ValueError(f"the chat template of {tokenizer_dir} puts its end of turn or the answer marker "
                             "where data.answer_mask would misread the answers: this model cannot be used here")
        data.write_split(os.path.join(out_dir, f"{split}.bin"), ids, vocab_size)
        meta |= data.token_stats(split, np.bincount(ids, minlength=vocab_size))
    return data.write_meta(out_dir, meta)


# ----------------------------------------------------------------------------
# The evaluation: accuracy of greedy decoding and of each sampler


def replies(model, prompts, budget, stop_ids, method, params, seed, batch_size):
    """Each prompt's new token ids (stop id included), decoded in batches of similar lengths."""
    device = next(model.parameters()).device
    generator = torch.Generator(device).manual_seed(seed)
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    out = [None] * len(prompts)
    for first in tqdm(range(0, len(order), batch_size), desc=method, dynamic_ncols=True, leave=False):
        rows = order[first:first + batch_size]
        new = generate(model, [prompts[i] for i in rows], budget, method=method, do_sample=method != "greedy",
                       eos_id=stop_ids, generator=generator, **params)
        for i, ids in zip(rows, new):
            out[i] = ids
    return out


def reply_text(tokenizer, ids, plain):
    """A reply's text, special tokens dropped; a plain-text (few-shot) reply ends where a next question would start."""
    text = tokenizer.decode(ids)
    return re.split(r"\n\s*\n|Question:", text)[0] if plain else text


def score(texts, finals):
    """(the number each reply gives or None, whether it is the right one)."""
    given = [extract_answer(t) for t in texts]
    return given, [g is not None and g == a for g, a in zip(given, finals)]


def samplers(args, model, device):
    """(label, method, params) of each sampler asked for, in args.samplers order."""
    T, out = args.temperature, []
    for name in args.samplers:
        if name == "greedy":
            out.append(("greedy", "greedy", {}))
        elif name == "temperature":
            out.append((f"temperature {T:g}", "temperature", {"temperature": T}))
        elif name in ("top_p", "min_p"):
            value = getattr(args, name)
            out.append((f"{name} {value:g}", name, {"temperature": T, name: value}))
        elif name == "minpplus":
            if not args.head:
                raise ValueError("--samplers minpplus needs --head HEAD.json (train.py --head minpplus)")
            head, _ = load_head(args.head, model, T)
            out.append((f"MinP+ {os.path.basename(args.head)}", "minpplus",
                        {"temperature": T, "head": head.to(device), "head_strength": args.head_strength}))
    if args.head and "minpplus" not in args.samplers:
        raise ValueError("--head given but minpplus is not in --samplers: add it, or drop --head")
    return out


def evaluate_file(args):
    """One row per sampler (accuracy, its 95 % Wilson interval, malformed share, reply lengths) and each reply."""
    device = pick_device(args.device)
    problems = read_problems(args.task)[:args.problems or None]
    shots = read_problems(args.train)[:args.fewshot] if args.fewshot else ()
    if len(shots) < args.fewshot:
        raise ValueError(f"--fewshot {args.fewshot} but {args.train} holds {len(shots)} problems: ask for fewer")
    model, ckpt = load_checkpoint(args.ckpt, device)
    if "converted_from" not in ckpt:
        raise ValueError(f"{args.ckpt} is not a converted model: GSM8K-format files need one from convert.py "
                         f"(its tokenizer and chat template travel beside ckpt.pt)")
    tokenizer, meta = pretrained_tokenizer.load(os.path.dirname(args.ckpt) or ".")
    texts = prompt_texts([q for q, _, _ in problems], meta, tokenizer, shots, args.instruction)
    prompts = [pretrained_tokenizer.encode(tokenizer, meta, t) for t in texts]
    if max(map(len, prompts)) + args.max_answer_tokens > model.config.max_seq_len:
        raise ValueError(f"the longest prompt ({max(map(len, prompts))} tokens) and --max_answer_tokens "
                         f"{args.max_answer_tokens} exceed the context {model.config.max_seq_len}: ask for fewer")
    stop_ids = list(meta["stop_ids"])
    if shots:  # a plain-text reply ends at its first blank line: stop at any token that holds one
        stop_ids += [i for i in range(tokenizer.get_vocab_size()) if "\n\n" in tokenizer.decode([i])]
    stop_ids = stop_ids or None
    rows, kept = [], []
    for label, method, params in samplers(args, model, device):
        ids = replies(model, prompts, args.max_answer_tokens, stop_ids, method, params, args.seed, args.batch_size)
        texts = [reply_text(tokenizer, r, bool(shots)) for r in ids]
        given, correct = score(texts, [a for _, _, a in problems])
        hits, n = sum(correct), len(problems)
        low, high = task.wilson_interval(hits, n)
        value = {k: v for k, v in params.items() if k != "head"}
        rows.append({"sampler": label, "method": method, **value, "accuracy": hits / n, "ci_low": low,
                     "ci_high": high, "correct": hits, "n": n, "malformed": sum(g is None for g in given) / n,
                     "mean_tokens": sum(map(len, ids)) / n,
                     "hit_budget": sum(len(r) == args.max_answer_tokens and r[-1] not in (stop_ids or [])
                                       for r in ids) / n})
        print(summary_line(rows[-1]), flush=True)
        kept += [{"sampler": label, "problem": i, "reply": t, "given": None if g is None else number_text(g),
                  "answer": number_text(problems[i][2]), "correct": c}
                 for i, (t, g, c) in enumerate(zip(texts, given, correct))]
    return rows, kept


def summary_line(row):
    return (f"{row['sampler']:<22} accuracy {row['accuracy']:6.1%} ({row['ci_low']:.1%}–{row['ci_high']:.1%}), "
            f"malformed {row['malformed']:.1%}, {row['n']} problems, {row['mean_tokens']:.0f} tokens a reply, "
            f"{row['hit_budget']:.0%} at the budget")


# ----------------------------------------------------------------------------
# Command lines: evaluate.py --task FILE.jsonl (main) and data.py --format gsm8k (data_main)


def is_task_file(argv):
    """Whether evaluate.py's --task names a GSM8K-format file (FILE.jsonl) rather than a task directory."""
    for i, a in enumerate(argv):
        value = a.split("=", 1)[1] if a.startswith("--task=") else argv[i + 1] if a == "--task" and i + 1 < len(argv) \
            else None
        if value is not None:
            return value.endswith(".jsonl") or os.path.isfile(value)
    return False


def main(argv=None):
    return script.run_script(run, argv)


def run(argv=None):
    parser = argparse.ArgumentParser(prog="evaluate.py --task FILE.jsonl", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", required=True, help="a GSM8K-format file: the problems to answer")
    parser.add_argument("--ckpt", required=True, help="a converted model's ckpt.pt (python convert.py)")
    parser.add_argument("--problems", type=int, default=0, help="the first N problems only; 0: all")
    parser.add_argument("--fewshot", type=int, default=0, help="N solved problems of --train as plain text, "
                        "not the chat template")
    parser.add_argument("--train", help="the GSM8K-format file --fewshot takes its examples from")
    parser.add_argument("--instruction", default=INSTRUCTION, help="put after each question in the chat template")
    parser.add_argument("--max_answer_tokens", type=int, default=256, help="the token budget of each reply")
    parser.add_argument("--samplers", nargs="+", default=["greedy", "temperature", "top_p", "min_p"],
                        choices=["greedy", "temperature", "top_p", "min_p", "minpplus"])
    parser.add_argument("--temperature", type=float, default=1.0, help="of every sampler but greedy")
    parser.add_argument("--top_p", type=float, default=0.9)
    parser.add_argument("--min_p", type=float, default=0.1)
    parser.add_argument("--head", help="MinP+ head JSON (train.py --head minpplus) for the minpplus sampler")
    parser.add_argument("--head_strength", type=float, default=1.0)
    parser.add_argument("--batch_size", type=int, default=32, help="replies decoded at once")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="auto: cuda when available, else cpu")
    parser.add_argument("--out_dir", help="where gsm8k_results.json and gsm8k_replies.jsonl go; default: beside --ckpt")
    args = parser.parse_args(argv)
    if args.head and "minpplus" not in args.samplers and args.samplers == parser.get_default("samplers"):
        args.samplers = args.samplers + ["minpplus"]
    if min(args.max_answer_tokens, args.batch_size) < 1 or min(args.problems, args.fewshot) < 0:
        raise ValueError("--max_answer_tokens and --batch_size must be at least 1, --problems and --fewshot >= 0")
    if bool(args.fewshot) != bool(args.train):
        raise ValueError("--fewshot N and --train FILE.jsonl go together: pass both or neither")
    if not args.temperature > 0:
        raise ValueError(f"--temperature {args.temperature} must be above 0 (greedy is its own sampler)")
    rows, kept = evaluate_file(args)
    out_dir = args.out_dir or os.path.dirname(args.ckpt) or "."
    script.make_out_dir(out_dir)
    prompting = f"{args.fewshot}-shot from {args.train}" if args.fewshot else "chat template"
    results = {"task": args.task, "ckpt": args.ckpt, "prompting": prompting, "instruction": args.instruction,
               "max_answer_tokens": args.max_answer_tokens, "seed": args.seed, "rows": rows}
    path = os.path.join(out_dir, "gsm8k_results.json")
    script.write_text(path, json.dumps(results, indent=1) + "\n")
    script.write_text(os.path.join(out_dir, "gsm8k_replies.jsonl"), "".join(json.dumps(r) + "\n" for r in kept))
    print(f"wrote {path} and gsm8k_replies.jsonl ({prompting}, budget {args.max_answer_tokens} tokens)")
    return results


def data_main(argv):
    """`python data.py ... --format gsm8k`: write the built-in problems (--task arithmetic) as GSM8K-format
    files, or tokenize one (--input FILE.jsonl) with a converted model's tokenizer for the head."""
    parser = argparse.ArgumentParser(prog="data.py --format gsm8k", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--format", choices=["gsm8k"], required=True)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--task", choices=["arithmetic"], help="write the built-in word problems as "
                        "train.jsonl and test.jsonl")
    source.add_argument("--input", help="a GSM8K-format file to tokenize for the head (needs --tokenizer)")
    parser.add_argument("--out_dir", required=True)
    parser.add_argument("--tokenizer", help="--input: a converted model's directory (python convert.py)")
    parser.add_argument("--val_fraction", type=float, default=0.2, help="--input: the last share of problems as val")
    parser.add_argument("--instruction", default=INSTRUCTION, help="--input: as evaluate.py puts after each question")
    parser.add_argument("--steps", type=int, default=2, help="--task: operations after the starting count")
    parser.add_argument("--max_number", type=int, default=10, help="--task: every count is in 0..max_number")
    parser.add_argument("--train_problems", type=int, default=1000, help="--task: problems in train.jsonl")
    parser.add_argument("--eval_problems", type=int, default=500, help="--task: problems in test.jsonl")
    parser.add_argument("--seed", type=int, default=0, help="--task")
    args = parser.parse_args(argv)
    if args.task:
        sizes = write_gsm8k(args.out_dir, args.steps, args.max_number, args.train_problems, args.eval_problems,
                              args.seed)
        print(f"wrote {args.out_dir}: train.jsonl ({sizes['train']:,} problems), test.jsonl ({sizes['test']:,})")
        return sizes
    if not args.tokenizer:
        raise ValueError("--input FILE.jsonl --format gsm8k needs --tokenizer DIR (a converted model's directory)")
    meta = prepare_head_data(args.input, args.tokenizer, args.out_dir, args.val_fraction, args.instruction)
    print(f"wrote {args.out_dir}: train {meta['train_tokens']:,} tokens ({meta['problems']['train']:,} problems), "
          f"val {meta['val_tokens']:,} ({meta['problems']['val']:,}); answer marker id {meta['answer_id']}, "
          f"end id {meta['eos_id']}")
    return meta


if __name__ == "__main__":
    main()
