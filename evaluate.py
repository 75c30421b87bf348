"""Does MinP+ beat tuned min-p and top-p? Every sampler against the exact truth, at matched diversity.

    python evaluate.py                      # out/ckpt.pt on its synthetic language -> out/eval/
    python evaluate.py --quick              # trains a tiny model on the spot: the whole pipeline in seconds
    python evaluate.py --ckpt out/smollm2/ckpt.pt --text FILE.txt --block_size 256   # a converted model
    python evaluate.py --text B.txt --fit_text A.txt   # the real-text verdict: MinP+ fitted on A, reported on B
    python evaluate.py --task data/arith --ckpt out/arith/ckpt.pt   # answer accuracy on the task (task.py)
    python evaluate.py --task test.jsonl --ckpt out/smollm2/ckpt.pt  # a GSM8K-format file, a converted model (gsm8k.py)

On the synthetic language the val split is halved: MinP+ heads are fitted (one per temperature)
and every baseline is tuned on windows of the first half; every figure comes from windows of the
second. Each setting's distribution q comes from sample.filter_logits, the function sampling uses.
Writes results.csv (one row per setting), summary.md, samples.csv, text.csv and, with matplotlib,
garbage_vs_lost.png, frontier.png and text_frontier.png into --out_dir.
"""
import argparse
import math
import os
import sys
import tempfile
import time
from types import SimpleNamespace

import numpy as np
import torch
from tqdm import tqdm

import autotemp
import corpus
import data
import gsm8k
import script
import synthetic
import metrics
import reporting
import task
import textreport
import train
import train_head
from head import MinPPlusHead
from model import fingerprint, load_checkpoint, pick_device, trained_data_dir
from sample import METHODS, check_temperatures, filter_logits, generate, load_text_side

KNOBS = {  # each method's grid, weakest first: plain temperature (every family's knob-0 member) comes before it
    "top_k": [64, 48, 32, 24, 16, 12, 8, 5, 3, 2, 1],
    "top_p": [0.999, 0.995, 0.99, 0.98, 0.95, 0.9, 0.85, 0.8, 0.7, 0.6, 0.5],
    "min_p": [0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.07, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5],
    "typical": [0.999, 0.995, 0.99, 0.95, 0.9, 0.8, 0.7, 0.5],
    "epsilon": [1e-4, 3e-4, 1e-3, 3e-3, 0.01, 0.02, 0.05],
    "eta": [1e-4, 3e-4, 1e-3, 3e-3, 0.01, 0.02, 0.05],
    "top_nsigma": [5.0, 4.0, 3.0, 2.5, 2.0, 1.5, 1.0, 0.5],
    "minpplus": [0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0],  # head_strength lambda
}
MAX_GRID = 200  # temperatures in --t_grid
COMMON = [("min_p", 0.05), ("min_p", 0.1), ("top_p", 0.9), ("top_p", 0.95)]  # what users pick
QUICK = ["--windows", "16", "--t_grid", "0.7:2.5:0.3", "--bootstrap", "100", "--samples", "8",
         "--new_tokens", "16", "--prompt_tokens", "8", "--head_epochs", "30", "--text_t_grid", "0.8,1,1.3",
         "--text_knobs", "minpplus=0.5,1,2", "min_p=0.05,0.1,0.2", "top_p=0.8,0.9,0.95"]


# ----------------------------------------------------------------------------
# Held-out windows, the model's logits, the truth


def model_logits(model, windows, batch_size=32):
    """fp32 logits (n, T, V) of the model on windows[:, :-1], on the CPU (the synthetic language's
    vocabulary is small enough to keep them all)."""
    return torch.cat([logits for _, logits, _ in textreport.logit_batches(model, windows, batch_size)])


def fit_heads(logits, targets, temperatures, epochs, given=None):
    """{T: MinPPlusHead} fitted by cross-entropy on (logits / T, targets), except where given
    (given_heads: {T: head}, or {None: head} for one head at every T) has one."""
    heads, given = {}, given or {}
    flat_logits, flat_targets = logits.reshape(-1, logits.size(-1)), targets.reshape(-1)
    for T in tqdm(temperatures, desc="fitting heads", leave=False, dynamic_ncols=True):
        if None in given or T in given:
            heads[T] = given.get(None, given.get(T))
            continue
        head = MinPPlusHead()
        stats = head.bucket_stats(flat_logits / T, flat_targets)
        heads[T] = train_head.fit_head(head, stats, epochs=epochs).requires_grad_(False)
    return heads


def given_heads(paths, model):
    """--head files: {None: head} for one file, used at every temperature; for several, {T: head}
    at the temperature each file records (train.py --head minpplus --temperature T writes it)."""
    heads = {}
    for path in paths:
        head, meta = MinPPlusHead.load_json(path, vocab_size=model.config.vocab_size, checkpoint=fingerprint(model))
        if len(paths) == 1:
            return {None: head}
        T = meta.get("temperature")
        if isinstance(T, bool) or not isinstance(T, (int, float)):
            raise ValueError(f"{path} records no temperature: give one --head (used at every temperature) "
                             "or files that record theirs")
        T = check_temperatures([T], f"{path}'s temperature")[0]
        if T in heads:
            raise ValueError(f"two --head files are fitted at temperature {T:g}: give one file per temperature")
        heads[T] = head
    return heads


# ----------------------------------------------------------------------------
# Settings and their metrics


def setting_grid(t_grid, methods=tuple(KNOBS), knobs=KNOBS):
    """Every (method, temperature, knob) to evaluate: plain temperature at each T, then each method's grid."""
    grid = [dict(method="temperature", temperature=T, param=None) for T in t_grid]
    for method in methods:
        grid += [dict(method=method, temperature=T, param=v) for T in t_grid for v in knobs[method]]
    return grid


def param_name(method):
    """The knob filter_logits takes for a method (MinP+'s knob is its strength, not its head)."""
    return "head_strength" if method == "minpplus" else METHODS[method][1]


def sampler_params(setting, heads):
    """filter_logits' keyword arguments for one setting."""
    params = {"temperature": setting["temperature"]}
    if setting["method"] == "minpplus":
        params.update(head=heads[setting["temperature"]], head_strength=setting["param"])
    elif setting["param"] is not None:
        params[param_name(setting["method"])] = setting["param"]
    return params


@torch.no_grad()
def setting_sums(grid, logits, p_true, targets, heads):
    """(len(grid), W, len(metrics.STATS)) per-window metric sums of every setting on one half."""
    W, T, V = logits.shape
    flat = logits.reshape(-1, V)
    out = np.empty((len(grid), W, len(metrics.STATS)))
    p_entropy = synthetic.truth_entropy(p_true)
    for i, setting in enumerate(tqdm(grid, desc="settings", leave=False, dynamic_ncols=True)):
        q_logits = filter_logits(flat, setting["method"], **sampler_params(setting, heads)).view(W, T, V)
        out[i] = metrics.window_sums(metrics.position_metrics(p_true, q_logits, targets, p_entropy))
    return out


def knob(setting):
    name = "λ" if setting["method"] == "minpplus" else param_name(setting["method"])
    return "plain" if setting["param"] is None else f"{name}={setting['param']:g}"


def label(setting):
    return "temperature" if setting["method"] == "temperature" else f"{setting['method']} {knob(setting)}"


# ----------------------------------------------------------------------------
# Tuning (on the tune half) and matched diversity (read on the report half)


def tuned_rows(grid, tune_means, temperatures):
    """{(T, name): setting index}: plain, each method tuned against p* (least TV on the tune half
    over its knob and its knob-0 member), the common settings, and MinP+ as fitted (lambda 1)."""
    rows = {}
    for T in temperatures:
        at_T = [i for i, s in enumerate(grid) if s["temperature"] == T]
        plain = next(i for i in at_T if grid[i]["method"] == "temperature")
        rows[(T, "temperature")] = plain
        for method in KNOBS:
            family = [plain] + [i for i in at_T if grid[i]["method"] == method]
            rows[(T, f"{method} tuned")] = min(family, key=lambda i: tune_means["tv"][i])
        for method, value in COMMON + [("minpplus", 1.0)]:
            match = [i for i in at_T if grid[i]["method"] == method and grid[i]["param"] == value]
            if match:
                rows[(T, label(grid[match[0]]))] = match[0]
    return rows


def family_segments(grid, method, temperatures=None, knobs=KNOBS):
    """(a, b) pairs of neighbouring settings of one family (metrics.best_segments): one knob value
    at neighbouring temperatures, and neighbouring knob values at one temperature, plain
    temperature being every knob's weakest end. temperatures: all of the grid's by default."""
    index = {(s["method"], s["temperature"], s["param"]): i for i, s in enumerate(grid)}
    Ts = temperatures or sorted({s["temperature"] for s in grid})
    knobs = [None] + ([] if method == "temperature" else knobs[method])

    def node(T, value):
        return index[("temperature", T, None)] if value is None else index[(method, T, value)]

    segments = []
    for t, T in enumerate(Ts):
        for k, value in enumerate(knobs):
            if t + 1 < len(Ts):
                segments.append((node(T, value), node(Ts[t + 1], value)))
            if k + 1 < len(knobs):
                segments.append((node(T, value), node(T, knobs[k + 1])))
    return segments


def families(grid, temperatures=None, knobs=KNOBS):
    """{family: segments}: plain temperature alone, and each method with plain temperature."""
    return {f: family_segments(grid, f, temperatures, knobs) for f in ("temperature", *knobs)}


# ----------------------------------------------------------------------------
# Samples


def sample_stats(model, prompts, settings, heads, new_tokens, seed, p_true_of=None):
    """{name: stats} of continuations of every prompt under each setting: distinct-2/3, 4-gram
    repetition and, when p_true_of(sequences) gives p* (synthetic), the share valid under p*
    and the mean true NLL per token of the valid ones; otherwise (real text) their NLL per token
    under the plain model."""
    out = {}
    for name, setting in tqdm(settings.items(), desc="samples", leave=False, dynamic_ncols=True):
        generator = torch.Generator(next(model.parameters()).device).manual_seed(seed)
        new = generate(model, prompts, new_tokens, method=setting["method"], generator=generator,
                       **sampler_params(setting, heads))
        stats = {"distinct_2": metrics.distinct_n(new, 2), "distinct_3": metrics.distinct_n(new, 3),
                 "repetition_4": metrics.repetition(new, 4)}
        if p_true_of is not None:
            full = np.concatenate([np.asarray(prompts), np.asarray(new)], 1)
            with np.errstate(invalid="ignore", divide="ignore"):  # p* is NaN after a token it rules out
                p_next = p_true_of(full)[:, prompts.shape[1] - 1:-1]
            valid, nll = metrics.truth_scores(p_next, np.asarray(new))
            stats.update(valid=valid.mean(), true_nll=nll[valid].mean() if valid.any() else float("nan"))
        else:
            stats["model_nll"] = textreport.continuation_nll(model, prompts, new)
        out[name] = stats
    return out


# ----------------------------------------------------------------------------
# The runs


def halves_of_truth(model, val, lang, n_windows):
    """{"tune", "report"}: windows of each half of val with the model's logits, p* and the targets."""
    half, length = len(val) // 2, model.config.max_seq_len + 1
    out = {}
    for name, tokens in (("tune", val[:half]), ("report", val[half:])):
        windows = synthetic.document_windows(tokens, lang.eos_id, n_windows, length, disjoint=True)
        out[name] = SimpleNamespace(windows=windows, logits=model_logits(model, windows),
                                    p=torch.from_numpy(lang.next_token_probs(windows[:, :-1])).float(),
                                    y=torch.from_numpy(windows[:, 1:]))
    return out


def evaluate_synthetic(args, model, meta, model_name):
    """Items against p*: results.csv, the per-temperature and matched-diversity tables, samples."""
    lang = synthetic.SyntheticLanguage(meta["seed"])
    halves = halves_of_truth(model, corpus.open_split(args.data_dir, "val", meta), lang, args.windows)
    n_pos = {k: h.y.numel() for k, h in halves.items()}
    print(f"truth windows: {len(halves['tune'].y)} to tune ({n_pos['tune']:,} positions), "
          f"{len(halves['report'].y)} to report ({n_pos['report']:,}) | {len(args.t_grid)} temperatures")
    heads = fit_heads(halves["tune"].logits, halves["tune"].y, args.t_grid, args.head_epochs, args.given_head)
    grid = setting_grid(args.t_grid)
    sums = {k: setting_sums(grid, h.logits, h.p, h.y, heads) for k, h in halves.items()}
    tune, report = (metrics.means(sums[k].sum(1)) for k in ("tune", "report"))
    reporting.write_csv(os.path.join(args.out_dir, "results.csv"), reporting.result_rows(model_name, grid, report))
    draws = metrics.bootstrap_weights(len(halves["report"].y), args.bootstrap, args.seed)
    rows = tuned_rows(grid, tune, args.temperatures)
    T_auto, rows[(T_auto, autotemp.LABEL)], auto_ce = autotemp.choose(grid, tune)  # least CE on the tune half
    for T in args.temperatures:
        print(summary_line(T, rows, grid, report))
    h_true = synthetic.truth_entropy(halves["report"].p).mean().item()
    levels = [h_true] + [report["entropy"][rows[(T, "temperature")]] for T in args.temperatures]
    level_names = [f"H(p*) = {h_true:.3f}"] + [f"H(p at T={T:g}) = {h:.3f}"
                                               for T, h in zip(args.temperatures, levels[1:])]
    h_auto = report["entropy"][rows[(T_auto, autotemp.LABEL)]]
    print(f"MinP+ auto: T = {T_auto:g} | TV {report['tv'][rows[(T_auto, autotemp.LABEL)]]:.4f} | H(q) {h_auto:.3f}")
    levels.insert(1, h_auto)
    level_names.insert(1, f"H(MinP+ auto, T={T_auto:g}) = {h_auto:.3f}")
    fams = {**families(grid), autotemp.LABEL: family_segments(grid, "minpplus", [T_auto])}  # lambda at T*
    tv_diffs = metrics.paired_tv_diffs(rows, sums["report"], draws)
    md = {"per_temperature": reporting.per_temperature_markdown(rows, [knob(g) for g in grid], report, tv_diffs)}
    for y_name, what in (("tv", "TV(p*, q)"), ("garbage", "Garbage G")):
        table = metrics.matched_table(fams, tune, sums["report"], levels, draws, "entropy", y_name)
        what = f"{what} at matched entropy H(q)"
        md[f"matched_{y_name}"] = reporting.matched_markdown(table, level_names, what, "minpplus")
        if y_name == "tv":
            md["matched_tv_vs_temperature"] = reporting.matched_markdown(table, level_names, what, "temperature")
    md["auto"] = autotemp.markdown(grid, auto_ce, T_auto, tune, report)
    md["kept"] = kept_tables(grid, fams, tune, sums["report"], draws, args.temperatures)
    settings = {key: grid[i] for key, i in rows.items()}
    prompts = halves["report"].windows[:args.samples, :args.prompt_tokens]
    stats = sample_stats(model, prompts, settings, heads, args.new_tokens, args.seed, lang.next_token_probs)
    md["samples"] = reporting.samples_markdown(stats)
    reporting.write_csv(os.path.join(args.out_dir, "samples.csv"),
                        [{"temperature": T, "sampler": name, **s} for (T, name), s in stats.items()])
    dense = np.linspace(levels[0] - 0.4, levels[-1] + 0.2, 61)
    one = np.ones((1, len(halves["report"].y)))
    curves = {y: {f: (dense, metrics.frontier(tune, sums["report"], m, "entropy", y, dense, one)[0])
                  for f, m in fams.items()} for y in ("tv", "garbage")}
    md["plots"] = reporting.plot_results(args.out_dir, grid, report, args.temperatures, curves, KNOBS)
    return md


def kept_tables(grid, fams, tune, report_sums, draws, temperatures, levels=(0.99, 0.995, 0.999)):
    """TV and garbage at matched kept truth mass 1 - L: over each family's whole knob x temperature
    frontier, then garbage at each reported temperature alone. A MinP+ head whose weights are all > 0
    (a fitted one, unless pruned) never removes a token: L = 0, no point below 1 - L = 1."""
    lines = ["A MinP+ head whose weights are all > 0 (every fitted head, unless pruned) removes no token, nor "
             "does plain temperature: their L is 0 and they have no point below 1 − L = 1 (a dash). The "
             "reference here is min-p.", ""]
    names = [f"1 − L = {v}" for v in levels]
    sections = [("All temperatures", fams, ("tv", "garbage"))]
    sections += [(f"T = {T:g}", families(grid, [T]), ("garbage",)) for T in temperatures]
    for title, fams_here, y_names in sections:
        lines += [f"**{title}**", ""]
        for y_name in y_names:
            table = metrics.matched_table(fams_here, tune, report_sums, list(levels), draws, "kept", y_name,
                                          refs=("min_p",))
            what = f"{'TV(p*, q)' if y_name == 'tv' else 'Garbage G'} at matched kept truth mass"
            lines += reporting.matched_markdown(table, names, what, "min_p") + [""]
    return lines


def summary_line(T, rows, grid, report):
    parts = []
    for name in ("temperature", "min_p tuned", "top_p tuned", "minpplus λ=1"):
        i = rows[(T, name)]
        shown = f"{name} ({knob(grid[i])})" if name.endswith("tuned") else name
        inf = report["kl_inf_share"][i]
        parts.append(f"{shown} TV {report['tv'][i]:.4f} KL {reporting.fmt(report['kl'][i])}"
                     + (f" (inf {inf:.1%})" if inf else ""))
    return f"T {T:g} | " + " | ".join(parts)


def evaluate_text(args, model, tokens, tokenizer, source, fit_tokens=None):
    """The real-text verdict (textreport.verdict) on tokens, MinP+ fitted on fit_tokens (default: the
    first half of the windows), and samples of its named settings. Returns (markdown lines, csv rows)."""
    fit, report = textreport.fit_and_report_windows(tokens, fit_tokens, args.windows, args.block_size + 1)
    knobs = args.text_knobs
    grid = setting_grid(args.text_t_grid, tuple(knobs), knobs)

    def named(T_auto, index):  # the settings of the per-setting table and of the samples
        out = {(T_auto, textreport.AUTO): index[("minpplus", T_auto, 1.0)]}
        for T in args.temperatures:
            keys = [("temperature", T, None), ("minpplus", T, 1.0)] + [(m, T, v) for m, v in COMMON]
            out.update({(T, label(grid[index[k]])): index[k] for k in keys if k in index})
        return out

    def families_of(T_auto):  # MinP+ auto's family: its strength at its temperature
        return {**families(grid, knobs=knobs), textreport.AUTO: family_segments(grid, "minpplus", [T_auto], knobs)}

    fitted_on = "the first half of its windows" if fit_tokens is None else os.path.basename(args.fit_text)
    lines, rows, heads, shown = textreport.verdict(model, fit, report, grid, args, sampler_params, named, families_of,
                                                   tokenizer, f"{source}, MinP+ fitted on {fitted_on}")
    stats = sample_stats(model, report[:args.samples, :args.prompt_tokens], {k: grid[i] for k, i in shown.items()},
                         heads, args.new_tokens, args.seed)
    return lines + ["Samples (continuations of report prompts):", ""] + reporting.samples_markdown(stats), rows


def quick_model(work_dir):
    """A tiny model trained for a few dozen steps on a small synthetic corpus: (ckpt path, data dir)."""
    data_dir, out_dir = os.path.join(work_dir, "data"), os.path.join(work_dir, "lm")
    data.prepare_synthetic(data_dir, train_tokens=60_000, val_tokens=12_000, seed=0)
    train.main(["--data_dir", data_dir, "--out_dir", out_dir, "--dim", "32", "--n_layers", "2", "--n_heads", "4",
                "--n_kv_heads", "2", "--max_seq_len", "32", "--batch_size", "16", "--max_steps", "150",
                "--eval_interval", "150", "--eval_batches", "2", "--truth_windows", "4", "--device", "cpu",
                "--lr", "1e-2", "--warmup_steps", "10"])
    return os.path.join(out_dir, "ckpt.pt"), data_dir


def parse_grid(text):
    """'start:stop:step' (inclusive) or a comma-separated list -> sorted temperatures."""
    try:
        if ":" in text:
            start, stop, step = (float(v) for v in text.split(":"))
            if not (math.isfinite(start) and start <= stop < math.inf and 0 < step < math.inf):
                raise ValueError
            count = (stop - start) / step + 0.5  # np.arange's length, ceiled: counted before any is made
            values = np.arange(start, stop + step / 2, step) if count <= MAX_GRID else None
        else:
            values = [float(v) for v in text.split(",")]
            count = len(values)
    except ValueError:
        raise ValueError(f"--t_grid {text!r}: write start:stop:step with start <= stop and a step > 0 "
                         "(0.5:3.0:0.1) or a list (1.0,1.5,2.0)") from None
    if count > MAX_GRID:  # each temperature costs every method's whole grid of settings
        shown = f"{math.ceil(count):,}" if math.isfinite(count) else "endless"
        raise ValueError(f"--t_grid {text!r} holds {shown} temperatures, more than {MAX_GRID}: use a larger step")
    return [round(float(v), 6) for v in values]


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", default="out/ckpt.pt")
    parser.add_argument("--data_dir", default=None, help="default: the data the checkpoint was trained on")
    parser.add_argument("--out_dir", default=None, help="default: out/eval (out/eval-quick with --quick)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--temperatures", type=float, nargs="+", default=[1.0, 1.5, 2.0], help="reported temperatures")
    parser.add_argument("--t_grid", default="0.7:3.0:0.05", help="temperatures of every family's frontier")
    parser.add_argument("--windows", type=int, default=64, help="windows per half of val")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples of the report windows")
    parser.add_argument("--head", nargs="+", default=None, help="one head.json to use at every temperature, or "
                        "several, each at the temperature it was fitted at; default: fit one per temperature")
    parser.add_argument("--head_epochs", type=int, default=100)
    parser.add_argument("--samples", type=int, default=64, help="held-out prompts continued by each sampler")
    parser.add_argument("--prompt_tokens", type=int, default=16)
    parser.add_argument("--new_tokens", type=int, default=48)
    parser.add_argument("--text", default=None, help="a UTF-8 file: bits per byte and samples on it too")
    parser.add_argument("--block_size", type=int, default=0, help="window length on text; 0: the model's context")
    parser.add_argument("--seed", type=int, default=0)
    textreport.add_arguments(parser)
    parser.add_argument("--quick", action="store_true", help="train a tiny model in a temporary directory and "
                        "evaluate it on small grids (the CI check)")
    argv = list(argv) if argv is not None else None
    args = parser.parse_args(argv)
    if args.quick:  # the quick grids, unless given on the command line
        args = parser.parse_args(QUICK + (argv if argv is not None else sys.argv[1:]))
        given = [f"--{name}" for name in ("ckpt", "data_dir") if getattr(args, name) != parser.get_default(name)]
        if given:
            raise ValueError(f"--quick trains its own tiny model: drop {' and '.join(given)} or drop --quick")
    if min(args.windows, args.bootstrap, args.samples, args.prompt_tokens, args.new_tokens, args.head_epochs) < 1:
        raise ValueError("--windows, --bootstrap, --samples, --prompt_tokens, --new_tokens and --head_epochs "
                         "must be at least 1")
    args.out_dir = args.out_dir or ("out/eval-quick" if args.quick else "out/eval")  # a check never replaces results
    args.temperatures = check_temperatures(args.temperatures)
    args.t_grid = check_temperatures(parse_grid(args.t_grid) + args.temperatures, "--t_grid")
    textreport.check_arguments(args, KNOBS, parse_grid, check_temperatures)
    return args


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if any(a == "--task" or a.startswith("--task=") for a in argv):  # the verifiable task: task.py's own flags
        return (gsm8k if gsm8k.is_task_file(argv) else task).main(argv)  # or a GSM8K-format file: gsm8k.py's
    script.run_script(run, argv)


def run(argv=None):
    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as work_dir:
        if args.quick:
            args.ckpt, args.data_dir = quick_model(work_dir)
        evaluate_checkpoint(args)


def evaluate_checkpoint(args):
    start = time.perf_counter()
    device = pick_device(args.device)
    model, ckpt = load_checkpoint(args.ckpt, device)
    if args.new_tokens >= model.config.max_seq_len:  # checked now, not after minutes of evaluation
        raise ValueError(f"--new_tokens {args.new_tokens} must be below {args.ckpt}'s context "
                         f"{model.config.max_seq_len}: pass a smaller one")
    if not (0 <= args.block_size <= model.config.max_seq_len):
        raise ValueError(f"--block_size {args.block_size} must lie in [0, {model.config.max_seq_len}] (the context)")
    args.block_size = args.block_size or model.config.max_seq_len
    converted = "converted_from" in ckpt  # a pretrained model: no data of its own, its tokenizer beside it
    args.data_dir = args.data_dir or (None if converted else trained_data_dir(ckpt, args.ckpt))
    tokenizer, meta = load_text_side(ckpt, args.ckpt, args.data_dir, model.config.vocab_size)
    if meta["kind"] == "pretrained" and not args.text:
        raise ValueError(f"{args.ckpt} is a converted model with no data of its own: pass --text FILE.txt, or "
                         f"--data_dir with a text prepared by data.py --tokenizer")
    extra_text = textreport.text_tokens(args.text, tokenizer) if args.text else None  # a bad --text fails here, at once
    fit_text = textreport.text_tokens(args.fit_text, tokenizer) if args.fit_text else None
    for tokens in [t for t in (extra_text, fit_text) if t is not None]:
        textreport.check_two_windows(tokens, args.block_size)
    args.given_head = given_heads(args.head, model) if args.head else None
    if args.head and len(args.head) > 1:  # each file's temperature joins the grid, so that it is used
        args.t_grid = check_temperatures(args.t_grid + list(args.given_head), "--t_grid")
    os.makedirs(args.out_dir, exist_ok=True)
    model_name = args.ckpt if ckpt.get("step") is None else f"{args.ckpt}@{ckpt['step']}"  # converted: no step
    md, text_md, text_rows = {}, [], []
    if meta["kind"] == "synthetic":
        md = evaluate_synthetic(args, model, meta, model_name)
    elif meta["kind"] != "pretrained":  # no p*: the held-out half of its own val split
        lines, text_rows = evaluate_text(args, model, np.asarray(corpus.open_split(args.data_dir, "val", meta)),
                                         tokenizer, f"{args.data_dir} (val)")
        text_md += lines
    if args.text:
        lines, rows = evaluate_text(args, model, extra_text, tokenizer, os.path.basename(args.text), fit_text)
        text_md, text_rows = text_md + [""] + lines, text_rows + rows
    if text_rows:
        reporting.write_csv(os.path.join(args.out_dir, "text.csv"), text_rows)
        reporting.plot_text(text_rows, os.path.join(args.out_dir, "text_frontier.png"))
    heads = "a MinP+ head fitted at each temperature"
    if args.head:
        heads = ("the given head at every temperature" if len(args.head) == 1 else "the given heads at T = "
                 f"{', '.join(f'{T:g}' for T in args.given_head)}, a head fitted at each other temperature")
    header = [f"# Evaluation of {model_name} on {args.data_dir or os.path.basename(args.text)}", "",
              f"Temperatures {', '.join(f'{T:g}' for T in args.temperatures)}; {args.windows} windows per half; "
              f"{heads}" + (f"; frontier grid {args.t_grid[0]:g}..{args.t_grid[-1]:g} ({len(args.t_grid)} "
                            f"temperatures); {args.bootstrap} bootstrap resamples." if md else ".")]
    reporting.write_summary(os.path.join(args.out_dir, "summary.md"), header, md, text_md)
    written = sorted(f for f in os.listdir(args.out_dir) if f.endswith((".csv", ".md", ".png")))
    print(f"wrote {args.out_dir}: {', '.join(written)} in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
