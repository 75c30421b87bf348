"""The reproduction check: how claimed tables are compared with a rerun, and a pinned short run.

The pinned figures are what this code gives on the CPU; a change to the data generators, the
model, the optimiser or the schedule moves them, and then this test says so before the docs'
figures silently stop reproducing (re-run `python -m bench.reproduce` and update both)."""
import hashlib
import json
import os

import pytest

import data
import word_problems
from bench.reproduce import check_docs, compare_table, tables_in
from train import main as train_main

CLAIMED = """# Results

<!-- reproduce: task -->
| sampler | T = 1 | T = 2 |
| --- | ---: | ---: |
| **top_p tuned** | 45.8% (43.6–48.0%), p 0.3 | 41.6% (39.5–43.8%), p 0.3 |
| temperature | 29.9% (28.0–32.0%) | 18.1% (16.4–19.8%) |

| not | checked |
| --- | --- |
| a | 1 |
"""

RERUN = """| sampler | T = 0.7 | T = 1 | T = 2 |
| --- | ---: | ---: | ---: |
| temperature | 1.0% (0.5–2.0%) | 30.5% (28.5–32.6%) | 17.0% (15.4–18.7%) |
| top_p tuned | 2.0% (1.0–3.0%), p 0.9 | 47.9% (45.7–50.1%), p 0.3 | 41.0% (38.9–43.2%), p 0.3 |
"""


def test_tables_in_finds_markers_headers_and_rows():
    tables = tables_in(CLAIMED)
    assert [(m, h) for m, h, _, _, _ in tables] == [(("task", None), ["sampler", "T = 1", "T = 2"]),
                                                    (None, ["not", "checked"])]
    assert tables[0][4] == "Results"
    assert tables[0][2][1] == ["temperature", "29.9% (28.0–32.0%)", "18.1% (16.4–19.8%)"]


def test_a_rerun_inside_the_claimed_intervals_passes(tmp_path):
    doc = tmp_path / "README.md"
    doc.write_text(CLAIMED)
    assert check_docs([str(doc)], RERUN, "task") == (1, [])
    assert check_docs([str(doc)], RERUN, "other") == (0, [])


def test_a_figure_outside_its_interval_names_table_row_and_column():
    _, header, rows, _, _ = tables_in(CLAIMED)[0]
    moved = RERUN.replace("17.0% (15.4", "12.0% (10.4")
    problems = compare_table(header, rows, tables_in(moved), tolerance=0.0)
    assert len(problems) == 1
    assert "'temperature'" in problems[0] and "'T = 2'" in problems[0] and "12" in problems[0]


def test_a_changed_tuned_value_or_missing_row_is_reported():
    _, header, rows, _, _ = tables_in(CLAIMED)[0]
    problems = compare_table(header, rows, tables_in(RERUN.replace("p 0.3 |\n", "p 0.5 |\n")), 0.0)
    assert len(problems) == 1 and "'T = 2'" in problems[0] and "p 0.5" in problems[0]
    problems = compare_table(header, rows, tables_in(RERUN.replace("| temperature", "| top_k")), 0.0)
    assert problems == ["row 'temperature': not in the rerun"]


def test_a_section_picks_among_tables_with_the_same_columns(tmp_path):
    rerun = ("## TV\n\n| sampler | H = 2 |\n| --- | ---: |\n| min_p | 0.05 |\n\n"
             "## garbage\n\n| sampler | H = 2 |\n| --- | ---: |\n| min_p | 0.001 |\n")
    doc = tmp_path / "results.md"
    doc.write_text('<!-- reproduce: s "garbage" -->\n| sampler | H = 2 |\n| --- | ---: |\n| min_p | 0.001 |\n')
    assert check_docs([str(doc)], rerun, "s") == (1, [])
    doc.write_text('<!-- reproduce: s "TV" -->\n| sampler | H = 2 |\n| --- | ---: |\n| min_p | 0.001 |\n')
    assert "claimed '0.001', rerun '0.05'" in check_docs([str(doc)], rerun, "s")[1][0]


def test_numbers_without_interval_must_match_as_printed():
    claimed = tables_in("| run | val loss |\n| --- | ---: |\n| python train.py | 2.2890 |\n")[0]
    rerun = tables_in("| run | step | val loss |\n| --- | ---: | ---: |\n| python train.py | 800 | 2.2893 |\n")
    assert compare_table(claimed[1], claimed[2], rerun, 0.0)[0].startswith("row 'python train.py', column 'val loss'")
    assert compare_table(claimed[1], claimed[2], rerun, 5e-4) == []
    missing = compare_table(["run", "KL"], claimed[2], rerun, 0.0)
    assert missing == ["no table in the rerun has the columns run | KL"]


# A short run pinned to what this code gives on the CPU (a minute in all): the data generators
# exactly, the training losses to 1e-3 (other CPUs round matrix products differently).
PINNED = {"synthetic_train_md5": "bc761f4e858978f876cc14897c4766a6",
          "task_train_md5": "4ed99c889790f454cf300d8d13a13b54",
          "val_loss_step_60": 2.8011, "kl_truth_step_60": 0.4924}


def md5(path):
    return hashlib.md5(open(path, "rb").read()).hexdigest()


def test_the_default_pipeline_gives_its_pinned_figures(tmp_path):
    syn, arith, out = (str(tmp_path / name) for name in ("syn", "arith", "out"))
    data.prepare_synthetic(syn, train_tokens=300_000, val_tokens=20_000, seed=0)
    word_problems.prepare_task(arith, train_problems=2000, val_problems=200, eval_problems=100)
    train_main(["--data_dir", syn, "--out_dir", out, "--max_steps", "60", "--eval_interval", "60",
                "--eval_batches", "4", "--truth_windows", "8"])
    with open(os.path.join(out, "metrics.jsonl")) as f:
        last = [row for row in map(json.loads, f) if "val_loss" in row][-1]
    got = {"synthetic_train_md5": md5(os.path.join(syn, "train.bin")),
           "task_train_md5": md5(os.path.join(arith, "train.bin")),
           "val_loss_step_60": round(last["val_loss"], 4), "kl_truth_step_60": round(last["kl_truth"], 4)}
    assert got["synthetic_train_md5"] == PINNED["synthetic_train_md5"]
    assert got["task_train_md5"] == PINNED["task_train_md5"]
    assert got["val_loss_step_60"] == pytest.approx(PINNED["val_loss_step_60"], abs=1e-3)
    assert got["kl_truth_step_60"] == pytest.approx(PINNED["kl_truth_step_60"], abs=1e-3)
