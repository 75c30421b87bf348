"""pass@k and majority vote on the arithmetic task (task.py), exactly, for every sampler.

An answer is one number token then <eos>, so a sampler's chance of each answer is
q(n) = q(n | prompt) · q(<eos> | prompt, n), read off the model's logits after the prompt and after
each candidate number; anything else is malformed. From those chances passk.py gives pass@k and
maj@k per problem with no sampling noise. Candidates are the MAX_CANDIDATES likeliest numbers
after the prompt (and always the right one): every number on the default task (11), so exact
there; on a task with more numbers the rest cast no vote, which can only flatter maj@k a little.

Also here: top_p, min_p and MinP+'s strength λ tuned on the tune problems for maj@16 (and λ for
pass@1, as top_p and min_p already are), and the frontiers: each family's settings (its knob ×
the evaluation's temperatures, greedy decoding joined to its coldest settings) on the
(pass@1, pass@16) and (pass@1, maj@16) planes, chosen on the tune problems, read on the report ones.
"""
import json
import os
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F

import metrics
import passk
import script
from sample import filter_logits

MAX_CANDIDATES = 32
STRENGTH_GRID = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0)  # MinP+ λ; 0: plain at T
BOOTSTRAP = 1000
FAMILY_OFFSETS = (0.02, 0.05, 0.1, 0.15, 0.2, 0.3)  # the frontier table's pass@1 levels: greedy's accuracy minus these


@torch.no_grad()
def padded_logits(model, rows, eos_id, batch_size=2000):
    """fp32 logits (len(rows), V) after the last token of each row (right-padded batches: causal)."""
    device, out = next(model.parameters()).device, []
    for first in range(0, len(rows), batch_size):
        chunk = rows[first:first + batch_size]
        x = torch.full((len(chunk), max(map(len, chunk))), eos_id, dtype=torch.long)
        for i, row in enumerate(chunk):
            x[i, :len(row)] = torch.tensor(row)
        logits = model(x.to(device)).float()
        out.append(logits[torch.arange(len(chunk)), torch.tensor([len(r) - 1 for r in chunk])].cpu())
    return torch.cat(out)


def answer_outcomes(model, problems, number_ids, eos_id):
    """The logits every answer chance needs: first (N, V) after the prompt, cands (N, C) the
    likeliest numbers there (the right one always among them), second (N, C, V) after each."""
    first = padded_logits(model, problems.prompts, eos_id)
    numbers = torch.tensor(sorted(number_ids))
    top = numbers[first[:, numbers].topk(min(MAX_CANDIDATES, len(numbers)), -1).indices]  # (N, C)
    right = torch.tensor(problems.answer_ids)
    missing = ~(top == right[:, None]).any(1)
    top[missing, -1] = right[missing]
    rows = [p + [c] for p, cs in zip(problems.prompts, top.tolist()) for c in cs]
    second = padded_logits(model, rows, eos_id).view(*top.shape, -1)
    return SimpleNamespace(first=first, cands=top, second=second, right=right, eos_id=eos_id)


@torch.no_grad()
def answer_chances(out, method, temperature, **params):
    """(q_right (N,), q_others (N, C − 1)) numpy: the chance the sampler writes the right answer,
    and each other candidate number, then <eos>."""
    N, C, V = out.second.shape
    q1 = F.softmax(filter_logits(out.first, method, temperature=temperature, **params), -1)
    q2 = F.softmax(filter_logits(out.second.view(-1, V), method, temperature=temperature, **params), -1)
    q = (q1.gather(1, out.cands) * q2.view(N, C, V)[..., out.eos_id]).double()
    is_right = out.cands == out.right[:, None]
    return q[is_right].numpy(), q[~is_right].view(N, C - 1).numpy()


def per_problem(out, method, temperature, ks=passk.KS, maj_ks=passk.MAJ_KS, **params):
    """{"pass@k": (N,), "maj@k": (N,)}: each problem's exact chances under one sampler."""
    q_right, q_others = answer_chances(out, method, temperature, **params)
    scores = {f"pass@{k}": passk.pass_at_k(q_right, k) for k in ks}
    return scores | {f"maj@{k}": passk.maj_at_k(q_right, q_others, k) for k in maj_ks}


def row_fields(scores, draws):
    """task_results.json's new fields: each figure's mean over the problems and its 95 % bootstrap interval."""
    fields = {}
    for name, values in scores.items():
        lo, hi = passk.bootstrap_ci(values, draws)
        fields |= {name: float(values.mean()), f"{name}_ci": [float(lo), float(hi)]}
    return fields


def tuned_for_votes(tune_out, temperature, heads, top_p_grid, min_p_grid):
    """(label, method, params) of the samplers tuned on the tune problems beyond task.py's own: λ of
    the answer-positions head for pass@1 and for maj@16, top_p and min_p for maj@16."""
    def best(method, name, grid, objective, **fixed):
        value = {v: per_problem(tune_out, method, temperature, ks=(1,), maj_ks=(16,) if objective == "maj@16"
                                else (), **fixed, **{name: v})[objective].mean() for v in grid}
        return max(grid, key=lambda v: (value[v], -grid.index(v)))  # ties: the first in the grid

    head = heads["answer"]
    return [("MinP+ answer λ tuned pass@1", "minpplus",
             {"head": head, "head_strength": best("minpplus", "head_strength", STRENGTH_GRID, "pass@1", head=head)}),
            ("MinP+ answer λ tuned maj@16", "minpplus",
             {"head": head, "head_strength": best("minpplus", "head_strength", STRENGTH_GRID, "maj@16", head=head)}),
            ("top_p tuned maj@16", "top_p", {"top_p": best("top_p", "top_p", top_p_grid, "maj@16")}),
            ("min_p tuned maj@16", "min_p", {"min_p": best("min_p", "min_p", min_p_grid, "maj@16")})]


# ----------------------------------------------------------------------------
# Frontiers: the most pass@16 (maj@16) each family reaches at each pass@1


def family_settings(top_p_grid, min_p_grid):
    """{family: [(method, knob name, knob values)]}: the knob's values from plain sampling onwards."""
    return {"temperature": ("temperature", None, [None]),
            "top_p": ("top_p", "top_p", sorted(top_p_grid, reverse=True)),
            "min_p": ("min_p", "min_p", sorted(min_p_grid)),
            "MinP+ all positions": ("minpplus", "head_strength", list(STRENGTH_GRID)),
            "MinP+ answer positions": ("minpplus", "head_strength", list(STRENGTH_GRID))}


def family_points(outs, temperature, heads, top_p_grid, min_p_grid):
    """{(family, T, knob value): {"tune"/"report": {"pass@1", "pass@16", "maj@16": (N,)}}} at one temperature."""
    points = {}
    for family, (method, name, values) in family_settings(top_p_grid, min_p_grid).items():
        for v in values:
            params = {} if name is None else {name: v}
            if method == "minpplus":
                params["head"] = heads["answer" if "answer" in family else "all"]
            points[family, temperature, v] = {k: per_problem(o, method, temperature, ks=(1, 16), maj_ks=(16,),
                                                             **params) for k, o in outs.items()}
    return points


def frontiers(points, greedy, temperatures, top_p_grid, min_p_grid, seed=0):
    """{"levels": pass@1 levels, y: {family: (point, {other: (diff, lo, hi)})}, "curves": {y: {family:
    (x, y)}}} for y in pass@16 and maj@16; greedy: {"tune"/"report": its per-problem scores}."""
    n_report = len(greedy["report"]["pass@1"])
    draws = metrics.bootstrap_weights(n_report, BOOTSTRAP, seed)
    top = float(greedy["report"]["pass@1"].mean())
    levels = [top - d for d in FAMILY_OFFSETS]
    out = {"levels": levels, "curves": {}}
    for y in ("pass@16", "maj@16"):
        curves, dense_curves = {}, {}
        for family, (_, _, values) in family_settings(top_p_grid, min_p_grid).items():
            nodes = [greedy] + [points[family, T, v] for T in temperatures for v in values]
            index = {(T, v): 1 + t * len(values) + j for t, T in enumerate(temperatures) for j, v in enumerate(values)}
            segments = [(0, index[temperatures[0], v]) for v in values]  # greedy is T -> 0 of every knob
            for t, T in enumerate(temperatures):
                for j, v in enumerate(values):
                    if t + 1 < len(temperatures):
                        segments.append((index[T, v], index[temperatures[t + 1], v]))
                    if j + 1 < len(values):
                        segments.append((index[T, v], index[T, values[j + 1]]))
            stack = {h: {m: np.stack([n[h][m] for n in nodes]) for m in ("pass@1", y)} for h in ("tune", "report")}
            tune_x, tune_y = stack["tune"]["pass@1"].mean(1), stack["tune"][y].mean(1)
            reach = (stack["report"]["pass@1"], stack["report"][y], segments)
            curves[family] = passk.best_reachable(tune_x, tune_y, *reach, levels, draws)
            dense = np.linspace(stack["report"]["pass@1"].mean(1).min(), top, 40)
            dense_curves[family] = (dense, passk.best_reachable(tune_x, tune_y, *reach, dense, draws[:1])[0])
        out[y] = passk.frontier_table(curves)
        out["curves"][y] = dense_curves
    return out


def frontier_markdown(result):
    """Per y: families × pass@1 levels, each cell the best y reached; then the leader at each level and
    its margin over the runner-up with the paired 95 % interval."""
    lines = []
    names = [f"pass@1 = {v:.1%}" for v in result["levels"]]
    for y in ("pass@16", "maj@16"):
        table = result[y]
        lines += [f"Best {y} reachable at each pass@1 (report problems; settings chosen on the tune problems):", "",
                  "| family | " + " | ".join(names) + " |", "| --- |" + " ---: |" * len(names)]
        for family, (point, _) in table.items():
            cells = ["—" if not np.isfinite(v) else f"{v:.1%}" for v in point]
            lines.append(f"| {family} | " + " | ".join(cells) + " |")
        lines.append("")
        for j, name in enumerate(names):
            ranked = sorted((p[j], f) for f, (p, _) in table.items() if np.isfinite(p[j]))
            if len(ranked) < 2:
                continue
            (_, second), (best, leader) = ranked[-2], ranked[-1]
            tied = [f for p, f in ranked if best - p < 5e-5]  # the same setting, most often plain temperature's
            diff, lo, hi = (part[j] for part in table[leader][1][second])
            lead = f"{leader} leads with {best:.1%}, {diff:+.1%} [{lo:+.1%}, {hi:+.1%}] over {second}"
            lines.append(f"- at {name}: " + (f"{', '.join(tied)} tie at {best:.1%}" if len(tied) > 1 else lead))
        lines.append("")
    return lines


def passk_markdown(rows, temperature):
    """pass@k and maj@k of greedy and of every sampler at one temperature, 95 % intervals for pass@16 and maj@16."""
    ks = [c for c in rows[0] if c.startswith(("pass@", "maj@")) and not c.endswith("_ci")]
    lines = ["| sampler | " + " | ".join(ks) + " |", "| --- |" + " ---: |" * len(ks)]
    for r in rows:
        if r["method"] == "greedy" or r["temperature"] == temperature:
            cells = [f"{r[k]:.1%}" + (f" ({r[k + '_ci'][0]:.1%}–{r[k + '_ci'][1]:.1%})" if k in ("pass@16", "maj@16")
                                      else "") for k in ks]
            knob = "".join(f" {n} {r[n]:g}" for n in ("top_p", "min_p", "head_strength")
                           if n in r and "tuned" in r["method"])
            lines.append(f"| {r['method']}{knob} | " + " | ".join(cells) + " |")
    return lines


def plot_frontiers(result, greedy_pass1, path):
    """pass@16 and maj@16 against pass@1 along each family's frontier; False without matplotlib."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return False
    fig = Figure(figsize=(11, 4.5))
    for k, y in enumerate(("pass@16", "maj@16")):
        ax = fig.add_subplot(1, 2, k + 1)
        for family, (x, v) in result["curves"][y].items():
            ax.plot(x, v, "-", label=family, lw=2.5 if family.startswith("MinP+ answer") else 1.2)
        ax.axvline(greedy_pass1, color="black", ls="--", lw=1, label="greedy (pass@k = pass@1)")
        ax.set(xlabel="pass@1 (accuracy of one draw)", ylabel=y, title=f"best {y} at each pass@1")
        ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    script.write_atomically(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    return True


def write_report(rows, result, out_dir):
    """task_passk.md (pass@k and maj@k per temperature, the frontiers), task_frontier.json (its numbers, nan
    where a family does not reach a level) and task_passk.png; returns one summary line."""
    greedy = next(r for r in rows if r["method"] == "greedy")
    lines = ["# pass@k and majority vote", ""]
    for T in sorted({r["temperature"] for r in rows if r["method"] != "greedy"}):
        lines += [f"## T = {T:g}", ""] + passk_markdown(rows, T) + [""]
    lines += ["## Frontiers", ""] + frontier_markdown(result)
    md, png = os.path.join(out_dir, "task_passk.md"), os.path.join(out_dir, "task_passk.png")
    script.write_text(md, "\n".join(lines))
    table = {y: {f: {"best": point.tolist(), "vs": {o: [d.tolist() for d in diff] for o, diff in diffs.items()}}
                 for f, (point, diffs) in result[y].items()} for y in ("pass@16", "maj@16")}
    script.write_text(os.path.join(out_dir, "task_frontier.json"), json.dumps({"pass@1": result["levels"], **table}))
    best = max((r for r in rows if r["method"] != "greedy"), key=lambda r: r["maj@16"])
    return (f"greedy pass@1 {greedy['pass@1']:.1%} | best maj@16 {best['maj@16']:.1%} ({best['method']}, T "
            f"{best['temperature']:g}) | best pass@16 {max(r['pass@16'] for r in rows):.1%} | wrote {md}"
            + (f" and {png}" if plot_frontiers(result, greedy["pass@1"], png) else ""))
