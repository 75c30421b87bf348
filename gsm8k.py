"""A converted model's accuracy on a GSM8K-format file, for greedy decoding and each sampler.

    python data.py --task arithmetic --format gsm8k --out_dir data/arith-gsm8k    # built-in problems: train/test.jsonl
    python evaluate.py --task data/arith-gsm8k/test.jsonl --ckpt out/smollm2/ckpt.pt   # accuracy of each sampler
    python data.py --input train.jsonl --format gsm8k --tokenizer out/smollm2 --out_dir data/gsm8k-head
    python train.py --head minpplus --init_from out/smollm2/ckpt.pt --data_dir data/gsm8k-head \\
        --head_positions answer --head_data train --block_size 512     # a head fitted on answer tokens

The format, how a reply's answer is read and how prompts are made are in word_problems.py. Prompts
go through the model's chat template, or are --fewshot N solved problems of a --train file as
plain text; each reply stops at the model's end of turn (or, few-shot, at a blank line) or at the
token budget, and is right when its number equals the answer's.
"""
import argparse
import json
import os
import re
from collections import Counter

import numpy as np
import torch
from tqdm import tqdm

import metrics
import passk
import pretrained_tokenizer
import script
import task
import votes
import word_problems
from model import load_checkpoint, pick_device
from sample import generate, load_head


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
    given = [word_problems.extract_answer(t) for t in texts]
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


def vote_counts(given, finals):
    """(right (P,), others (P, C)) of n draws per problem: how many draws gave the right number, and
    how many gave each wrong number (malformed draws, None, cast no vote); given: P lists of numbers."""
    right = np.array([sum(g == a for g in draws) for draws, a in zip(given, finals)])
    wrong = [Counter(g for g in draws if g is not None and g != a) for draws, a in zip(given, finals)]
    others = np.zeros((len(given), max([len(w) for w in wrong] + [1])), dtype=np.int64)
    for i, w in enumerate(wrong):
        others[i, :len(w)] = sorted(w.values(), reverse=True)
    return right, others


def score_names(draws):
    """pass@k (k in passk.KS) and maj@k (k in passk.MAJ_KS) for every k that draws allow (2k <= draws;
    pass@1 always): unbiased estimators need n >= k draws, 2k keeps their variance low."""
    return [f"pass@{k}" for k in passk.KS if 2 * k <= draws or k == 1] + \
        [f"maj@{k}" for k in passk.MAJ_KS if 2 * k <= draws]


def draw_scores(given, finals, n, draws):
    """{name: (P,)} each problem's unbiased pass@k and maj@k from its n draws (given: P lists of n numbers);
    n = 1 is greedy, whose one reply is every draw's: pass@k = maj@k = whether it is right."""
    right, others = vote_counts(given, finals)
    if n == 1:
        return {name: right.astype(np.float64) for name in score_names(draws)}
    counts = np.full(len(finals), n)
    return {name: passk.pass_at_k_from_draws(counts, right, int(name[5:])) if name.startswith("pass@")
            else passk.maj_at_k_from_draws(right, others, counts, int(name[4:])) for name in score_names(draws)}


def prompts_and_stops(args, model, problems):
    """(token ids of each problem's prompt, the ids that end a reply, the tokenizer)."""
    shots = word_problems.read_problems(args.train)[:args.fewshot] if args.fewshot else ()
    if len(shots) < args.fewshot:
        raise ValueError(f"--fewshot {args.fewshot} but {args.train} holds {len(shots)} problems: ask for fewer")
    tokenizer, meta = pretrained_tokenizer.load(os.path.dirname(args.ckpt) or ".")
    texts = word_problems.prompt_texts([q for q, _, _ in problems], meta, tokenizer, shots, args.instruction)
    prompts = [pretrained_tokenizer.encode(tokenizer, meta, t) for t in texts]
    if max(map(len, prompts)) + args.max_answer_tokens > model.config.max_seq_len:
        raise ValueError(f"the longest prompt ({max(map(len, prompts))} tokens) and --max_answer_tokens "
                         f"{args.max_answer_tokens} exceed the context {model.config.max_seq_len}: ask for fewer")
    stop_ids = list(meta["stop_ids"])
    if shots:  # a plain-text reply ends at its first blank line: stop at any token that holds one
        stop_ids += [i for i in range(tokenizer.get_vocab_size()) if "\n\n" in tokenizer.decode([i])]
    return prompts, stop_ids or None, tokenizer


def evaluate_file(args):
    """One row per sampler (accuracy with its 95 % interval, malformed share, reply lengths; pass@k and
    maj@k with --draws) and each reply."""
    device = pick_device(args.device)
    problems = word_problems.read_problems(args.task)[:args.problems or None]
    model, ckpt = load_checkpoint(args.ckpt, device)
    if "converted_from" not in ckpt:
        raise ValueError(f"{args.ckpt} is not a converted model: GSM8K-format files need one from convert.py "
                         f"(its tokenizer and chat template travel beside ckpt.pt)")
    prompts, stop_ids, tokenizer = prompts_and_stops(args, model, problems)
    finals, P, number_text = [a for _, _, a in problems], len(problems), word_problems.number_text
    rows, kept = [], []
    for label, method, params in samplers(args, model, device):
        n = 1 if method == "greedy" else args.draws  # greedy gives the same reply every time
        ids = replies(model, [p for p in prompts for _ in range(n)], args.max_answer_tokens, stop_ids, method,
                      params, args.seed, args.batch_size)
        texts = [reply_text(tokenizer, r, args.fewshot > 0) for r in ids]
        given, correct = score(texts, [a for a in finals for _ in range(n)])
        scores = draw_scores([given[i * n:(i + 1) * n] for i in range(P)], finals, n, args.draws)
        fields = votes.row_fields(scores, metrics.bootstrap_weights(P, 1000, args.seed))
        hits = sum(correct)  # one draw: Wilson's interval; more: the draws of a problem are not independent
        low, high = task.wilson_interval(hits, P) if args.draws == 1 else fields["pass@1_ci"]
        value = {k: v for k, v in params.items() if k != "head"}
        at_budget = sum(len(r) == args.max_answer_tokens and r[-1] not in (stop_ids or []) for r in ids)
        rows.append({"sampler": label, "method": method, **value, "accuracy": hits / len(ids), "ci_low": low,
                     "ci_high": high, "correct": hits, "n": P, "draws": n,
                     "malformed": sum(g is None for g in given) / len(ids),
                     "mean_tokens": sum(map(len, ids)) / len(ids),
                     "hit_budget": at_budget / len(ids), **fields})
        print(summary_line(rows[-1]), flush=True)
        kept += [{"sampler": label, "problem": i // n, "draw": i % n, "reply": t,
                  "given": None if g is None else number_text(g), "answer": number_text(finals[i // n]), "correct": c}
                 for i, (t, g, c) in enumerate(zip(texts, given, correct))]
    return rows, kept


def summary_line(row):
    votes = "".join(f", {k} {row[k]:.1%}" for k in row if k.startswith(("pass@", "maj@")) and k != "pass@1"
                    and not k.endswith("_ci"))
    return (f"{row['sampler']:<22} accuracy {row['accuracy']:6.1%} ({row['ci_low']:.1%}–{row['ci_high']:.1%}), "
            f"malformed {row['malformed']:.1%}, {row['n']} problems × {row['draws']}, {row['mean_tokens']:.0f} "
            f"tokens a reply, {row['hit_budget']:.0%} at the budget{votes}")


# ----------------------------------------------------------------------------
# Command line: evaluate.py --task FILE.jsonl


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
    parser.add_argument("--instruction", default=word_problems.INSTRUCTION,
                        help="put after each question in the chat template")
    parser.add_argument("--max_answer_tokens", type=int, default=256, help="the token budget of each reply")
    parser.add_argument("--samplers", nargs="+", default=["greedy", "temperature", "top_p", "min_p"],
                        choices=["greedy", "temperature", "top_p", "min_p", "minpplus"])
    parser.add_argument("--temperature", type=float, default=1.0, help="of every sampler but greedy")
    parser.add_argument("--top_p", type=float, default=0.9)
    parser.add_argument("--min_p", type=float, default=0.1)
    parser.add_argument("--head", help="MinP+ head JSON (train.py --head minpplus) for the minpplus sampler")
    parser.add_argument("--head_strength", type=float, default=1.0)
    parser.add_argument("--draws", type=int, default=1, help="replies per problem for each sampler (greedy: one); "
                        "pass@k and maj@k for k in 1..16 with 2k <= draws, unbiased estimates from the draws")
    parser.add_argument("--batch_size", type=int, default=32, help="replies decoded at once")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="auto: cuda when available, else cpu")
    parser.add_argument("--out_dir", help="where gsm8k_results.json and gsm8k_replies.jsonl go; default: beside --ckpt")
    args = parser.parse_args(argv)
    if args.head and "minpplus" not in args.samplers and args.samplers == parser.get_default("samplers"):
        args.samplers = args.samplers + ["minpplus"]
    if min(args.max_answer_tokens, args.batch_size, args.draws) < 1 or min(args.problems, args.fewshot) < 0:
        raise ValueError("--max_answer_tokens, --batch_size and --draws must be at least 1, --problems and "
                         "--fewshot >= 0")
    if bool(args.fewshot) != bool(args.train):
        raise ValueError("--fewshot N and --train FILE.jsonl go together: pass both or neither")
    if not args.temperature > 0:
        raise ValueError(f"--temperature {args.temperature} must be above 0 (greedy is its own sampler)")
    rows, kept = evaluate_file(args)
    out_dir = args.out_dir or os.path.dirname(args.ckpt) or "."
    script.make_out_dir(out_dir)
    prompting = f"{args.fewshot}-shot from {args.train}" if args.fewshot else "chat template"
    results = {"task": args.task, "ckpt": args.ckpt, "prompting": prompting, "instruction": args.instruction,
               "max_answer_tokens": args.max_answer_tokens, "draws": args.draws, "seed": args.seed, "rows": rows}
    path = os.path.join(out_dir, "gsm8k_results.json")
    script.write_text(path, json.dumps(results, indent=1) + "\n")
    script.write_text(os.path.join(out_dir, "gsm8k_replies.jsonl"), "".join(json.dumps(r) + "\n" for r in kept))
    print(f"wrote {path} and gsm8k_replies.jsonl ({prompting}, budget {args.max_answer_tokens} tokens)")
    return results


if __name__ == "__main__":
    main()
