"""The real-text verdict of `evaluate.py --text B.txt [--fit_text A.txt]`, for any checkpoint.

Real text has no p*, so each setting q (a sampler, its knob, the temperature) is judged on the
text's real next tokens y:
    CE       -log q(y) per token, infinite where q removed y; bits per byte where it is finite
    removed  the share of real next tokens q removes: real text's stand-in for lost mass, and
             what makes a truncation's CE infinite
    H(q)     the entropy of q (diversity)
MinP+ heads are fitted on the fit text (A, or the first half of B's windows) at every temperature
of the grid, all from the same forward passes; MinP+ auto is the head with the least CE on the fit
text, at its temperature (`train.py --temperature auto`'s rule). Every figure comes from the report
windows (B's, or B's second half), with 95 % bootstrap intervals over windows; frontiers (the best
CE, or the least removed share, at each entropy along a family's knob x temperature) pick their
segments on the report windows themselves (real text has no p* to tune on, and every family gets
the same advantage). Logits are taken batch by batch and never kept: at a 49,152-token vocabulary,
16 K positions' logits are 3 GB.
"""
import math

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

import corpus
import data
import metrics
import reporting
import train_head
from head import MinPPlusHead
from sample import filter_logits

AUTO = "minpplus auto"


def tiled_windows(tokens, n_windows, length):
    """Non-overlapping windows (n, length) of any text, spread over it (real text has no p*)."""
    starts = np.concatenate(corpus.tiling_batches(tokens, n_windows, length - 1, n_windows * (length - 1)))
    return np.stack([np.asarray(tokens[s:s + length]) for s in starts]).astype(np.int64)


def fit_and_report_windows(tokens, fit_tokens, n_windows, length):
    """(fit windows, report windows): n of each from fit_tokens and tokens, or without fit_tokens the
    two halves of 2n windows of tokens."""
    if fit_tokens is not None:
        return tiled_windows(fit_tokens, n_windows, length), tiled_windows(tokens, n_windows, length)
    windows = tiled_windows(tokens, 2 * n_windows, length)
    return windows[:len(windows) // 2], windows[len(windows) // 2:]


@torch.no_grad()
def logit_batches(model, windows, batch_size):
    """(first window, fp32 logits (b, L, V) on the CPU, targets (b, L)) for windows (n, L + 1)."""
    device = next(model.parameters()).device
    for start in range(0, len(windows), batch_size):
        w = torch.from_numpy(windows[start:start + batch_size])
        yield start, model(w[:, :-1].to(device)).float().cpu(), w[:, 1:]


def fit_statistics(model, windows, temperatures, stats_head, batch_size):
    """[(S, b, log p_y)] of the windows' positions at each temperature, from one forward per batch."""
    parts = []
    for _, logits, y in tqdm(logit_batches(model, windows, batch_size), total=math.ceil(len(windows) / batch_size),
                             desc="fit text", leave=False, dynamic_ncols=True):
        parts.append(stats_head.bucket_stats(logits.reshape(-1, logits.size(-1)), y.reshape(-1),
                                             temperatures=temperatures))
    return [tuple(torch.cat(p) for p in zip(*(batch[i] for batch in parts))) for i in range(len(temperatures))]


def heads_and_choice(stats, temperatures, epochs, given=None):
    """({T: head}, T*, rows): a head fitted at each T (or the given one: {None: head} at every T,
    or {T: head}), each T's CE of plain p_T and of its head on the fit text, T* the least head CE."""
    heads, rows, given = {}, [], given or {}
    for T, st in zip(tqdm(temperatures, desc="fitting heads", leave=False, dynamic_ncols=True), stats):
        head = given.get(None, given.get(T))
        if head is None:
            head = train_head.fit_head(MinPPlusHead(), st, epochs=epochs)
        heads[T] = head.requires_grad_(False)
        with torch.no_grad():
            rows.append({"temperature": T, "fit_ce_plain": (-st[2]).mean().item(),
                         "fit_ce_head": head.loss_from_stats(*st).item(),
                         "weight_at_0": head.weight_shares()[0].item()})
    chosen = min(rows, key=lambda r: (r["fit_ce_head"], r["temperature"]))["temperature"]
    return heads, chosen, rows


def position_metrics(q_logits, targets):
    """metrics.window_sums' inputs (garbage, lost, tv, entropy, kl, ce; (..., ) each) on real text:
    lost is 1 where q removed the real next token, garbage, tv and kl 0 (no p* to measure them)."""
    log_q = F.log_softmax(q_logits.float(), -1)
    removed = torch.isneginf(log_q)
    log_q_y = log_q.gather(-1, targets[..., None])[..., 0]
    entropy = -(log_q.exp() * log_q.masked_fill(removed, 0.0)).sum(-1)
    zero = torch.zeros_like(entropy, dtype=torch.float64)
    removed_y = torch.isneginf(log_q_y)
    return {"garbage": zero, "lost": removed_y.double(), "tv": zero, "entropy": entropy.double(), "kl": zero,
            "ce": torch.where(removed_y, torch.inf, -log_q_y).double()}


def report_sums(model, windows, grid, params_of, batch_size):
    """(len(grid), W, len(metrics.STATS)) per-window sums of every setting on the report windows."""
    out = np.zeros((len(grid), len(windows), len(metrics.STATS)))
    bar = tqdm(total=len(grid) * math.ceil(len(windows) / batch_size), desc="settings x batches", leave=False,
               dynamic_ncols=True)
    for start, logits, y in logit_batches(model, windows, batch_size):
        b, L, V = logits.shape
        flat = logits.reshape(-1, V)
        for i, setting in enumerate(grid):
            q = filter_logits(flat, setting["method"], **params_of(setting)).view(b, L, V)
            out[i, start:start + b] = metrics.window_sums(position_metrics(q, y))
            bar.update()
    bar.close()
    return out


def ce_all(means_):
    """The mean CE over every position: infinite when any real next token was removed (metrics.means)."""
    return np.asarray(means_["ce_all"])


def paired_ce_diff(sums, i, ref, draws):
    """(CE of setting i - CE of setting ref, 95 % interval) over the same bootstrap draws of windows."""
    full = ce_all(metrics.means(sums[[i, ref]].sum(1)))
    boot = ce_all(metrics.means(np.einsum("bw,swk->bsk", draws, sums[[i, ref]])))
    d = boot[:, 0] - boot[:, 1]
    if not np.isfinite(full).all():
        return np.nan, np.nan, np.nan
    return full[0] - full[1], np.percentile(d, 2.5), np.percentile(d, 97.5)


def search_markdown(rows, chosen, grid, report, index):
    """The issue's table: at each T, CE of plain p_T and of MinP+ fitted at T (fit text, report text)."""
    lines = [f"MinP+ auto picks T = {chosen:g} (the least CE of a head on the fit text).", "",
             "| T | CE p_T (fit) | CE MinP+ (fit) | CE p_T (report) | CE MinP+ (report) | H(p_T) | H(MinP+) | "
             "MinP+ weight at τ = 0 |", "| ---: |" + " ---: |" * 7]
    for r in rows:
        T = r["temperature"]
        p, h = index[("temperature", T, None)], index[("minpplus", T, 1.0)]
        mark = " (auto)" if T == chosen else ""
        lines.append(f"| {T:g}{mark} | {r['fit_ce_plain']:.4f} | {r['fit_ce_head']:.4f} | "
                     f"{reporting.fmt(ce_all(report)[p])} | {reporting.fmt(ce_all(report)[h])} | "
                     f"{report['entropy'][p]:.3f} | {report['entropy'][h]:.3f} | {r['weight_at_0']:.2f} |")
    return lines


def settings_markdown(named, grid, sums, report, draws, bytes_per_token, index):
    """Named settings {(T, name): index}: CE, ΔCE vs the model at T = 1, bits per byte, removed, H(q)."""
    ref = index[("temperature", 1.0, None)]
    lines = ["| T | sampler | CE (nats/token) | ΔCE vs the model at T = 1 [95 % CI] | bits per byte | removed | H(q) |",
             "| ---: | --- |" + " ---: |" * 5]
    ce = ce_all(report)
    for (T, name), i in named.items():
        bpb = ce[i] / math.log(2) / bytes_per_token
        diff = reporting.fmt_ci(*paired_ce_diff(sums, i, ref, draws))
        lines.append(f"| {T:g} | {name} | {reporting.fmt(ce[i])} | {diff} "
                     f"| {reporting.fmt(bpb)} | {report['lost'][i]:.2%} | {report['entropy'][i]:.3f} |")
    return lines


def frontier_markdown(fams, report, sums, levels, level_names, draws, plain):
    """At matched entropy: CE along each family's frontier (plain temperature in every family), paired
    vs temperature; and the share of real next tokens each truncation removes along its own frontier
    (its knob x temperature without plain sampling, which removes nothing), paired vs min-p."""
    truncations = {f: [(a, b) for a, b in segs if a not in plain and b not in plain]
                   for f, segs in fams.items() if f not in ("temperature", "minpplus", AUTO)}
    lines = []
    for y_name, fams_here, ref, what in (
            ("ce_all", fams, "temperature",
             "CE (nats/token; — where every setting at that entropy removes a real token)"),
            ("lost", truncations, "min_p", "Share of real next tokens removed by each truncation")):
        if ref not in fams_here:
            continue
        with np.errstate(invalid="ignore"):  # an infinite CE times a zero weight: that segment is skipped
            table = metrics.matched_table(fams_here, report, sums, levels, draws, "entropy", y_name, refs=(ref,))
        md = reporting.matched_markdown(table, level_names, f"{what} at matched entropy H(q)", ref)
        lines += [md[0].replace("closer to p* than", "better than")] + md[1:] + [""]
    return lines


@torch.no_grad()
def continuation_nll(model, prompts, new):
    """Mean -log p per new token under the plain model (T = 1) of continuations new (B, N) of prompts
    (B, P); generate's -1 after a row's EOS are left out."""
    device = next(model.parameters()).device
    prompts, new = torch.as_tensor(np.asarray(prompts)), torch.as_tensor(np.asarray(new))
    full = torch.cat([prompts, new.clamp_min(0)], 1).to(device)
    log_p = F.log_softmax(model(full[:, :-1]).float(), -1)[:, prompts.size(1) - 1:].cpu()
    nll = -log_p.gather(-1, new.clamp_min(0)[..., None])[..., 0]
    valid = new >= 0
    return (torch.where(valid, nll, 0.0).sum() / valid.sum().clamp_min(1)).item()


def verdict(model, fit, report, grid, args, params_of, named_of, families_of, tokenizer, source):
    """Fit at every temperature of args.text_t_grid on the fit windows, score every setting of grid on
    the report windows. params_of(setting, heads): filter_logits' arguments; named_of(T_auto, index):
    {(T, name): setting index} to show; families_of(T_auto): {family: segments}. Returns (markdown
    lines, text.csv rows, {T: head}, the named settings)."""
    Ts = args.text_t_grid
    n_bytes = sum(len(tokenizer.decode(w[1:].tolist()).encode("utf-8")) for w in report)  # a split character: +-1
    bytes_per_token = n_bytes / report[:, 1:].size
    stats_head = next(iter(args.given_head.values())) if args.given_head else MinPPlusHead()
    if args.given_head and any(not torch.equal(h.tau, stats_head.tau) for h in args.given_head.values()):
        raise ValueError("the --head files have different thresholds: give heads fitted with the same ones")
    stats = fit_statistics(model, fit, Ts, stats_head, args.text_batch)
    heads, T_auto, search = heads_and_choice(stats, Ts, args.head_epochs, args.given_head)
    sums = report_sums(model, report, grid, lambda s: params_of(s, heads), args.text_batch)
    means = metrics.means(sums.sum(1))
    index = {(s["method"], s["temperature"], s["param"]): i for i, s in enumerate(grid)}
    named = named_of(T_auto, index)
    draws = metrics.bootstrap_weights(len(report), args.bootstrap, args.seed)
    plain = {T: index[("temperature", T, None)] for T in args.temperatures}
    levels = [means["entropy"][named[(T_auto, AUTO)]]] + [means["entropy"][i] for i in plain.values()]
    names = [f"H(MinP+ auto, T={T_auto:g}) = {levels[0]:.3f}"] + [f"H(p at T={T:g}) = {h:.3f}"
                                                                  for T, h in zip(plain, levels[1:])]
    ce = ce_all(means)
    one = index[("temperature", 1.0, None)]
    print(f"{source} | MinP+ auto T = {T_auto:g}: CE {ce[named[(T_auto, AUTO)]]:.4f} H(q) {levels[0]:.3f} "
          f"| the model at T = 1: CE {ce[one]:.4f} H {means['entropy'][one]:.3f}")
    lines = [f"### {source}; scored on {len(report)} windows ({report[:, 1:].size:,} positions)", ""]
    lines += search_markdown(search, T_auto, grid, means, index) + [""]
    lines += settings_markdown(named, grid, sums, means, draws, bytes_per_token, index) + [""]
    lines += frontier_markdown(families_of(T_auto), means, sums, levels, names, draws,
                               {index[('temperature', T, None)] for T in Ts})
    rows = [{"source": source, "temperature": s["temperature"], "method": s["method"],
             "param": "" if s["param"] is None else s["param"], "ce": ce[i], "removed": means["lost"][i],
             "entropy": means["entropy"][i], "bits_per_byte": ce[i] / math.log(2) / bytes_per_token,
             "auto": i == named[(T_auto, AUTO)]} for i, s in enumerate(grid)]
    return lines, rows, heads, named


# ----------------------------------------------------------------------------
# evaluate.py's flags for real text

TEXT_T_GRID = "0.8,0.9,1,1.1,1.2,1.3,1.5,2"
TEXT_KNOBS = ["minpplus", "min_p", "top_p"]


def add_arguments(parser):
    group = parser.add_argument_group("real text (--text)")
    group.add_argument("--fit_text", default=None, help="fit MinP+ on this UTF-8 file and report on --text "
                       "(default: the first half of --text's windows)")
    group.add_argument("--text_t_grid", default=TEXT_T_GRID, help="temperatures on real text: MinP+ is fitted at "
                       "each (MinP+ auto picks among them) and every sampler is scored at each")
    group.add_argument("--text_knobs", nargs="+", default=TEXT_KNOBS, metavar="METHOD[=V,V,...]",
                       help="the samplers scored on real text, each over its evaluate grid or the values given "
                            "(minpplus: its strength lambda)")
    group.add_argument("--text_batch", type=int, default=8, help="windows per forward on real text")


def check_arguments(args, knob_grids, parse_grid, check_temperatures):
    """args.text_t_grid -> sorted temperatures (1 and args.temperatures among them); args.text_knobs ->
    {method: values}, minpplus always in (with lambda = 1: MinP+ as fitted and MinP+ auto)."""
    if args.fit_text and not args.text:
        raise ValueError("--fit_text needs --text (the text the verdict is reported on)")
    if args.text_batch < 1:
        raise ValueError(f"--text_batch must be at least 1, got {args.text_batch}")
    args.text_t_grid = check_temperatures(sorted(set(parse_grid(args.text_t_grid)) | set(args.temperatures) | {1.0}),
                                          "--text_t_grid")
    knobs = {}
    for item in args.text_knobs:
        method, _, values = item.partition("=")
        if method not in knob_grids:
            raise ValueError(f"--text_knobs {item!r}: unknown method {method!r}; use one of {', '.join(knob_grids)}")
        try:
            knobs[method] = [float(v) for v in values.split(",")] if values else list(knob_grids[method])
        except ValueError:
            raise ValueError(f"--text_knobs {item!r}: write METHOD=V,V,... with numbers") from None
        if method == "top_k":
            knobs[method] = [int(v) for v in knobs[method]]
    knobs.setdefault("minpplus", [1.0])
    if 1.0 not in knobs["minpplus"]:
        knobs["minpplus"] = sorted(knobs["minpplus"] + [1.0])
    args.text_knobs = knobs


# ----------------------------------------------------------------------------
# The --text file: its tokens as data.py writes them, and enough of them


def text_tokens(path, tokenizer):
    """A UTF-8 file's tokens under the model's tokenizer, in blocks of whole lines: the tokens data.py
    writes for it, whether the tokenizer splits at line breaks itself (data.py's own BPE) or not (a
    converted model's, which may join blank lines into one token)."""
    try:
        with open(path, encoding="utf-8", newline="") as f:
            text = f.read()
    except (FileNotFoundError, IsADirectoryError, UnicodeDecodeError) as e:
        raise ValueError(f"cannot read --text {path} ({e}): pass a UTF-8 text file") from None
    encodings = tokenizer.encode_batch(data.line_blocks(text), add_special_tokens=False)
    return np.asarray([i for enc in encodings for i in enc.ids], dtype=np.int64)


def check_two_windows(tokens, block_size):
    """ValueError unless the text holds two whole windows of block_size tokens (one to fit, one to score)."""
    if (len(tokens) - 1) // block_size < 2:
        raise ValueError(f"the text ({len(tokens):,} tokens) is too short for two windows of the context "
                         f"({block_size}): give a longer text or a smaller --block_size")
