"""Benchmark training speed: tokens/s, MFU, peak memory, and where a step's time goes.

    python -m bench.train                          # CUDA: gpt2-124m, 12 x 1024, bf16; CPU: small, 8 x 256, fp32
    python -m bench.train --compile                # torch.compile every model (and our AdamW step)
    python -m bench.train --nanogpt ../nanoGPT     # also nanoGPT's GPT at matched size, from a nanoGPT checkout
    python -m bench.train --preset tiny --batch_size 32 --block_size 128
    python -m bench.train --optimizer              # instead: one AdamW step alone, ours against torch's
    python -m bench.train --profile                # instead: the profiler's table of our training step

One training step is what train.py does: a batch of random windows (corpus.get_batch), forward
and loss (bf16 autocast on CUDA, fp32 on a CPU), backward, gradient clipping at 1.0, an AdamW
step, zero_grad. Side by side in the same process, in interleaved rounds:
  ours      model.Transformer + optim.AdamW + optim.clip_grad_norm_
  HF Llama  transformers' LlamaForCausalLM of the same shape (the very same weights) with
            torch.optim.AdamW (fused on CUDA) and torch's clipping, when transformers is importable
  nanoGPT   nanoGPT's GPT with the same dim, layers, heads, vocabulary and context (LayerNorm,
            GELU MLP of 4 x dim, learned positions, no biases: its parameter count differs a
            little, the table prints it) with torch.optim.AdamW as its configure_optimizers makes
            it, when --nanogpt names a nanoGPT checkout; its model.py is imported from there.
Random tokens: speed does not depend on them. Times are medians over rounds of medians (CUDA
events on a GPU, perf_counter on a CPU). The optimiser and data shares time those parts on
their own (clipping + AdamW step on fixed gradients; get_batch) and divide by the whole step.
MFU counts 6 N + 12 L d T FLOPs per token (PaLM, appendix B; N counted once when tied)
against the device's dense bf16 peak (--peak_tflops for a device not in runtime.PEAK_TFLOPS).
Not a test: numbers name the machine they came from.
"""
import argparse
import contextlib
import importlib.util
import io
import json
import os
import statistics
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from bench.generate import hf_twin
from bench.head import device_name, sync, time_ms
from corpus import get_batch
from model import PRESETS, ModelConfig, Transformer
from optim import AdamW, clip_grad_norm_
import runtime

# H100 80GB figures for scale, measured for the project: nanoGPT's GPT-2 124M step, torch's AdamW at 124 M
H100_TRAIN_ANCHOR = "nanoGPT gpt2-124m, 12 x 1024, bf16, compiled: 29.8 ms/step, 413 K tokens/s, ~36 % MFU"
H100_ADAMW_ANCHOR = {"torch fused": 1.36, "torch foreach": 3.95}


def peak_flops(device, override_tflops):
    return override_tflops * 1e12 if override_tflops else runtime.peak_flops(device)


def flops_per_token(n_params, n_layers, dim, seq_len):
    """Training FLOPs per token (forward + backward): 6 N plus attention's 12 L d T, as model.py counts."""
    return 6 * n_params + 12 * n_layers * dim * seq_len


def step_ms(step, device, args):
    """Median ms of step() over args.repeats calls after one more. --cpu_time counts the process's
    CPU time instead of the wall clock: on a shared machine a one-thread run's CPU time does not
    grow with the time slices other jobs take, its wall time does."""
    if not args.cpu_time:
        return time_ms(step, device, 1, args.repeats)
    step()
    times = []
    for _ in range(args.repeats):
        start = time.process_time()
        step()
        times.append((time.process_time() - start) * 1e3)
    return statistics.median(times)


def mixed_precision(device, dtype):
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


# ----------------------------------------------------------------------------
# the three contenders

@dataclass
class Contender:
    model: torch.nn.Module
    loss: object  # loss(model, x, y) -> the mean cross-entropy
    optimizer: torch.optim.Optimizer
    clip: object  # clip(params, max_norm), ours or torch's
    n_params: int


def ours(cfg, device, args):
    torch.manual_seed(0)
    model = Transformer(cfg).to(device)
    optimizer = AdamW(model.optim_groups(0.1), lr=6e-4, betas=(0.9, 0.95), compiled=args.compile)
    return Contender(model, lambda m, x, y: m(x, y)[1], optimizer, clip_grad_norm_, model.num_params())


def torch_adamw(groups, device):
    """torch.optim.AdamW as nanoGPT's configure_optimizers makes it: fused on CUDA, else its default."""
    return torch.optim.AdamW(groups, lr=6e-4, betas=(0.9, 0.95), **({"fused": True} if device.type == "cuda" else {}))


def hf_loss(model, x, y):
    logits = model(input_ids=x).logits
    return F.cross_entropy(logits.float().view(-1, logits.size(-1)), y.view(-1))


def hf_llama(cfg, device, args):
    """LlamaForCausalLM of the same shape, holding our model's initial weights; None without transformers."""
    torch.manual_seed(0)
    hf = hf_twin(Transformer(cfg).to(device))
    if hf is None:
        return None
    groups = [{"params": [p for p in hf.parameters() if p.dim() >= 2], "weight_decay": 0.1},
              {"params": [p for p in hf.parameters() if p.dim() < 2], "weight_decay": 0.0}]
    n_params = sum(p.numel() for p in hf.parameters())  # parameters() yields the tied matrix once
    return Contender(hf.train(), hf_loss, torch_adamw(groups, device), torch.nn.utils.clip_grad_norm_, n_params)


def nanogpt(cfg, device, args):
    """nanoGPT's GPT at matched size, its model.py imported from the checkout at args.nanogpt."""
    spec = importlib.util.spec_from_file_location("nanogpt_model", os.path.join(args.nanogpt, "model.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    torch.manual_seed(0)
    gpt_config = module.GPTConfig(block_size=cfg.max_seq_len, vocab_size=cfg.vocab_size, n_layer=cfg.n_layers,
                                  n_head=cfg.n_heads, n_embd=cfg.dim, dropout=0.0, bias=False)
    with contextlib.redirect_stdout(io.StringIO()):  # it prints its parameter count and optimiser choice
        gpt = module.GPT(gpt_config).to(device)
        optimizer = gpt.configure_optimizers(0.1, 6e-4, (0.9, 0.95), device.type)
    return Contender(gpt, lambda m, x, y: m(x, y)[1], optimizer, torch.nn.utils.clip_grad_norm_,
                     gpt.get_num_params())


def model_config(args):
    overrides = {"vocab_size": args.vocab_size, "max_seq_len": args.block_size}
    if args.n_kv_heads:
        overrides["n_kv_heads"] = args.n_kv_heads
    return ModelConfig(**{**PRESETS[args.preset], **overrides})


def random_tokens(vocab_size):
    return np.random.default_rng(0).integers(0, vocab_size, 1_000_000).astype(np.uint32)


def training_parts(contender, tokens, args, device, dtype):
    """(whole training step, clipping + optimiser step alone, data alone, set_gradients) as closures."""
    model, optimizer = contender.model, contender.optimizer
    params = [p for p in model.parameters() if p.requires_grad]
    rng = np.random.default_rng(0)

    def batch():
        return get_batch(tokens, args.batch_size, args.block_size, rng, device)

    def step():
        x, y = batch()
        with mixed_precision(device, dtype):
            loss = contender.loss(model, x, y)
        loss.backward()
        contender.clip(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def optimizer_alone():  # on the gradients set_gradients left: the step's own work, nothing else
        contender.clip(params, 1.0)
        optimizer.step()

    def set_gradients(present):
        for p in params:
            p.grad = torch.randn_like(p) * 1e-3 if present else None

    return step, optimizer_alone, batch, set_gradients


def bench_training(args, device, dtype):
    cfg = model_config(args)
    tokens = random_tokens(cfg.vocab_size)
    builders = {"ours": ours, "HF Llama": hf_llama}
    if args.nanogpt:
        builders["nanoGPT"] = nanogpt
    contenders, parts, resident, skipped = {}, {}, {}, {}
    for name, build in builders.items():
        before = torch.cuda.memory_allocated(device) if device.type == "cuda" else 0
        try:
            contender = build(cfg, device, args)
            if contender is None:
                skipped[name] = "transformers is not importable"
                continue
            if args.compile:
                contender.model = torch.compile(contender.model)
            step, optimizer_alone, batch, set_gradients = training_parts(contender, tokens, args, device, dtype)
            for _ in range(args.warmup):  # compiles, creates the optimiser state
                step()
            sync(device)
        except Exception as e:  # a side-by-side contender that fails must not sink ours
            if name == "ours":
                raise
            skipped[name] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:160]
            continue
        contenders[name] = contender
        parts[name] = step, optimizer_alone, batch, set_gradients
        resident[name] = (torch.cuda.memory_allocated(device) - before) if device.type == "cuda" else None

    step_times = {name: [] for name in contenders}
    optimizer_ms = {name: [] for name in contenders}
    data_ms = {name: [] for name in contenders}
    peak_extra = {name: 0 for name in contenders}
    for _ in range(args.rounds):  # interleaved: a noisy neighbour slows every contender alike
        for name, (step, optimizer_alone, batch, set_gradients) in parts.items():
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            before = torch.cuda.memory_allocated(device) if device.type == "cuda" else 0
            step_times[name].append(step_ms(step, device, args))
            if device.type == "cuda":
                peak_extra[name] = max(peak_extra[name], torch.cuda.max_memory_allocated(device) - before)
            set_gradients(True)
            optimizer_ms[name].append(step_ms(optimizer_alone, device, args))
            set_gradients(False)
            data_ms[name].append(step_ms(batch, device, args))

    peak = peak_flops(device, args.peak_tflops)
    tokens_per_step = args.batch_size * args.block_size
    print(f"# training step: {args.preset} shape (dim {cfg.dim}, {cfg.n_layers} layers, {cfg.n_heads} heads, "
          f"{cfg.n_kv_heads} KV heads, vocab {cfg.vocab_size}), batch {args.batch_size} x {args.block_size}; "
          f"{device_name(device)}, {str(dtype).replace('torch.', '')}, torch {torch.__version__}"
          f"{', compiled' if args.compile else ''}; {args.rounds} rounds x {args.repeats} steps"
          f"{', CPU time' if args.cpu_time else ''}")
    if device.type == "cuda" and args.preset == "gpt2-124m":
        print(f"# H100 anchor: {H100_TRAIN_ANCHOR}")
    print("\n| model | params (M) | ms / step | × ours | tokens/s | MFU | optimiser share | data share | "
          "peak memory (MiB) |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    results = {}
    ours_ms = statistics.median(step_times["ours"])
    for name, contender in contenders.items():
        ms = statistics.median(step_times[name])
        tokens_per_s = tokens_per_step / ms * 1e3
        mfu = None if peak is None else \
            flops_per_token(contender.n_params, cfg.n_layers, cfg.dim, args.block_size) * tokens_per_s / peak
        memory = None if resident[name] is None else (resident[name] + peak_extra[name]) / 2**20
        results[name] = dict(params=contender.n_params, ms_per_step=ms, ms_rounds=step_times[name],
                             tokens_per_s=tokens_per_s, mfu=mfu, optimizer_ms=statistics.median(optimizer_ms[name]),
                             data_ms=statistics.median(data_ms[name]), peak_mib=memory)
        print(f"| {name} | {contender.n_params / 1e6:.2f} | {ms:,.1f} | {ms / ours_ms:.2f} | {tokens_per_s:,.0f} | "
              f"{'n/a' if mfu is None else f'{mfu:.1%}'} | {results[name]['optimizer_ms'] / ms:.1%} | "
              f"{results[name]['data_ms'] / ms:.1%} | {'n/a' if memory is None else f'{memory:,.0f}'} |")
    for name, why in skipped.items():
        print(f"| {name} | skipped: {why} | | | | | | | |")
    if device.type != "cuda":
        print("\n(MFU needs --peak_tflops on a CPU; peak memory is measured on CUDA only.)")
    return dict(kind="training", preset=args.preset, batch=args.batch_size, block=args.block_size,
                device=device_name(device), dtype=str(dtype), compiled=args.compile, results=results,
                skipped=skipped)


# ----------------------------------------------------------------------------
# the optimiser step alone

def optimizers_to_compare(groups, device, compile_ours):
    """name -> a function building that optimiser over groups. torch's fused one only where the
    device has its kernel; ours compiled when asked (always on CUDA, where it is the fast path)."""
    def fresh():  # an optimiser writes its defaults into the group dicts it is given: one copy each
        return [dict(group) for group in groups]
    hyper = dict(lr=6e-4, betas=(0.9, 0.95))
    makers = {"ours (foreach)": lambda: AdamW(fresh(), **hyper)}
    if compile_ours:
        makers["ours, compiled"] = lambda: AdamW(fresh(), **hyper, compiled=True)
    makers["torch foreach"] = lambda: torch.optim.AdamW(fresh(), **hyper, foreach=True)
    makers["torch fused"] = lambda: torch.optim.AdamW(fresh(), **hyper, fused=True)
    makers["torch single-tensor"] = lambda: torch.optim.AdamW(fresh(), **hyper, foreach=False)
    return makers


def bench_optimizer(args, device):
    cfg = model_config(args)
    torch.manual_seed(0)
    model = Transformer(cfg).to(device)
    groups = model.optim_groups(0.1)
    for p in model.parameters():
        p.grad = torch.randn_like(p) * 1e-3
    steps, skipped = {}, {}
    for name, make in optimizers_to_compare(groups, device, args.compile or device.type == "cuda").items():
        try:
            optimizer = make()
            for _ in range(args.warmup):  # creates the state, compiles
                optimizer.step()
            sync(device)
            steps[name] = optimizer.step
        except Exception as e:  # e.g. no fused kernel for this device
            skipped[name] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:160]
    times = {name: [] for name in steps}
    for _ in range(args.rounds):
        for name, step in steps.items():
            times[name].append(step_ms(step, device, args))
    n_tensors = sum(len(g["params"]) for g in groups)
    print(f"# AdamW step alone: {args.preset} parameters ({model.num_params() / 1e6:.1f} M in {n_tensors} tensors, "
          f"fp32); {device_name(device)}, torch {torch.__version__}; {args.rounds} rounds x {args.repeats} steps"
          f"{', CPU time' if args.cpu_time else ''}")
    anchor = device.type == "cuda" and args.preset == "gpt2-124m"
    print(f"\n| optimiser | ms / step | × torch fused | × torch foreach |{' H100 ms |' if anchor else ''}\n"
          f"| --- | ---: | ---: | ---: |{' ---: |' if anchor else ''}")
    medians = {name: statistics.median(t) for name, t in times.items()}
    results = {}
    for name, ms in medians.items():
        ratios = [f"{ms / medians[ref]:.2f}" if ref in medians else "n/a" for ref in ("torch fused", "torch foreach")]
        extra = f" {H100_ADAMW_ANCHOR.get(name, '')} |" if anchor else ""
        print(f"| {name} | {ms:.2f} | {ratios[0]} | {ratios[1]} |{extra}")
        results[name] = dict(ms=ms, ms_rounds=times[name])
    for name, why in skipped.items():
        print(f"| {name} | skipped: {why} | | |{' |' if anchor else ''}")
    return dict(kind="optimizer", preset=args.preset, device=device_name(device), results=results, skipped=skipped)


# ----------------------------------------------------------------------------

def profile_ours(args, device, dtype):
    cfg = model_config(args)
    tokens = random_tokens(cfg.vocab_size)
    contender = ours(cfg, device, args)
    if args.compile:
        contender.model = torch.compile(contender.model)
    step = training_parts(contender, tokens, args, device, dtype)[0]
    for _ in range(args.warmup):
        step()
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as prof:
        for _ in range(args.repeats):
            step()
        sync(device)
    sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(prof.key_averages().table(sort_by=sort, row_limit=25, max_name_column_width=45))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--preset", default=None, choices=list(PRESETS),
                        help="model shape (default gpt2-124m on CUDA, small on a CPU)")
    parser.add_argument("--vocab_size", type=int, default=None, help="(default: the preset's, else 512)")
    parser.add_argument("--n_kv_heads", type=int, default=None,
                        help="override the preset's (= --n_heads: multi-head attention, as nanoGPT's)")
    parser.add_argument("--batch_size", type=int, default=None, help="(default 12 on CUDA, 8 on a CPU)")
    parser.add_argument("--block_size", type=int, default=None, help="(default: the preset's context)")
    parser.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16"],
                        help="autocast dtype (default bfloat16 on CUDA, float32 on a CPU)")
    parser.add_argument("--compile", action="store_true", help="torch.compile each model, and our AdamW step")
    parser.add_argument("--nanogpt", default=None, metavar="PATH", help="a nanoGPT checkout to compare with")
    parser.add_argument("--optimizer", action="store_true", help="instead: the AdamW step alone")
    parser.add_argument("--profile", action="store_true", help="instead: profile our training step")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=None, help="timed steps a round (default 10 on CUDA, 4 on CPU)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (compiling happens here)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--cpu_time", action="store_true",
                        help="CPU only: time by the process's CPU time (with --threads 1 on a shared machine)")
    parser.add_argument("--peak_tflops", type=float, default=None, help="the device's peak for MFU")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    try:
        device = torch.device(args.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("--device cuda asked for but no GPU is visible: use --device cpu")
        cuda = device.type == "cuda"
        args.preset = args.preset or ("gpt2-124m" if cuda else "small")
        args.vocab_size = args.vocab_size or PRESETS[args.preset].get("vocab_size", ModelConfig.vocab_size)
        args.batch_size = args.batch_size or (12 if cuda else 8)
        args.block_size = args.block_size or PRESETS[args.preset]["max_seq_len"]
        args.repeats = args.repeats or (10 if cuda else 4)
        dtype = getattr(torch, args.dtype or ("bfloat16" if cuda else "float32"))
        if args.block_size > PRESETS[args.preset]["max_seq_len"]:
            raise ValueError(f"--block_size {args.block_size} exceeds {args.preset}'s context "
                             f"{PRESETS[args.preset]['max_seq_len']}: pass a smaller one")
        if args.nanogpt and not os.path.isfile(os.path.join(args.nanogpt, "model.py")):
            raise ValueError(f"--nanogpt {args.nanogpt} holds no model.py: pass the root of a nanoGPT checkout")
        if args.cpu_time and cuda:
            raise ValueError("--cpu_time measures CPU work: drop it on CUDA, where CUDA events time the GPU")
        if args.threads:
            torch.set_num_threads(args.threads)
        if cuda:  # as nanoGPT's train.py: fp32 matmuls may use TF32
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        if args.profile:
            return profile_ours(args, device, dtype)
        results = bench_optimizer(args, device) if args.optimizer else bench_training(args, device, dtype)
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1, default=str)


if __name__ == "__main__":
    main()
