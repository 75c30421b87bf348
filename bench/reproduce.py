"""Re-run the CPU-sized studies from nothing and check every figure the docs claim.

    python -m bench.reproduce                          # every study: about an hour on 2 CPU cores
    python -m bench.reproduce --study task             # one study (several: --study default task)
    python -m bench.reproduce --study task --compare_only   # check the docs against outputs already in --work_dir

A table in README.md or docs/*.md is checked when the line `<!-- reproduce: STUDY -->` stands
right above it (`<!-- reproduce: STUDY "SECTION" -->`: only against the rerun's tables under that
heading, where several share their columns). The study's commands run in --work_dir (default
out/reproduce) exactly as a user types them; its outputs are turned into markdown tables by the
same functions the scripts use, and each claimed table must be a part of one of them: every
header cell found in the rerun's header, every row found by its label cells (T, sampler, family,
run). A claimed cell that states an interval, `x (lo–hi)`, passes when the rerun's x lies
inside [lo, hi]; any other number must equal the rerun's as printed, since each run is
deterministic on one machine (`--tolerance` for another machine). A figure that moved is a
line naming the file, the table and the row; the exit status is 1 when any moved. Run it
before every change to the results in the docs.
"""
import argparse
import glob
import json
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MARKER = re.compile(r'<!--\s*reproduce:\s*(\S+)(?:\s+"([^"]+)")?\s*-->')  # study, optional section of the rerun
NUMBER = re.compile(r"[-+−]?\d+(?:,\d{3})*(?:\.\d+)?")
INTERVAL = re.compile(r"^\s*([^\s(]+)\s*\(([^()\s–,]+)\s*[–,]\s*([^()\s]+)\)(.*)$")  # x (lo–hi) and the rest
KEY_COLUMNS = {"t", "sampler", "family", "run"}


def studies(work_dir):
    """name -> (commands, a function of work_dir giving the rerun's markdown text)."""
    w = lambda *parts: os.path.join(work_dir, *parts)
    return {
        "default": ([["data.py", "--out_dir", w("data", "synthetic")],
                     ["train.py", "--data_dir", w("data", "synthetic"), "--out_dir", w("out")]],
                    lambda: default_run_markdown(w("out", "metrics.jsonl"))),
        "synthetic": ([["evaluate.py", "--ckpt", w("out", "ckpt.pt"), "--out_dir", w("eval")]],
                      lambda: read(w("eval", "summary.md"))),
        "task": ([["data.py", "--task", "arithmetic", "--out_dir", w("data", "arith")],
                  ["train.py", "--data_dir", w("data", "arith"), "--out_dir", w("arith")],
                  ["evaluate.py", "--task", w("data", "arith"), "--ckpt", w("arith", "ckpt.pt")]],
                 lambda: task_markdown(w("arith"))),
    }


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def default_run_markdown(metrics_path):
    """The last eval row of a training run: the table the docs quote for `python train.py`."""
    with open(metrics_path) as f:
        evals = [row for row in map(json.loads, f) if "val_loss" in row]
    last = evals[-1]
    kl = f"{last['kl_truth']:.4f}" if "kl_truth" in last else "–"
    return ("| run | step | val loss | KL(p* ‖ p_θ) |\n| --- | ---: | ---: | ---: |\n"
            f"| python train.py | {last['step']} | {last['val_loss']:.4f} | {kl} |\n")


def task_markdown(out_dir):
    """The task tables as `evaluate.py --task` prints them (from task_results.json), and a row with
    the LM's val loss and greedy accuracy."""
    sys.path.insert(0, ROOT)
    import task
    with open(os.path.join(out_dir, "task_results.json")) as f:
        rows = json.load(f)
    with open(os.path.join(out_dir, "metrics.jsonl")) as f:
        val_loss = [row for row in map(json.loads, f) if "val_loss" in row][-1]["val_loss"]
    greedy = next(r for r in rows if r["method"] == "greedy")
    return (task.format_table(rows) + "\n\n| run | val loss | greedy |\n| --- | ---: | ---: |\n"
            f"| the task's LM | {val_loss:.3f} | {greedy['accuracy']:.1%} ({greedy['ci_low']:.1%}–"
            f"{greedy['ci_high']:.1%}) |\n")


# ----------------------------------------------------------------------------
# Markdown tables and their comparison


def split_row(line):
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def clean(cell):
    """A cell as a key: no bold, no spacing differences, lower case."""
    return " ".join(cell.replace("**", "").split()).lower()


def tables_in(text):
    """Every markdown table in text as (marker, header cells, rows of cells, line number, section):
    marker is (study, section wanted or None) or None; section is the heading the table stands under."""
    lines, found, i, section = text.splitlines(), [], 0, ""
    while i < len(lines):
        if lines[i].startswith("#"):
            section = lines[i].lstrip("#").strip()
        is_table = lines[i].lstrip().startswith("|") and i + 1 < len(lines) and set(lines[i + 1].strip()) <= set("|-: ")
        if not is_table:
            i += 1
            continue
        above = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        marker = MARKER.search(above)
        rows, j = [], i + 2
        while j < len(lines) and lines[j].lstrip().startswith("|"):
            rows.append(split_row(lines[j]))
            j += 1
        found.append((marker.groups() if marker else None, split_row(lines[i]), rows, i + 1, section))
        i = j
    return found


def numbers(cell):
    return [float(n.replace("−", "-").replace(",", "")) for n in NUMBER.findall(cell)]


def cell_moved(claimed, rerun, tolerance):
    """Why the rerun's cell contradicts the claimed one, or None when it agrees."""
    interval = INTERVAL.match(claimed.replace("**", ""))
    if interval:
        (x,), (lo,), (hi,) = (numbers(g) for g in interval.groups()[:3])
        new = numbers(rerun)
        if not new:
            return f"rerun has no number ({rerun!r})"
        if not lo - tolerance <= new[0] <= hi + tolerance:
            return f"{new[0]:g} is outside the claimed interval [{lo:g}, {hi:g}] of {x:g}"
        rest = INTERVAL.match(rerun)
        claimed, rerun = interval.group(4), rest.group(4) if rest else ""  # what follows, e.g. a tuned value
    want, got = numbers(claimed), numbers(rerun)
    if len(want) > len(got) or any(abs(a - b) > tolerance for a, b in zip(want, got)):
        return f"claimed {claimed!r}, rerun {rerun!r}"
    return None


def compare_table(header, rows, rerun_tables, tolerance):
    """Lines naming each claimed row that moved, or that the rerun has not; [] when all agree."""
    want = [clean(h) for h in header]
    candidates = [(h, r) for _, h, r, _, _ in rerun_tables if set(want) <= {clean(c) for c in h}]
    if not candidates:
        return [f"no table in the rerun has the columns {' | '.join(header)}"]
    keys = [i for i, h in enumerate(want) if h in KEY_COLUMNS] or [0]
    problems = []
    for row in rows:
        label = tuple(clean(row[i]) for i in keys)
        match = None
        for rerun_header, rerun_rows in candidates:
            column = {clean(c): i for i, c in enumerate(rerun_header)}
            for other in rerun_rows:
                if tuple(clean(other[column[want[i]]]) for i in keys) == label:
                    match = [other[column[h]] for h in want]
                    break
            if match:
                break
        name = " / ".join(row[i] for i in keys)
        if match is None:
            problems.append(f"row {name!r}: not in the rerun")
            continue
        for h, claimed, rerun in zip(header, row, match):
            why = cell_moved(claimed, rerun, tolerance)
            if why:
                problems.append(f"row {name!r}, column {h!r}: {why}")
    return problems


def check_docs(doc_paths, rerun_text, study, tolerance=0.0):
    """(tables checked, lines naming each figure that moved) for the tables marked with this study."""
    rerun_tables = tables_in(rerun_text)
    checked, problems = 0, []
    for path in doc_paths:
        for marker, header, rows, line, _ in tables_in(read(path)):
            if marker is None or marker[0] != study:
                continue
            checked += 1
            title = f"{os.path.relpath(path, ROOT)}:{line} ({study})"
            section = marker[1]
            mine = [t for t in rerun_tables if section is None or t[4] == section]
            problems += [f"{title}: {p}" for p in compare_table(header, rows, mine, tolerance)]
    return checked, problems


def doc_files():
    return [os.path.join(ROOT, "README.md")] + sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))


def run_study(commands):
    for argv in commands:
        print("$ python " + " ".join(argv), flush=True)
        start = time.time()
        subprocess.run([sys.executable, *argv], cwd=ROOT, check=True)
        print(f"  ({time.time() - start:.0f} s)", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--study", nargs="+", default=None, help="default, synthetic, task (default: all; "
                        "synthetic needs default's model)")
    parser.add_argument("--work_dir", default=os.path.join("out", "reproduce"))
    parser.add_argument("--compare_only", action="store_true", help="check the docs against existing outputs")
    parser.add_argument("--tolerance", type=float, default=0.0, help="allowed |difference| on numbers without an "
                        "interval (0: as printed)")
    args = parser.parse_args(argv)
    work_dir = os.path.abspath(args.work_dir)
    all_studies = studies(work_dir)
    names = args.study or list(all_studies)
    unknown = [n for n in names if n not in all_studies]
    if unknown:
        raise SystemExit(f"error: unknown study {unknown[0]!r}: choose from {', '.join(all_studies)}")
    failed = 0
    for name in names:
        commands, rerun = all_studies[name]
        if not args.compare_only:
            run_study(commands)
        checked, problems = check_docs(doc_files(), rerun(), name, args.tolerance)
        print(f"{name}: {checked} table(s) checked, {len(problems)} figure(s) moved")
        for p in problems:
            print("  MOVED " + p)
        failed += len(problems) + (checked == 0)
        if checked == 0:
            print(f"  no table in the docs is marked <!-- reproduce: {name} -->")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
