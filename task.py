"""A verifiable task: word problems with exact answers, and answer accuracy against temperature.

    python data.py --task arithmetic --out_dir data/arith        # the corpus and held-out problems
    python train.py --data_dir data/arith --out_dir out/arith    # the LM, on whole problems
    python evaluate.py --task data/arith --ckpt out/arith/ckpt.pt    # accuracy of every sampler
    python evaluate.py --task --quick                                # the whole pipeline on a tiny task, seconds

The problems (word_problems.py) are small-number arithmetic in plain words whose answer is one
token. The evaluation samples an answer to each held-out problem with every method at each
temperature and scores exact matches: it tunes top_p and min_p on one part of the held-out
problems, fits MinP+ heads (on all positions and on answer positions only, at each temperature)
on the first half of val, and reports on the other part.
"""
import argparse
import json
import math
import os

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

import corpus
import metrics
import script
import train_head
import votes
import word_problems
from model import load_checkpoint, pick_device
from sample import check_temperatures, filter_logits, generate
from synthetic import EOS
from train import TrainConfig, main as train_main


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
    token_id = token_id or corpus.load_tokenizer(data_dir).get_vocab()  # every word and answer must be a token
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
        self.prompts = [[token_id[EOS]] + word_problems.encode(q, token_id) for q, _ in problems]
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
    meta = corpus.load_meta(data_dir)
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
    token_id = corpus.load_tokenizer(data_dir).get_vocab()
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
# Command line: evaluate.py --task DIR


def quick_setup(out_dir, device):
    """--quick: a tiny task and a tiny LM trained for 200 steps (it learns the answer format, little arithmetic),
    to check the pipeline, not the accuracy."""
    data_dir = os.path.join(out_dir, "data")
    word_problems.prepare_task(data_dir, train_problems=3000, val_problems=400, eval_problems=150)
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
