"""evaluate.py's output: markdown tables, CSV files and the optional plots (matplotlib)."""
import csv
import math
import os

import numpy as np

import metrics
import script


def fmt(x, digits=4):
    return "—" if x is None or not np.isfinite(x) else f"{x:.{digits}f}"


def fmt_ci(diff, lo, hi, digits=4):
    return "—" if not np.isfinite(diff) else f"{diff:+.{digits}f} [{lo:+.{digits}f}, {hi:+.{digits}f}]"


def write_csv(path, rows):
    def write(tmp):
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    script.write_atomically(path, write)


def result_rows(model_name, grid, report_means):
    """results.csv's rows: one per setting of the grid, its metrics on the report half."""
    rows = []
    for i, s in enumerate(grid):
        row = {"model": model_name, "temperature": s["temperature"], "method": s["method"],
               "param": "" if s["param"] is None else s["param"]}
        row.update({c: f"{report_means[c][i]:.6g}" for c in metrics.COLUMNS})
        rows.append(row)
    return rows


def per_temperature_markdown(rows, knobs, report_means, tv_diffs):
    """One row per (T, sampler) of rows {(T, name): setting index}; knobs[i] names setting i's value."""
    header = "| T | sampler | G | L | TV | ΔTV vs MinP+ λ=1 [95 % CI] | KL(p*‖q) | KL = ∞ | H(q) | CE | CE = ∞ |"
    lines = [header, "| ---: | --- |" + " ---: |" * 9]
    for (T, name), i in rows.items():
        m = {c: report_means[c][i] for c in metrics.COLUMNS}
        shown = f"{name} ({knobs[i]})" if name.endswith("tuned") else name
        lines.append(f"| {T:g} | {shown} | {fmt(m['garbage'])} | "
                     f"{fmt(m['lost'])} | {fmt(m['tv'])} | {fmt_ci(*tv_diffs[(T, name)])} | {fmt(m['kl'])} | "
                     f"{m['kl_inf_share']:.1%} | {fmt(m['entropy'], 3)} | {fmt(m['ce'])} | {m['ce_inf_share']:.1%} |")
    return lines


def matched_markdown(table, level_names, what, ref):
    """Rows: families; columns: diversity levels; cells: quality and the paired difference vs ref."""
    lines = ["| sampler | " + " | ".join(level_names) + " |", "| --- |" + " ---: |" * len(level_names)]
    for family, (point, diffs) in table.items():
        cells = [fmt(v) + (f" ({fmt_ci(*(part[j] for part in diffs[ref]))})" if ref in diffs else "")
                 for j, v in enumerate(point)]
        lines.append(f"| {family} | " + " | ".join(cells) + " |")
    return [f"{what}; in brackets the paired difference vs {ref} with its 95 % bootstrap interval "
            f"(negative: closer to p* than {ref}).", ""] + lines


def samples_markdown(stats):
    keys = list(next(iter(stats.values())))
    lines = ["| T | sampler | " + " | ".join(keys) + " |", "| ---: | --- |" + " ---: |" * len(keys)]
    for (T, name), s in stats.items():
        lines.append(f"| {T:g} | {name} | " + " | ".join(fmt(s[k], 3) for k in keys) + " |")
    return lines


def write_summary(path, header, md, text_md):
    """summary.md: the header, then each section evaluate.py produced, in reading order."""
    sections = [("Per temperature (baselines tuned on the tune half against p*; MinP+ fitted there from text)",
                 md.get("per_temperature")),
                ("MinP+ picks its temperature", md.get("auto")),
                ("Matched diversity: TV", md.get("matched_tv")),
                ("Matched diversity: TV against plain temperature", md.get("matched_tv_vs_temperature")),
                ("Matched diversity: garbage", md.get("matched_garbage")),
                ("Matched kept mass 1 − L: over all temperatures, then at each", md.get("kept")),
                ("Samples (continuations of held-out prompts)", md.get("samples")),
                ("Real text", text_md)]
    lines = header + [""]
    for title, body in sections:
        if body:
            lines += [f"## {title}", ""] + body + [""]
    script.write_text(path, "\n".join(lines))


def plot_results(out_dir, grid, report_means, temperatures, curves, methods):
    """garbage_vs_lost.png and frontier.png; False when matplotlib is not installed."""
    try:
        from matplotlib.figure import Figure  # optional: no pyplot, so no global backend state
    except ImportError:
        return False
    for name, draw, size in (("garbage_vs_lost.png", plot_garbage_vs_lost, (4.5 * len(temperatures), 4)),
                             ("frontier.png", plot_frontiers, (11, 4.5))):
        fig = Figure(figsize=size)
        draw(fig, grid, report_means, temperatures, curves, methods)
        fig.tight_layout()
        script.write_atomically(os.path.join(out_dir, name), lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    return True


def plot_garbage_vs_lost(fig, grid, report_means, temperatures, curves, methods):
    """One panel per temperature: each method's knob traced from plain sampling (L = 0) onwards."""
    for k, T in enumerate(temperatures):
        ax = fig.add_subplot(1, len(temperatures), k + 1)
        for method in methods:
            idx = [i for i, s in enumerate(grid) if s["temperature"] == T and s["method"] in (method, "temperature")]
            idx.sort(key=lambda i: (report_means["lost"][i], -report_means["garbage"][i]))
            ax.plot([report_means["lost"][i] for i in idx], [report_means["garbage"][i] for i in idx], ".-",
                    label=method, lw=2.5 if method in ("minpplus", "min_p") else 1)
        ax.set_xscale("symlog", linthresh=1e-4)
        ax.set(yscale="log", xlim=(0, None), title=f"T = {T:g}", xlabel="lost L (p* mass removed)",
               ylabel="garbage G (q mass where p* = 0)")
        ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)


def plot_frontiers(fig, grid, report_means, temperatures, curves, methods):
    """TV and garbage against H(q) along each family's frontier (segments chosen on the tune half):
    curves {"tv" or "garbage": {family: (x, y)}}."""
    for k, (y_name, label) in enumerate((("tv", "TV(p*, q)"), ("garbage", "garbage G (q mass where p* = 0)"))):
        ax = fig.add_subplot(1, 2, k + 1)
        for family, (x, y) in curves[y_name].items():
            ax.plot(x, y, "-", label=family, lw=2.5 if family in ("minpplus", "min_p", "temperature") else 1)
        ax.set(xlabel="entropy H(q), nats (diversity)", ylabel=label, title=f"{y_name}: quality at each diversity")
        ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)


def plot_text(rows, path):
    """text_frontier.png from text.csv's rows, a row of two panels per source: the share of the
    real next tokens each setting removes, and its cross-entropy where finite, against H(q). Plain
    temperature and MinP+ as fitted (λ = 1) are lines over T; every other setting is a dot. False
    without matplotlib."""
    try:
        from matplotlib.figure import Figure  # optional: no pyplot, so no global backend state
    except ImportError:
        return False
    sources = list(dict.fromkeys(r["source"] for r in rows))
    fig = Figure(figsize=(11, 4.2 * len(sources)))
    for k, source in enumerate(sources):
        mine = [r for r in rows if r["source"] == source]
        for j, (y_name, label) in enumerate((("removed", "share of real next tokens removed"),
                                             ("ce", "cross-entropy, nats per token"))):
            ax = fig.add_subplot(len(sources), 2, 2 * k + j + 1)
            for n, method in enumerate(dict.fromkeys(r["method"] for r in mine)):
                color = f"C{n}"
                dots = [r for r in mine if r["method"] == method and math.isfinite(r[y_name])]
                line = sorted((r for r in dots if method == "temperature" or (method == "minpplus"
                               and float(r["param"]) == 1)), key=lambda r: r["temperature"])
                ax.plot([r["entropy"] for r in dots], [r[y_name] for r in dots], ".", color=color, ms=3,
                        label=None if line else method)
                if line:
                    ax.plot([r["entropy"] for r in line], [r[y_name] for r in line], "-", color=color, lw=2,
                            label=method + (" (λ = 1)" if method == "minpplus" else "") + ", over T")
            for r in mine:
                if r["auto"] or (r["method"] == "temperature" and r["temperature"] == 1):
                    ax.plot(r["entropy"], r[y_name], "*" if r["auto"] else "o", ms=12, color="k", mfc="none")
            if y_name == "ce":  # zoom on the best CE: the differences that matter are hundredths of a nat
                best = min(r["ce"] for r in mine)
                ax.set_ylim(best - 0.01, best + 0.12)
            if y_name == "removed":
                ax.set_yscale("symlog", linthresh=1e-3)
                ax.legend(fontsize=7, title="star: MinP+ auto; circle: T = 1", title_fontsize=7)
            ax.set(xlabel="entropy H(q), nats (diversity)", ylabel=label, title=source.split(",")[0]
                   + (" (zoomed)" if y_name == "ce" else ""))
            ax.grid(True, alpha=0.3)
    fig.tight_layout()
    script.write_atomically(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    return True
