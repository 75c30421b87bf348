#!/usr/bin/env bash
# Every GPU training figure (the LM step, AdamW, head training), in one run on one H100/H200
# (about 7 minutes, 10 at most: each part has a time limit):
#
#     bash bench/gpu_check.sh                             # tables and JSON under $OUT, else bench_out/
#     NANOGPT=path/to/nanoGPT bash bench/gpu_check.sh     # also nanoGPT's GPT side by side
#     SMOKE=1 bash bench/gpu_check.sh                     # tiny sizes on a CPU: checks the script, not speed
#
# 1. the AdamW step alone at gpt2-124m: ours (foreach, compiled) against torch's fused and foreach
# 2. the gpt2-124m training step, compiled, bf16, 12 x 1024: ours, Hugging Face Llama when
#    transformers is importable, nanoGPT when NANOGPT is set; tokens/s, MFU, memory, shares
# 3. the same step without compiling
# 4. whole MinP+ head training against the frozen forward alone (python -m bench.head --training)
set -uo pipefail  # no -e: a part that fails or runs out of time must not hide the others' figures

out="${OUT:-bench_out}"
mkdir -p "$out"
nanogpt=()
if [ -n "${NANOGPT:-}" ]; then nanogpt=(--nanogpt "$NANOGPT"); fi
smoke=()
if [ -n "${SMOKE:-}" ]; then
    smoke=(--device cpu --preset tiny --batch_size 2 --block_size 32 --rounds 1 --repeats 1 --warmup 1)
fi

part() {  # part NAME SECONDS ARGS...: one bench.train run, its table in NAME.md and figures in NAME.json
    local name=$1 seconds=$2
    shift 2
    echo "== python -m bench.train $*" | tee "$out/$name.md"
    timeout "$seconds" python -m bench.train "$@" "${smoke[@]}" --json "$out/$name.json" 2>&1 | tee -a "$out/$name.md"
    echo "(exit status ${PIPESTATUS[0]})" | tee -a "$out/$name.md"
}

{
    date -u
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1 || true
    python -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda)"
    python -c "import transformers; print('transformers', transformers.__version__)" 2>&1 | tail -1
} | tee "$out/machine.txt"

part adamw 100 --optimizer --preset gpt2-124m
part train_compiled 300 --preset gpt2-124m --compile "${nanogpt[@]}"
part train_eager 80 --preset gpt2-124m --rounds 2 "${nanogpt[@]}"
head_smoke=()
if [ -n "${SMOKE:-}" ]; then head_smoke=(--device cpu --preset tiny --vocab 512 --train_tokens 4096 --head_epochs 5); fi
echo "== python -m bench.head --training" | tee "$out/head_training.md"
timeout 120 python -m bench.head --training "${head_smoke[@]}" 2>&1 | tee -a "$out/head_training.md"
echo "results in $out/"
