#!/usr/bin/env bash
# A language model from scratch on a text, timed end to end, to set beside nanoGPT's
# shakespeare_char (best val loss 1.464 nats a character, i.e. 2.11 bits a byte of its ASCII
# text, after 147 s of training on one GPU):
#
#     TEXT=path/to/tinyshakespeare.txt bash bench/shakespeare.sh     # on a GPU; figures under $OUT
#     SMOKE=1 TEXT=path/to/text.txt bash bench/shakespeare.sh        # a few steps on a CPU: checks the script
#
# data.py makes a byte-level BPE of VOCAB tokens (default 1024) and the last 10 % of the bytes
# as val, as nanoGPT keeps the last 10 % of the characters; train.py trains the small preset
# (6 layers, 384 wide, 256 context) compiled in bf16 with nanoGPT's batch (64 x 256) and dropout
# 0.2. The table reports the best val bits per byte of the evals and the training wall time,
# compiling included. Not a test: the figures name the machine they came from.
set -euo pipefail
: "${TEXT:?set TEXT to the text file to train on}"
out="${OUT:-bench_out}"
steps="${STEPS:-2500}"
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
run=(--preset small --batch_size 64 --dropout 0.2 --lr 1e-3 --min_lr 1e-4 --warmup_steps 100
     --max_steps "$steps" --eval_interval $((steps / 10)) --eval_batches 40 --compile)
if [ -n "${SMOKE:-}" ]; then
    run=(--preset tiny --batch_size 4 --max_steps 4 --eval_interval 2 --eval_batches 2 --device cpu)
fi
python data.py --input "$TEXT" --out_dir "$work/data" --vocab_size "${VOCAB:-1024}" | tee "$out/shakespeare.md"
start=$(date +%s.%N)
python train.py --data_dir "$work/data" --out_dir "$work/run" "${run[@]}" 2>&1 | tr '\r' '\n' | grep -v "it/s" \
    | tee -a "$out/shakespeare.md"
seconds=$(python -c "import sys, time; print(f'{time.time() - float(sys.argv[1]):.0f}')" "$start")
python - "$work/run/metrics.jsonl" "$seconds" <<'PY' | tee -a "$out/shakespeare.md"
import json, sys
import torch
from bench.head import device_name
evals = [r for r in map(json.loads, open(sys.argv[1])) if r.get("val_bpb") is not None]
best = min(evals, key=lambda r: r["val_bpb"])
print(f"\n| run | best val bits/byte | at step | wall (s) |\n| --- | ---: | ---: | ---: |\n"
      f"| ours | {best['val_bpb']:.3f} | {best['step']} | {sys.argv[2]} |\n"
      f"| nanoGPT shakespeare_char (reference) | 2.11 | | 147 |\n\n"
      f"{device_name(torch.device('cuda' if torch.cuda.is_available() else 'cpu'))}")
PY
cp "$work/run/metrics.jsonl" "$out/shakespeare_metrics.jsonl"
