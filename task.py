"""A verifiable task: word problems with exact answers, and answer accuracy against temperature.

    python data.py --task arithmetic --out_dir data/arith        # the corpus and held-out problems
    python train.py --data_dir data/arith --out_dir out/arith    # the LM, on whole problems
    python evaluate.py --task data/arith --ckpt out/arith/ckpt.pt    # accuracy of every sampler
    python evaluate.py --task --quick                                # the whole pipeline on a tiny task, seconds

Each problem is a few steps of small-number arithmetic about a named person and one kind of
thing, in plain words, ending with the answer marker, the answer and <eos>:

    tom has 3 apples . anna gives him 5 apples . then he loses 2 apples .
    how many apples does tom have now ? answer 6 <eos>

Numbers are single tokens ("0" .. max_number) and every running count stays in that range,
so the answer is one token. The evaluation samples an answer to each held-out problem with
every method at each temperature and scores exact matches: it tunes top_p and min_p on one
part of the held-out problems, fits MinP+ heads (on all positions and on answer positions
only, at each temperature) on the first half of val, and reports on the other part.
"""
import argparse
import json
import math
import os

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

import data
import metrics
import script
import train_head
import votes
from model import load_checkpoint, pick_device
from sample import check_temperatures, filter_logits, generate
from train import TrainConfig, main as train_main

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
    return [data.EOS, data.UNK] + sorted(words | {str(i) for i in range(max_number + 1)})


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
    ids = [token_id[data.EOS]]
    for question, answer in problems:
        ids += encode(question, token_id) + [token_id[str(answer)], token_id[data.EOS]]
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
    data.unmark_complete(out_dir)
    script.write_atomically(os.path.join(out_dir, "tokenizer.json"), data.word_tokenizer(vocab).save)
    meta = {"kind": "task", "task": "arithmetic", "seed": seed, "steps": steps, "max_number": max_number,
            "vocab_size": len(vocab), "eos_id": token_id[data.EOS], "answer_id": token_id[ANSWER],
            "dtype": np.dtype(data.token_dtype(len(vocab))).name,
            "problems": {"train": train_problems, "val": val_problems, "held_out": len(held_out)}}
    for split, problems in splits.items():
        ids = problem_tokens(problems, token_id)
        data.write_split(os.path.join(out_dir, f"{split}.bin"), ids, len(vocab))
        meta |= data.token_stats(split, np.bincount(ids, minlength=len(vocab)))  # start-up then scans nothing
    lines = [json.dumps({"question": q, "answer": a}) for q, a in held_out]
    script.write_text(os.path.join(out_dir, "problems.jsonl"), "\n".join(lines) + "\n")
    data.write_meta(out_dir, meta)
    return meta


# ----------------------------------------------------------------------------
# Scoring


def read_answer(new_ids, number_of, eos_id):
    """The number a generated answer gives, or None when it is malformed: anything but one
    number token followed by <eos>. number_of maps a number token's id to its value."""
    if len(new_ids) != 2 or new_ids[1] != eos_id:
        return None
    return number_of.get(new_ids[0])


def score(outputs, answers, number_of, eos_id):
    """(correct, malformed): two boolean arrays, one entry per generated answer."""
    given = [read_answer(ids, number_of, eos_id) for ids in outputs]
    correct = np.array([g is not None and g == a for g, a in zip(given, answers)], dtype=bool)
    return correct, np.array([g is None for g in given], dtype=bool)


def wilson_interval(hits, n, z=1.96):
    """95 % Wilson score interval of a proportion hits / n: sound near 0 and 1, unlike p ± z·se."""
    if n == 0:
        return 0.0, 1.0
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


# ----------------------------------------------------------------------------
# The evaluation: accuracy of every sampler at every temperature

TEMPERATURES = (0.7, 1.0, 1.5, 2.0, 3.0)
TOP_P_GRID = (0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 1.0)  # the tuned values are picked from these
MIN_P_GRID = (0.0, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5)
ANSWER_BUDGET = 2  # new tokens per answer: one number and <eos>


def load_problems(data_dir, token_id=None):
    """The held-out (question, answer) pairs of problems.jsonl, each checked against the task's vocabulary
    (token_id: the tokenizer's, when the caller has it)."""
    path = os.path.join(data_dir, "problems.jsonl")
    if not os.path.exists(path):
        raise ValueError(f"no problems.jsonl in {data_dir}: prepare the task with "
                         f"`python data.py --task arithmetic --out_dir {data_dir}`")
    token_id = token_id or data.load_tokenizer(data_dir).get_vocab()  # every word and answer must be a token
    problems = []
    with open(path, errors="replace") as f:
        for number, line in enumerate(f, 1):
            try:
                row = json.loads(line)
            except (json.JSONDecodeError, RecursionError):
                row = None
            row = row if isinstance(row, dict) else {}
            if not isinstance(row.get("question"), str) or type(row.get("answer")) is not int:  # bool is no answer
                problem = 'not a row {"question": text, "answer": integer}'
            else:
                unknown = [w for w in row["question"].split() + [str(row["answer"])] if w not in token_id]
                problem = f"words not in the task's vocabulary ({' '.join(unknown[:3])})" if unknown else None
            if problem:
                raise ValueError(f"{path} line {number}: {problem}: re-run data.py --task arithmetic "
                                 f"--out_dir {data_dir}")
            problems.append((row["question"], row["answer"]))
    return problems


class Problems:
    """Held-out problems as model input: prompts (<eos> + question ids), answers, and the
    token ids of the answers (for exact expected accuracy)."""

    def __init__(self, problems, token_id):
        self.prompts = [[token_id[data.EOS]] + encode(q, token_id) for q, _ in problems]
        self.answers = [a for _, a in problems]
        self.answer_ids = [token_id[str(a)] for a in self.answers]

    def __len__(self):
        return len(self.answers)


@torch.no_grad()
def answer_logits(model, problems, eos_id, batch_size=500):
    """(N, 2, V) fp32 logits: those that predict each problem's answer token and the <eos> after it.

    Right-padded batches: a causal model's logits at a position never see the padding after it."""
    out = []
    for first in range(0, len(problems), batch_size):
        rows = [p + [a] for p, a in zip(problems.prompts[first:first + batch_size],
                                         problems.answer_ids[first:first + batch_size])]
        x = torch.full((len(rows), max(map(len, rows))), eos_id, dtype=torch.long)
        for i, row in enumerate(rows):
            x[i, :len(row)] = torch.tensor(row)
        logits = model(x.to(next(model.parameters()).device)).float()
        last = torch.tensor([len(r) - 1 for r in rows], device=logits.device)
        out.append(torch.stack([logits[torch.arange(len(rows)), last - 1], logits[torch.arange(len(rows)), last]], 1))
    return torch.cat(out)


def expected_accuracy(logits, problems, eos_id, method, temperature, **params):
    """The exact chance that the sampler writes the right answer then <eos>, averaged over the
    problems: q(answer | prompt) q(<eos> | prompt, answer). No sampling noise, so it tunes well."""
    N, _, V = logits.shape
    q = F.softmax(filter_logits(logits.view(-1, V), method, temperature=temperature, **params), -1).view(N, 2, V)
    targets = torch.tensor([[a, eos_id] for a in problems.answer_ids], device=logits.device)
    return q.gather(-1, targets[..., None]).squeeze(-1).prod(-1).mean().item()


def tune(logits, problems, eos_id, method, name, grid, temperature):
    """The grid value of the method's parameter with the highest expected accuracy."""
    accuracy = {v: expected_accuracy(logits, problems, eos_id, method, temperature, **{name: v}) for v in grid}
    return max(grid, key=lambda v: (accuracy[v], -grid.index(v)))  # ties: the first in the grid


def sample_accuracy(model, problems, number_of, eos_id, method, temperature, seed, batch_size=1000, **params):
    """Sample one answer per problem; (accuracy, its 95 % interval, share malformed)."""
    generator = torch.Generator(next(model.parameters()).device).manual_seed(seed)
    outputs = []
    for first in range(0, len(problems), batch_size):
        outputs += generate(model, problems.prompts[first:first + batch_size], ANSWER_BUDGET, method=method,
                            do_sample=temperature > 0, eos_id=eos_id, generator=generator,
                            temperature=temperature, **params)
    correct, malformed = score(outputs, problems.answers, number_of, eos_id)
    return float(correct.mean()), wilson_interval(int(correct.sum()), len(correct)), float(malformed.mean())


def fit_heads(model, data_dir, meta, temperature, head_tokens):
    """{"all": head, "answer": head}: MinP+ heads fitted at this temperature on the first half of
    val, on every position or on the answer positions only, as `python train.py --head minpplus
    --temperature T [--head_positions answer]` fits them (the statistics are collected once)."""
    cfg = TrainConfig(data_dir=data_dir, temperature=temperature, head_tokens=head_tokens,
                      block_size=model.config.max_seq_len)
    device = str(next(model.parameters()).device)
    fit_tokens, _ = train_head.head_texts(cfg, meta)
    stats = train_head.collect_stats(model, train_head.new_head(cfg, device), fit_tokens, cfg.head_tokens, cfg, device)
    answers = train_head.keep_rows(stats, train_head.answer_rows(fit_tokens, cfg.head_tokens, cfg, meta))
    return {positions: train_head.fit_head(train_head.new_head(cfg, device), rows, cfg.head_epochs, cfg.head_lr)
            for positions, rows in (("all", stats), ("answer", answers))}


def sampler_settings(temperature, tune_logits, tune_set, eos_id, heads):
    """(label, method, params) of every sampler at this temperature; top_p and min_p tuned on tune_set."""
    best_top_p = tune(tune_logits, tune_set, eos_id, "top_p", "top_p", TOP_P_GRID, temperature)
    best_min_p = tune(tune_logits, tune_set, eos_id, "min_p", "min_p", MIN_P_GRID, temperature)
    return [("temperature", "temperature", {}), ("top_p 0.9", "top_p", {"top_p": 0.9}),
            ("min_p 0.1", "min_p", {"min_p": 0.1}), ("top_p tuned", "top_p", {"top_p": best_top_p}),
            ("min_p tuned", "min_p", {"min_p": best_min_p}),
            ("MinP+ all positions", "minpplus", {"head": heads["all"]}),
            ("MinP+ answer positions", "minpplus", {"head": heads["answer"]})]


def task_meta(data_dir):
    meta = data.load_meta(data_dir)
    if meta.get("kind") != "task":
        raise ValueError(f"{data_dir} holds no task (meta.json kind {meta.get('kind')!r}): "
                         f"prepare one with `python data.py --task arithmetic --out_dir {data_dir}`")
    return meta


def evaluate_task(model, data_dir, temperatures=TEMPERATURES, tune_problems=1000, report_problems=2000,
                  head_tokens=200_000, seed=0):
    """One row per (sampler, temperature): accuracy on the report problems with its interval, the
    share of malformed answers and the exact expected accuracy. Greedy comes first, once."""
    meta = task_meta(data_dir)
    if meta["vocab_size"] != model.config.vocab_size:
        raise ValueError(f"{data_dir} has vocab_size {meta['vocab_size']} but the model has "
                         f"{model.config.vocab_size}: pass the checkpoint trained on this task")
    token_id = data.load_tokenizer(data_dir).get_vocab()
    number_of = {i: int(w) for w, i in token_id.items() if w.isdigit()}
    problems, eos_id = load_problems(data_dir, token_id), meta["eos_id"]
    if len(problems) < tune_problems + report_problems:
        raise ValueError(f"{data_dir} has {len(problems)} held-out problems, fewer than --tune_problems "
                         f"{tune_problems} + --report_problems {report_problems}: ask for fewer")
    tune_set = Problems(problems[:tune_problems], token_id)
    report_set = Problems(problems[tune_problems:tune_problems + report_problems], token_id)
    longest = max(len(prompt) for s in (tune_set, report_set) for prompt in s.prompts) + ANSWER_BUDGET
    if longest > model.config.max_seq_len:
        raise ValueError(f"the longest held-out problem with its answer is {longest} tokens, beyond the model's "
                         f"context {model.config.max_seq_len}: train with --max_seq_len {longest} or fewer --steps")
    tune_logits, report_logits = (answer_logits(model, p, eos_id) for p in (tune_set, report_set))
    outs = {name: votes.answer_outcomes(model, s, set(number_of), eos_id) for name, s in
            (("tune", tune_set), ("report", report_set))}
    draws, points = metrics.bootstrap_weights(len(report_set), votes.BOOTSTRAP, seed), {}

    def row(label, method, temperature, params):
        accuracy, (low, high), malformed = sample_accuracy(model, report_set, number_of, eos_id, method,
                                                           temperature, seed, **params)
        value = {k: v for k, v in params.items() if k != "head"}
        return {"method": label, "temperature": temperature, **value, "accuracy": accuracy, "ci_low": low,
                "ci_high": high, "malformed": malformed, "n": len(report_set),
                "expected_accuracy": expected_accuracy(report_logits, report_set, eos_id, method,
                                                       max(temperature, 0), **params),
                **votes.row_fields(votes.per_problem(outs["report"], method, temperature, **params), draws)}

    rows = [row("greedy", "greedy", 0.0, {})]
    for temperature in tqdm(temperatures, desc="temperatures", dynamic_ncols=True):
        heads = fit_heads(model, data_dir, meta, temperature, head_tokens)
        settings = sampler_settings(temperature, tune_logits, tune_set, eos_id, heads)
        for label, method, params in settings + votes.tuned_for_votes(outs["tune"], temperature, heads,
                                                                      TOP_P_GRID, MIN_P_GRID):
            rows.append(row(label, method, temperature, params))
        points |= votes.family_points(outs, temperature, heads, TOP_P_GRID, MIN_P_GRID)
    greedy = {name: votes.per_problem(o, "greedy", 0.0, ks=(1, 16), maj_ks=(16,)) for name, o in outs.items()}
    return rows, votes.frontiers(points, greedy, sorted(temperatures), TOP_P_GRID, MIN_P_GRID, seed)


def format_table(rows):
    """Markdown: accuracy % (95 % interval) per sampler and temperature, then the share of malformed answers."""
    temperatures = sorted({r["temperature"] for r in rows if r["method"] != "greedy"})
    methods = list(dict.fromkeys(r["method"] for r in rows if r["method"] != "greedy"))
    cell = {(r["method"], r["temperature"]): r for r in rows}
    header = " | ".join(f"T = {t:g}" for t in temperatures)
    accuracy = [f"| sampler | {header} |", "| --- |" + " ---: |" * len(temperatures)]
    malformed = [f"| malformed answers | {header} |", "| --- |" + " ---: |" * len(temperatures)]
    for m in methods:
        mine = [cell[m, t] for t in temperatures]
        accuracy.append(f"| {m} | " + " | ".join(f"{r['accuracy']:.1%} ({r['ci_low']:.1%}–{r['ci_high']:.1%})"
                                                 + tuned_value(r) for r in mine) + " |")
        malformed.append(f"| {m} | " + " | ".join(f"{r['malformed']:.1%}" for r in mine) + " |")
    greedy = cell["greedy", 0.0]
    return "\n".join(accuracy + ["", *malformed, "", f"greedy: {greedy['accuracy']:.1%} ({greedy['ci_low']:.1%}–"
                                 f"{greedy['ci_high']:.1%}), malformed {greedy['malformed']:.1%}; "
                                 f"{greedy['n']:,} problems, one sample each"])


def tuned_value(row):
    if not row["method"].endswith("tuned"):
        return ""
    return f", p {row['top_p']}" if "top_p" in row else f", min_p {row['min_p']}"


def plot_accuracy(rows, path):
    """Accuracy against temperature per sampler, with 95 % intervals; False without matplotlib."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return False
    fig = Figure(figsize=(7, 4.5))
    ax = fig.add_subplot()
    for method in dict.fromkeys(r["method"] for r in rows if r["method"] != "greedy"):
        mine = [r for r in rows if r["method"] == method]
        t = [r["temperature"] for r in mine]
        acc = np.array([r["accuracy"] for r in mine])
        errors = [acc - [r["ci_low"] for r in mine], [r["ci_high"] for r in mine] - acc]
        ax.errorbar(t, acc, yerr=errors, marker="o", capsize=3, label=method)
    greedy = next(r for r in rows if r["method"] == "greedy")
    ax.axhline(greedy["accuracy"], color="black", linestyle="--", linewidth=1, label="greedy")
    ax.set_xlabel("temperature")
    ax.set_ylabel("exact-match accuracy")
    ax.set_ylim(0, min(1.0, max(r["ci_high"] for r in rows) + 0.05))
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    script.write_atomically(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    return True


# ----------------------------------------------------------------------------
# Command lines: data.py --task arithmetic (prepare_main) and the evaluation (main)


def prepare_main(argv):
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


def quick_setup(out_dir, device):
    """--quick: a tiny task and a tiny LM trained for 200 steps (it learns the answer format, little arithmetic),
    to check the pipeline, not the accuracy."""
    data_dir = os.path.join(out_dir, "data")
    prepare_task(data_dir, train_problems=3000, val_problems=400, eval_problems=150)
    train_main(["--data_dir", data_dir, "--out_dir", out_dir, "--dim", "32", "--n_layers", "2", "--n_heads", "4",
                "--n_kv_heads", "2", "--max_seq_len", "64", "--batch_size", "8", "--max_steps", "200", "--lr", "1e-2",
                "--warmup_steps", "10", "--eval_interval", "200", "--eval_batches", "2", "--device", device])
    return data_dir, os.path.join(out_dir, "ckpt.pt")


def main(argv=None):
    return script.run_script(run, argv)


def run(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", nargs="?", help="the task's data directory (python data.py --task arithmetic "
                        "--out_dir DIR); bare --task with --quick makes its own")
    parser.add_argument("--ckpt", default="out/ckpt.pt", help="the LM trained on it")
    parser.add_argument("--out_dir", default=None, help="where task_results.json and task_accuracy.png go; "
                        "default: beside --ckpt")
    parser.add_argument("--temperatures", type=float, nargs="+", default=list(TEMPERATURES))
    parser.add_argument("--tune_problems", type=int, default=1000, help="held-out problems that tune top_p and min_p")
    parser.add_argument("--report_problems", type=int, default=2000, help="the next ones, which the table reports")
    parser.add_argument("--head_tokens", type=int, default=200_000, help="val positions each MinP+ head is fitted on")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="auto: cuda when available, else cpu")
    parser.add_argument("--quick", action="store_true", help="end to end in seconds on a tiny task and LM "
                        "(into --out_dir, default out/task-quick): checks the pipeline, not the accuracy")
    args = parser.parse_args(argv)
    args.temperatures = check_temperatures(args.temperatures)
    if min(args.tune_problems, args.report_problems, args.head_tokens) < 1:
        raise ValueError("--tune_problems, --report_problems and --head_tokens must be at least 1")
    device = pick_device(args.device)
    if args.quick and (args.task or args.ckpt != parser.get_default("ckpt")):
        raise ValueError("--quick makes its own tiny task and LM: drop --quick, or drop the task directory and --ckpt")
    if args.quick:
        args.out_dir = args.out_dir or os.path.join("out", "task-quick")
        args.task, args.ckpt = quick_setup(args.out_dir, device)
        args.tune_problems, args.report_problems = 50, 100
    elif not args.task:
        raise ValueError("no --task: pass the task's data directory (or --quick)")
    task_meta(args.task)  # before loading the model: a wrong directory is the likelier mistake
    out_dir = args.out_dir or os.path.dirname(args.ckpt) or "."
    model, _ = load_checkpoint(args.ckpt, device)
    model.requires_grad_(False)
    rows, frontier = evaluate_task(model, args.task, args.temperatures, args.tune_problems, args.report_problems,
                                   args.head_tokens, args.seed)
    os.makedirs(out_dir, exist_ok=True)
    results = os.path.join(out_dir, "task_results.json")
    script.write_text(results, json.dumps(rows, indent=1))
    print(format_table(rows))
    png = os.path.join(out_dir, "task_accuracy.png")
    print(f"wrote {results}" + (f" and {png}" if plot_accuracy(rows, png) else ""))
    print(votes.write_report(rows, frontier, out_dir))
    return rows


if __name__ == "__main__":
    main()
