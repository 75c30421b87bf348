"""Benchmark one MinP+ head step (fwd + bwd, everything after the frozen forward).

    python -m bench.head                      # CUDA when present: 4096 rows, V = 6400 and 32000
    python -m bench.head --device cpu         # small defaults, same table
    python -m bench.head --compile            # also torch.compile the per-chunk statistics
    python -m bench.head --training           # whole head training vs the frozen forward alone
    python -m bench.head --training --compile # the same with torch.compile'd per-chunk statistics
    python -m bench.head --training --no_overlap --no_graph   # without the second stream, the CUDA graph
    python -m bench.head --profile            # the CUDA kernels of head.py's step, by time

Paths, each on the same (rows, V) logits:
  cross_entropy   F.cross_entropy(logits, y), backward to the logits (the LM's own loss)
  logsumexp       one logsumexp over the logits, backward to them: one read, the floor
  naive           F.cross_entropy(head(logits), y), backward to theta through the (N, V) gather
  stats           head.bucket_stats + head.loss_from_stats + backward (what train.py does)
  stats:<how>     the same with another way to sum each row's mass per bucket (bucket_sums)
Times are medians (CUDA events on a GPU, perf_counter on a CPU); peak memory is what the step
allocates beyond the logits (CUDA only). Not a test: numbers name the machine they came from.
"""
import argparse
import contextlib
import os
import platform
import statistics
import time

import torch
import torch.nn.functional as F

import head as head_module
import train
import train_head
from head import MinPPlusHead


# ----------------------------------------------------------------------------
# other ways to get per-row bucket sums (values (n, V), buckets (n, V) -> (n, K))

def sums_scatter_plain(values, buckets, K):
    """scatter_add_ straight into (n, K): on a GPU most adds queue on the bucket-0 address."""
    return values.new_zeros(len(values), K).scatter_add_(1, buckets, values)


def sums_bincount(values, buckets, K):
    """one bincount over row * K + bucket."""
    n = len(values)
    flat = (buckets + torch.arange(n, device=values.device)[:, None] * K).view(-1)
    return torch.bincount(flat, weights=values.reshape(-1), minlength=n * K).view(n, K).float()


def sums_compare(values, buckets, K):
    """mass at or above each threshold by K masked sums, then differences: no atomics, K passes."""
    above = torch.stack([torch.where(buckets >= k, values, 0.0).sum(1) for k in range(K)], 1)
    return above - F.pad(above[:, 1:], (0, 1))


def sums_sort(values, buckets, K):
    """sort each row by bucket, prefix sums, and read them at each bucket's first position."""
    sorted_buckets, order = buckets.sort(1)
    prefix = F.pad(values.gather(1, order).cumsum(1), (1, 0))
    edges = torch.arange(K + 1, device=values.device).expand(len(values), K + 1).contiguous()
    first = torch.searchsorted(sorted_buckets, edges)  # first position of bucket >= k in each row
    starts = prefix.gather(1, first)
    return starts[:, 1:] - starts[:, :-1]


def sums_scatter_128_lanes(values, buckets, K, scatter=head_module.bucket_sums):  # bound now: it gets patched
    """head.py's scatter with 4x as many lanes: less queueing on each address, 4x the sums to add up."""
    return scatter(values, buckets, K, lanes=128)


VARIANTS = {
    "scatter, 32 lanes on CUDA, 1 on a CPU (head.py)": None,
    "scatter, 128 lanes": sums_scatter_128_lanes,
    "scatter into (n, K)": sums_scatter_plain,
    "bincount": sums_bincount,
    "K masked sums": sums_compare,
    "sort + prefix sums": sums_sort,
}


@contextlib.contextmanager
def patched(**attrs):
    """Swap module-level functions of head.py for the duration of a measurement."""
    saved = {name: getattr(head_module, name) for name in attrs}
    for name, value in attrs.items():
        setattr(head_module, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(head_module, name, value)


# ----------------------------------------------------------------------------
# timing

def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_ms(step, device, warmup, repeats):
    """Median milliseconds of step() over repeats, after warmup calls."""
    for _ in range(warmup):
        step()
    sync(device)
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            step()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            step()
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def peak_extra_mib(step, device):
    """MiB one step allocates at its peak beyond what is already allocated (CUDA only)."""
    if device.type != "cuda":
        return None
    sync(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    step()
    sync(device)
    return (torch.cuda.max_memory_allocated(device) - before) / 2**20


def device_name(device):
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
    return f"{model}, {os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads"


# ----------------------------------------------------------------------------
# the steps

def make_steps(head, logits, targets, args):
    """name -> step(); every step is one forward and backward."""
    leaf = logits.detach().requires_grad_()

    def cross_entropy():
        leaf.grad = None
        F.cross_entropy(leaf, targets).backward()

    def logsumexp():
        leaf.grad = None
        torch.logsumexp(leaf, -1).mean().backward()

    def naive():
        head.theta.grad = None
        F.cross_entropy(head(logits), targets).backward()

    def stats_with(sums, compiled):
        def step():
            head.theta.grad = None
            swaps = {"bucket_sums": sums} if sums is not None else {}
            with patched(**swaps):
                S, b, logp_y = head.bucket_stats(logits, targets, chunk_size=args.chunk_size, check=False,
                                                 per_chunk=compiled or head_module.chunk_stats)
            head.loss_from_stats(S, b, logp_y).backward()
            return S
        return step

    steps = {"cross_entropy": cross_entropy, "logsumexp": logsumexp}
    if not args.skip_naive:
        steps["naive (autograd gather)"] = naive
    for name, sums in VARIANTS.items():
        steps[f"stats: {name}"] = stats_with(sums, None)
        if args.compile:  # traced at its first call, with this variant's bucket_sums patched in
            steps[f"stats: {name}, compiled"] = stats_with(sums, torch.compile(head_module.chunk_stats, dynamic=False))
    return steps


def make_problem(V, args, device, dtype):
    """A head with random weights, (rows, V) logits and their targets."""
    torch.manual_seed(0)
    head = MinPPlusHead(args.K).to(device)
    with torch.no_grad():
        head.theta.normal_()
    # logits shaped like a trained LM's: a few likely tokens, a long tail
    logits = (torch.randn(args.rows, V, device=device) * 2.5).to(dtype)
    targets = torch.randint(0, V, (args.rows,), device=device)
    return head, logits, targets


HEAD_STEP = f"stats: {next(iter(VARIANTS))}"  # what train.py runs


def bench_vocab(V, args, device, dtype):
    head, logits, targets = make_problem(V, args, device, dtype)
    reference_S = head.bucket_stats(logits, targets, chunk_size=args.chunk_size)[0]
    rows = []
    lse_ms = None
    for name, step in make_steps(head, logits, targets, args).items():
        slow = name.startswith("naive")
        repeats = max(1, args.repeats // 10) if slow else args.repeats
        warmup = min(args.warmup, 1) if slow else args.warmup
        if name.endswith("compiled"):
            torch._dynamo.reset()  # a fresh cache for each compiled variant: they share chunk_stats' code
        ms = time_ms(step, device, warmup, repeats)
        mib = peak_extra_mib(step, device)
        S = step() if name.startswith("stats") else None
        error = (S - reference_S).abs().max().item() if S is not None else None
        if name == "logsumexp":
            lse_ms = ms
        rows.append((name, ms, mib, error))
        print(f"  V={V} {name}: {ms:.2f} ms", flush=True)
    return [(V, name, ms, ms / lse_ms, mib, error) for name, ms, mib, error in rows]


def markdown_table(results):
    lines = ["| V | path | ms / step | × logsumexp | peak extra MiB | max abs ΔS vs head.py |",
             "| ---: | --- | ---: | ---: | ---: | ---: |"]
    for V, name, ms, ratio, mib, error in results:
        mib_text = "n/a" if mib is None else f"{mib:,.0f}"
        error_text = "" if error is None else f"{error:.1e}"
        lines.append(f"| {V:,} | {name} | {ms:,.2f} | {ratio:,.1f} | {mib_text} | {error_text} |")
    return "\n".join(lines)


def bench_training(args, device):
    """Whole head training on N tokens (frozen forward + statistics + head_epochs of fitting, as
    train.py does it) against the frozen forward alone over the same N tokens."""
    import numpy as np

    import corpus
    from model import PRESETS, ModelConfig, Transformer

    settings = {**PRESETS[args.preset], "vocab_size": args.vocab[0]}
    model = Transformer(ModelConfig(**settings)).to(device).eval().requires_grad_(False)
    cfg = train.TrainConfig(batch_size=args.train_batch, block_size=model.config.max_seq_len,
                            head_epochs=args.head_epochs, compile=args.compile)  # compile: the statistics only
    tokens = np.random.default_rng(0).integers(0, settings["vocab_size"], size=4 * args.train_tokens, dtype=np.uint16)

    @torch.no_grad()
    def frozen_forward():
        for starts in corpus.tiling_batches(tokens, cfg.batch_size, cfg.block_size, args.train_tokens):
            x, _ = corpus.windows_at(tokens, starts, cfg.block_size, str(device))
            with train_head.autocast(str(device), train_head.frozen_dtype(str(device))):
                model(x)

    head = MinPPlusHead(args.K).to(device)

    def statistics():
        return train_head.collect_stats(model, head, tokens, args.train_tokens, cfg, str(device),
                                   overlap=not args.no_overlap)

    stats = statistics()

    def fitting():
        fitted = MinPPlusHead(args.K).to(device)
        fit = train_head.head_fitter(fitted, train_head.head_optimizer(fitted, cfg.head_lr), stats, cfg.head_epochs,
                                     cfg.head_lr, cuda_graph=not args.no_graph)
        fit(0, cfg.head_epochs).item()  # train.py waits for the loss the same way

    def head_training():
        nonlocal stats
        stats = statistics()
        fitting()

    parts = {"frozen forward alone": frozen_forward,
             "frozen forward + bucket statistics (train_head.collect_stats)": statistics,
             f"fitting alone ({cfg.head_epochs} full-batch AdamW steps on the statistics)": fitting,
             "head training (forward + statistics + fitting)": head_training}
    times = {what: time_ms(fn, device, 2, 5) for what, fn in parts.items()}
    print(f"\nWhole head training vs frozen forward, {args.preset} (V {settings['vocab_size']}), "
          f"{args.train_tokens:,} tokens, {cfg.head_epochs} epochs = full-batch AdamW steps on {len(stats[0]):,} rows"
          f"{' (no CUDA graph)' if args.no_graph else ''}{', compiled statistics' if args.compile else ''}"
          f"{', statistics on one stream' if args.no_overlap else ''}, "
          f"on {device_name(device)}\n")
    peaks = {what: peak_extra_mib(fn, device) for what, fn in parts.items()}  # None on a CPU
    print("| what | ms | × frozen forward | peak extra MiB |\n| --- | ---: | ---: | ---: |")
    for what, ms in times.items():
        peak = "n/a" if peaks[what] is None else f"{peaks[what]:,.0f}"
        print(f"| {what} | {ms:,.0f} | {ms / times['frozen forward alone']:.2f} | {peak} |")


def profile_stats(args, device, dtype):
    """The CUDA kernels of head.py's statistics step (bucket_stats + loss + backward), by time."""
    from torch.profiler import ProfilerActivity, profile

    for V in args.vocab:
        step = make_steps(*make_problem(V, args, device, dtype), args)[HEAD_STEP]
        for _ in range(3):
            step()
        sync(device)
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            for _ in range(10):
                step()
            sync(device)
        print(f"\nV = {V}, {args.rows} rows, 10 steps:")
        print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=14, max_name_column_width=50))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--rows", type=int, default=None, help="N positions (default 4096 on CUDA, 1024 on CPU)")
    parser.add_argument("--vocab", type=int, nargs="+", default=[6400, 32000])
    parser.add_argument("--K", type=int, default=32, help="number of thresholds")
    parser.add_argument("--repeats", type=int, default=None, help="timed steps (default 20 on CUDA, 5 on CPU)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 3 on CUDA, 1 on CPU)")
    parser.add_argument("--dtype", default=None, choices=["float32", "float16", "bfloat16"],
                        help="logits dtype (default float16 on CUDA, as train.py's autocast makes them; "
                             "float32 on CPU)")
    parser.add_argument("--chunk_size", type=int, default=None, help="bucket_stats rows per chunk (default: head.py's)")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile'd per-chunk statistics")
    parser.add_argument("--skip_naive", action="store_true", help="skip the slow autograd-gather path")
    parser.add_argument("--training", action="store_true",
                        help="instead: whole head training vs the frozen forward (model --preset, V = first --vocab)")
    parser.add_argument("--profile", action="store_true", help="instead: torch.profiler table of head.py's step")
    parser.add_argument("--preset", default="minimind-26m", help="with --training")
    parser.add_argument("--train_tokens", type=int, default=262_144, help="with --training")
    parser.add_argument("--train_batch", type=int, default=16, help="with --training")
    parser.add_argument("--head_epochs", type=int, default=train.TrainConfig.head_epochs, help="with --training")
    parser.add_argument("--no_graph", action="store_true", help="with --training: fit without the CUDA graph")
    parser.add_argument("--no_overlap", action="store_true",
                        help="with --training: statistics on the forward's own CUDA stream, not a second one")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    args.rows = args.rows or (4096 if cuda else 1024)
    args.repeats = args.repeats or (20 if cuda else 5)
    args.warmup = args.warmup if args.warmup is not None else (3 if cuda else 1)
    dtype = getattr(torch, args.dtype or ("float16" if cuda else "float32"))
    if args.training:
        return bench_training(args, device)
    if args.profile:
        return profile_stats(args, device, dtype)
    chunks = args.chunk_size or ", ".join(str(head_module.default_chunk_rows(V, device)) for V in args.vocab)
    print(f"device: {device_name(device)} | torch {torch.__version__} | rows {args.rows} | K {args.K} | "
          f"logits {str(dtype).replace('torch.', '')} | chunk rows {chunks}{' | compiled' if args.compile else ''}")
    results = []
    for V in args.vocab:
        results += bench_vocab(V, args, device, dtype)
    print()
    print(f"MinP+ head step (fwd + bwd), {args.rows} rows, K = {args.K}, on {device_name(device)}")
    print()
    print(markdown_table(results))


if __name__ == "__main__":
    main()
