"""MinP+ auto in evaluate.py: the head picks its own temperature, as `train.py --temperature auto`
does: of the heads fitted at each temperature of the grid on the tuning text, the one with the
least cross-entropy on that text, at its temperature. Here it joins the synthetic language's
tables as one more setting and one more family (its strength lambda at its temperature).
"""
import numpy as np

import reporting

LABEL = "minpplus auto"


def fitted_ce(grid, tune_means):
    """[(T, index of MinP+ lambda = 1 at T, its CE on the tuning text)]; inf where it removed a target
    (a fitted head whose weights are all > 0 removes nothing)."""
    out = []
    for i, s in enumerate(grid):
        if s["method"] == "minpplus" and s["param"] == 1.0:
            ce = tune_means["ce"][i] if tune_means["ce_inf_share"][i] == 0 else np.inf
            out.append((s["temperature"], i, float(ce)))
    if not out:
        raise ValueError("MinP+ auto needs the minpplus settings at lambda = 1 in the grid")
    return out


def choose(grid, tune_means):
    """(T*, setting index of MinP+ at T* with lambda = 1, per-temperature rows): T* has the least CE
    on the tuning text (ties: the lower temperature)."""
    rows = fitted_ce(grid, tune_means)
    T, i, _ = min(rows, key=lambda r: (r[2], r[0]))
    return T, i, rows


def plain_index(grid, T):
    return next(i for i, s in enumerate(grid) if s["method"] == "temperature" and s["temperature"] == T)


def markdown(grid, rows, chosen, tune_means, report_means, shown=(0.9, 1.0, 1.1, 1.2, 1.3, 1.5, 2.0)):
    """The CE that picked T* at a few temperatures (and at T*), with the report half's figures."""
    lines = [f"MinP+ auto picks T = {chosen:g}: the head fitted at each temperature of the grid on the tune half, "
             "the least cross-entropy on that half kept (`train.py --temperature auto`'s rule). Per temperature "
             "(tune-half CE picks; the report half's CE, TV to p* and entropy beside):", "",
             "| T | CE plain p_T (tune) | CE MinP+ (tune) | CE MinP+ (report) | TV MinP+ | TV plain "
             "| H MinP+ | H plain |",
             "| ---: |" + " ---: |" * 7]
    for T, i, ce in rows:
        if not (any(abs(T - s) < 1e-9 for s in shown) or T == chosen):
            continue
        p = plain_index(grid, T)
        mark = " (chosen)" if T == chosen else ""
        lines.append(f"| {T:g}{mark} | {reporting.fmt(tune_means['ce'][p])} | {reporting.fmt(ce)} | "
                     f"{reporting.fmt(report_means['ce'][i])} | {reporting.fmt(report_means['tv'][i])} | "
                     f"{reporting.fmt(report_means['tv'][p])} | {reporting.fmt(report_means['entropy'][i], 3)} | "
                     f"{reporting.fmt(report_means['entropy'][p], 3)} |")
    return lines
