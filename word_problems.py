"""Word problems: the built-in generator, and the GSM8K format.

    python data.py --task arithmetic --out_dir data/arith                       # the task's corpus (task_main)
    python data.py --task arithmetic --format gsm8k --out_dir data/arith-gsm8k  # as GSM8K-format files
    python data.py --input train.jsonl --format gsm8k --tokenizer out/smollm2 --out_dir data/gsm8k-head

The built-in problems are a few steps of small-number arithmetic about a named person and one kind
of thing, in plain words, ending with the answer marker, the answer and <eos>:

    tom has 3 apples . anna gives him 5 apples . then he loses 2 apples .
    how many apples does tom have now ? answer 6 <eos>

Numbers are single tokens ("0" .. max_number) and every running count stays in that range, so the
answer is one token. prepare_task writes them as a data directory with a word-level tokenizer and
held-out problems.jsonl (task.py evaluates a model on those).

A GSM8K-format file holds one JSON object per line, {"question": text, "answer": text}, the answer's
final number after "####" (reasoning and <<48/2=24>> calculator notes may come before it). A reply
gives the number right after its last "####", else its last number; numbers compare as numbers (8,
8.0 and 8.00 are equal, 1,000 is 1000, "$5." is 5); a reply without a number is malformed. Prompts
go through the model's chat template, or are few-shot solved problems as plain text ("Question:
...\nAnswer: ..."). For the head, prepare_head_data writes each problem as its prompt, its answer
and the end of turn, and names the prompt's last token that occurs nowhere earlier in it the answer
marker, so that train.py --head_positions answer keeps the answer's tokens (and the few cue tokens
after the marker) through corpus.answer_mask. gsm8k.py evaluates a converted model on such files.
"""
import argparse
import json
import os
import re
from fractions import Fraction

import numpy as np

import corpus
import pretrained_tokenizer
import script
from synthetic import EOS, UNK


# ----------------------------------------------------------------------------
# The built-in word problems

ANSWER = "answer"  # the marker: the tokens after it, up to and including <eos>, are the answer
NAMES = {"tom": "he", "ben": "he", "sam": "he", "max": "he", "anna": "she", "lily": "she", "mia": "she", "zoe": "she"}
OBJECT_PRONOUN = {"he": "him", "she": "her"}
THINGS = "apples pens coins marbles cards eggs books shells stickers cookies".split()
# one step's sentences: {s} the subject's pronoun, {o} its object form, {n} another name, {k} the amount, {t} the thing
GAINS = ["{n} gives {o} {k} {t} .", "{s} finds {k} {t} .", "{s} buys {k} more {t} .", "{s} gets {k} {t} from {n} ."]
LOSSES = ["{s} gives {k} {t} to {n} .", "{s} loses {k} {t} .", "{s} sells {k} {t} .", "{n} takes {k} {t} from {o} ."]
STEP_PREFIXES = ["", "then ", "later ", "after that "]
MAX_STEPS, MAX_NUMBER = 10, 999  # bounds that keep a problem within a small model's context and vocabulary


def vocabulary(max_number):
    """<eos> (id 0), <unk> (id 1), then every word the problems use, sorted: numbers are words too."""
    words = {ANSWER, "how", "many", "does", "have", "now", "?", "has", "."} | set(NAMES) | set(THINGS)
    words |= set(NAMES.values()) | set(OBJECT_PRONOUN.values())
    for template in GAINS + LOSSES + STEP_PREFIXES:
        words |= {w for w in template.split() if not w.startswith("{")}
    return [EOS, UNK] + sorted(words | {str(i) for i in range(max_number + 1)})


def draw_counts(n, steps, max_number, rng):
    """Start counts (n,), signed amounts (n, steps) and answers (n,): the count stays in [0, max_number].

    Each step gains or loses 1 or more at random, a gain when the count is 0, a loss at max_number."""
    count = rng.integers(0, max_number + 1, size=n)
    start, amounts = count.copy(), np.zeros((n, steps), dtype=np.int64)
    for step in range(steps):
        gain = np.where(count == 0, True, np.where(count == max_number, False, rng.random(n) < 0.5))
        room = np.where(gain, max_number - count, count)  # the most this step can add or take
        amount = 1 + (rng.random(n) * room).astype(np.int64)  # uniform in 1..room
        amounts[:, step] = np.where(gain, amount, -amount)
        count = count + amounts[:, step]
    return start, amounts, count


def generate_problems(n, steps=2, max_number=10, seed=0):
    """n problems as (question text ending with the answer marker, answer), deterministic in seed."""
    if not (1 <= steps <= MAX_STEPS and 2 <= max_number <= MAX_NUMBER):
        raise ValueError(f"steps={steps}, max_number={max_number}: need 1 <= --steps <= {MAX_STEPS} and "
                         f"2 <= --max_number <= {MAX_NUMBER}")
    rng = np.random.default_rng(seed)
    start, amounts, answers = draw_counts(n, steps, max_number, rng)
    names = list(NAMES)
    who = rng.integers(0, len(names), size=n)
    others = (who[:, None] + rng.integers(1, len(names), size=(n, steps))) % len(names)  # never the subject
    things = rng.integers(0, len(THINGS), size=n)
    templates = rng.integers(0, len(GAINS), size=(n, steps))
    prefixes = rng.integers(0, len(STEP_PREFIXES), size=(n, steps))
    problems = []
    for i in range(n):
        name, thing = names[who[i]], THINGS[things[i]]
        s = NAMES[name]
        sentences = [f"{name} has {start[i]} {thing} ."]
        for j, k in enumerate(amounts[i]):
            template = (GAINS if k > 0 else LOSSES)[templates[i, j]]
            sentence = template.format(s=s, o=OBJECT_PRONOUN[s], n=names[others[i, j]], k=abs(k), t=thing)
            sentences.append((STEP_PREFIXES[prefixes[i, j]] if j else "") + sentence)
        sentences.append(f"how many {thing} does {name} have now ? {ANSWER}")
        problems.append((" ".join(sentences), int(answers[i])))
    return problems


def encode(text, token_id):
    return [token_id[w] for w in text.split()]


def problem_tokens(problems, token_id):
    """Whole examples, each `question answer N <eos>`, after one leading <eos> (as data.py's corpora)."""
    ids = [token_id[EOS]]
    for question, answer in problems:
        ids += encode(question, token_id) + [token_id[str(answer)], token_id[EOS]]
    return ids


def prepare_task(out_dir, steps=2, max_number=10, train_problems=100_000, val_problems=10_000,
                 eval_problems=3_000, seed=0):
    """Write the arithmetic task into out_dir: tokenizer.json, train.bin, val.bin, meta.json (as
    data.py writes them) and problems.jsonl (held-out questions with their answers, none of them
    a question of train or val)."""
    if min(train_problems, val_problems, eval_problems) < 1:
        raise ValueError("--train_problems, --val_problems and --eval_problems must be at least 1")
    vocab = vocabulary(max_number)
    token_id = {w: i for i, w in enumerate(vocab)}
    splits = {"train": generate_problems(train_problems, steps, max_number, seed + 1),
              "val": generate_problems(val_problems, steps, max_number, seed + 2)}
    seen = {question for problems in splits.values() for question, _ in problems}
    held_out = [p for p in generate_problems(2 * eval_problems, steps, max_number, seed + 3) if p[0] not in seen]
    held_out = list(dict(held_out).items())[:eval_problems]  # distinct questions too
    if len(held_out) < eval_problems:
        raise ValueError(f"only {len(held_out)} distinct held-out problems with --steps {steps} --max_number "
                         f"{max_number}: ask for fewer --eval_problems or make the task larger")
    script.make_out_dir(out_dir)
    corpus.unmark_complete(out_dir)
    script.write_atomically(os.path.join(out_dir, "tokenizer.json"), corpus.word_tokenizer(vocab).save)
    meta = {"kind": "task", "task": "arithmetic", "seed": seed, "steps": steps, "max_number": max_number,
            "vocab_size": len(vocab), "eos_id": token_id[EOS], "answer_id": token_id[ANSWER],
            "dtype": np.dtype(corpus.token_dtype(len(vocab))).name,
            "problems": {"train": train_problems, "val": val_problems, "held_out": len(held_out)}}
    for split, problems in splits.items():
        ids = problem_tokens(problems, token_id)
        corpus.write_split(os.path.join(out_dir, f"{split}.bin"), ids, len(vocab))
        meta |= corpus.token_stats(split, np.bincount(ids, minlength=len(vocab)))  # start-up then scans nothing
    lines = [json.dumps({"question": q, "answer": a}) for q, a in held_out]
    script.write_text(os.path.join(out_dir, "problems.jsonl"), "\n".join(lines) + "\n")
    corpus.write_meta(out_dir, meta)
    return meta


# ----------------------------------------------------------------------------
# GSM8K-format files: numbers, answers, the built-in problems written so, prompts, the head's data

INSTRUCTION = "Solve it step by step, then write the final answer as a number after ####."
# a number: a sign only where no word or number comes just before it, an optional $, thousands
# grouped by commas (1,000) or plain digits, decimals; "8." ends a sentence, not a decimal
NUMBER_RE = re.compile(r"(?<![\w.])([-\u2212])?\$?(\d{1,3}(?:,\d{3})+(?!\d)|\d+)(\.\d+)?")


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


def step_pattern(template):
    """A sentence template as a regular expression whose one group is the amount {k}."""
    parts = re.split(r"(\{\w\})", template)
    return re.compile("".join(r"(\d+)" if p == "{k}" else r"\S+" if p.startswith("{") else re.escape(p)
                              for p in parts))


STEPS = [(step_pattern(t), +1) for t in GAINS] + [(step_pattern(t), -1) for t in LOSSES]


def pretty(text):
    """The generator's lower-case words as sentences: names and sentence starts capitalised, no space before . or ?"""
    text = " ".join(w.capitalize() if w in NAMES else w for w in text.split())
    text = text.replace(" .", ".").replace(" ?", "?")
    return re.sub(r"(^|[.?] )([a-z])", lambda m: m[1] + m[2].upper(), text)


def worked_solution(question, answer):
    """(the question as sentences, a GSM8K answer: one line per step with its calculator note, then
    "#### answer") of a generate_problems problem; ValueError when its steps do not give answer."""
    sentences = [s.strip() for s in re.findall(r"[^.?]+[.?]", question)]
    first = re.fullmatch(r"(\S+) has (\d+) (\S+) \.", sentences[0]) if sentences else None
    if first is None or not question.endswith(f"? {ANSWER}"):
        raise ValueError(f"not a built-in word problem: {question[:60]!r}")
    name, count, thing = first[1].capitalize(), int(first[2]), first[3]
    lines = []
    for sentence in sentences[1:-1]:
        body = next(sentence[len(p):] for p in sorted(STEP_PREFIXES, key=len, reverse=True)
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
    return pretty(question[:-len(ANSWER)]), "\n".join(lines + [f"#### {answer}"])


def write_gsm8k(out_dir, steps=2, max_number=10, train_problems=1000, eval_problems=500, seed=0):
    """Write the built-in word problems into out_dir as train.jsonl and test.jsonl (no test question is
    a train question); returns {split: number of problems}."""
    if min(train_problems, eval_problems) < 1:
        raise ValueError("--train_problems and --eval_problems must be at least 1")
    train = generate_problems(train_problems, steps, max_number, seed + 1)
    seen = {q for q, _ in train}
    test = list(dict(p for p in generate_problems(2 * eval_problems, steps, max_number, seed + 3)
                     if p[0] not in seen).items())[:eval_problems]
    if len(test) < eval_problems:
        raise ValueError(f"only {len(test)} distinct test problems with --steps {steps} --max_number "
                         f"{max_number}: ask for fewer --eval_problems or make the task larger")
    script.make_out_dir(out_dir)
    for split, problems in (("train", train), ("test", test)):
        rows = [dict(zip(("question", "answer"), worked_solution(q, a))) for q, a in problems]
        script.write_text(os.path.join(out_dir, f"{split}.jsonl"), "".join(json.dumps(r) + "\n" for r in rows))
    return {"train": len(train), "test": len(test)}


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
    marker corpus.answer_mask needs. ValueError when no token is one."""
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
    Every problem's answer-mask positions are checked against corpus.answer_mask."""
    problems = read_problems(input_path)
    tokenizer, tok_meta = pretrained_tokenizer.load(tokenizer_dir)
    if not 0 < val_fraction < 1 or len(problems) < 2:
        raise ValueError(f"--val_fraction {val_fraction} must lie in (0, 1), and {input_path} needs 2 problems")
    rows, marker, end, answered = head_examples(problems, tokenizer, tok_meta, instruction)
    vocab_size, cut = tok_meta["vocab_size"], min(len(rows) - 1, max(1, round(len(rows) * (1 - val_fraction))))
    script.make_out_dir(out_dir)
    corpus.unmark_complete(out_dir)
    script.write_atomically(os.path.join(out_dir, "tokenizer.json"), tokenizer.save)
    meta = {"kind": "text", "source": os.path.basename(input_path), "format": "gsm8k", "vocab_size": vocab_size,
            "eos_id": end, "answer_id": marker, "dtype": np.dtype(corpus.token_dtype(vocab_size)).name,
            "problems": {"train": cut, "val": len(rows) - cut}}
    for split, part, counts in (("train", rows[:cut], answered[:cut]), ("val", rows[cut:], answered[cut:])):
        ids = np.array([i for r in part for i in r], dtype=np.int64)
        expected = np.concatenate([np.arange(len(r)) >= len(r) - n for r, n in zip(part, counts)])
        if not np.array_equal(corpus.answer_mask(ids, marker, end), expected):
            raise ValueError(f"the chat template of {tokenizer_dir} puts its end of turn or the answer marker "
                             "where corpus.answer_mask would misread the answers: this model cannot be used here")
        corpus.write_split(os.path.join(out_dir, f"{split}.bin"), ids, vocab_size)
        meta |= corpus.token_stats(split, np.bincount(ids, minlength=vocab_size))
    return corpus.write_meta(out_dir, meta)


# ----------------------------------------------------------------------------
# data.py's modes: --task arithmetic (task_main) and --format gsm8k (gsm8k_main)


def task_main(argv):
    """`python data.py --task arithmetic ...`: data.py hands its whole command line here."""
    parser = argparse.ArgumentParser(prog="data.py --task arithmetic", description="Word problems with exact "
                                     "answers: the corpus, its word-level tokenizer and held-out problems.")
    parser.add_argument("--task", choices=["arithmetic"], required=True)
    parser.add_argument("--out_dir", default="data/arith")
    parser.add_argument("--steps", type=int, default=2, help="operations after the starting count")
    parser.add_argument("--max_number", type=int, default=10, help="every count and amount is in 0..max_number")
    parser.add_argument("--train_problems", type=int, default=100_000)
    parser.add_argument("--val_problems", type=int, default=10_000)
    parser.add_argument("--eval_problems", type=int, default=3_000, help="held-out problems (problems.jsonl)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    meta = prepare_task(args.out_dir, args.steps, args.max_number, args.train_problems, args.val_problems,
                        args.eval_problems, args.seed)
    sizes = {s: os.path.getsize(os.path.join(args.out_dir, f"{s}.bin")) // np.dtype(meta["dtype"]).itemsize
             for s in ("train", "val")}
    print(f"wrote {args.out_dir}: vocab {meta['vocab_size']}, train {sizes['train']:,} tokens, val "
          f"{sizes['val']:,} tokens, {meta['problems']['held_out']:,} held-out problems")
    return meta


def gsm8k_main(argv):
    """`python data.py ... --format gsm8k`: write the built-in problems (--task arithmetic) as GSM8K-format
    files, or tokenize one (--input FILE.jsonl) with a converted model's tokenizer for the head."""
    parser = argparse.ArgumentParser(prog="data.py --format gsm8k", description="GSM8K-format files: the built-in "
                                     "word problems written as such, or one tokenized for the head.")
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
