"""Benchmark `python data.py --input`: MB/s and peak memory on large texts built by repetition.

    python -m bench.data                                   # 100 MB and 1 GB of the synthetic language's text
    python -m bench.data --mb 10 100 --source a.txt b.txt  # those files, repeated to each size
    python -m bench.data --mb 100 --in_memory              # also the whole-text path, side by side

Each size runs data.py in a child process (tokenizer training included) and reports its wall
time, MB/s, CPU time (all threads) and peak resident memory (the child's own ru_maxrss, read
with os.wait4). `--in_memory` also runs the algorithm on the whole text at once, the way data.py
worked before it streamed: it needs about 60 bytes of memory a byte of text. The texts are
written to a temporary folder (`--tmp`) and deleted afterwards. Not a test: the figures name the
machine they came from, and timings on a shared machine are noisy (compare rows of one run).
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

import torch

import corpus
import data
import synthetic
from bench.head import device_name

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def source_text(paths):
    """The text to repeat: the given files, or 5 MB of the synthetic language (decoded words)."""
    if paths:
        return b"".join(open(path, "rb").read() for path in paths)
    lang = synthetic.SyntheticLanguage(0)
    words = lang.decode(lang.sample_tokens(1_000_000, seed=1))
    return words.replace(" . ", " .\n").encode("utf-8")  # a sentence a line, as a text file would have


def write_repeated(path, text, n_bytes):
    """text repeated (whole lines) until the file holds about n_bytes."""
    with open(path, "wb") as f:
        written = 0
        while written < n_bytes:
            piece = text[:n_bytes - written]
            piece = piece[:piece.rfind(b"\n") + 1] or piece
            f.write(piece)
            written += len(piece)


def run_child(command):
    """Run command; its wall seconds, CPU seconds and peak resident bytes, of it alone."""
    started = time.perf_counter()
    child = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"error: {' '.join(command)} failed")
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024  # ru_maxrss: KiB on Linux


def prepare_in_memory(input_path, out_dir, vocab_size):
    """The whole-text path (data.py before it streamed): the anchor the streamed path is compared with."""
    with open(input_path, encoding="utf-8", newline="") as f:
        text = f.read()
    cut = data.split_point(text, 0.1)
    os.makedirs(out_dir, exist_ok=True)
    tok = data.bpe_tokenizer(text[:cut].splitlines(keepends=True), vocab_size)
    for split, part in (("train", text[:cut]), ("val", text[cut:])):
        ids = [i for enc in tok.encode_batch(part.splitlines(keepends=True)) for i in enc.ids]
        corpus.write_split(os.path.join(out_dir, f"{split}.bin"), ids, tok.get_vocab_size())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, nargs="+", default=[100, 1000], help="text sizes in MB (10^6 bytes)")
    parser.add_argument("--source", nargs="+", help="UTF-8 files to repeat (default: the synthetic language)")
    parser.add_argument("--vocab_size", type=int, default=4096)
    parser.add_argument("--tokenizer_mb", type=float, default=200, help="data.py's: the BPE's sample of the text")
    parser.add_argument("--in_memory", action="store_true", help="also run the whole-text path (~60 B a byte)")
    parser.add_argument("--tmp", default=None, help="folder for the temporary texts (default: the system's)")
    args = parser.parse_args(argv)
    text = source_text(args.source)
    print("| path | text | wall (s) | MB/s | CPU (s) | peak RSS (GB) |\n| --- | ---: | ---: | ---: | ---: | ---: |",
          flush=True)
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        for mb in args.mb:
            path = os.path.join(tmp, "input.txt")
            write_repeated(path, text, int(mb * 1e6))
            size = os.path.getsize(path)
            runs = {"streamed (data.py)": [sys.executable, "data.py", "--input", path, "--out_dir",
                                           os.path.join(tmp, "out"), "--vocab_size", str(args.vocab_size),
                                           "--tokenizer_mb", str(args.tokenizer_mb)]}
            if args.in_memory:
                runs["whole text in memory"] = [sys.executable, "-c", "import sys, bench.data as b; "
                                                "b.prepare_in_memory(sys.argv[1], sys.argv[2], int(sys.argv[3]))",
                                                path, os.path.join(tmp, "out_mem"), str(args.vocab_size)]
            for name, command in runs.items():
                seconds, cpu_seconds, peak = run_child(command)
                print(f"| {name} | {size / 1e6:,.0f} MB | {seconds:.1f} | {size / 1e6 / seconds:.2f} | "
                      f"{cpu_seconds:.1f} | {peak / 1e9:.2f} |", flush=True)
            os.remove(path)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\n{device_name(torch.device('cpu'))}; load average at the end {load}; vocab {args.vocab_size}; "
          f"text: {'repeated ' + ', '.join(map(os.path.basename, args.source)) if args.source else 'synthetic'}")


if __name__ == "__main__":
    main()
