"""Benchmark generation: tokens/s of sample.generate, and what each sampler adds per step.

    python bench_generate.py                                   # minimind-26m, batch 1 and 64, 256 new tokens
    python bench_generate.py --device cpu --preset tiny --new_tokens 32 --batch_sizes 1 8

Random weights (speed does not depend on them). When `transformers` is installed, Hugging
Face `generate` on a LlamaForCausalLM of the same shape runs in the same script, with its
default cache and with cache_implementation="static". Prints a markdown table naming the device.
"""
import argparse
import platform
import time

import torch

from head import MinPPlusHead
from model import PRESETS, ModelConfig, Transformer
from sample import filter_logits, generate


def device_name(device):
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"


def timed(fn, device, repeats):
    """Median wall time of fn() after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def hf_model(cfg, device, dtype):
    """A Hugging Face Llama of the same shape, or None when transformers is not installed."""
    try:
        from transformers import LlamaConfig, LlamaForCausalLM
    except ImportError:
        return None
    hf_cfg = LlamaConfig(vocab_size=cfg.vocab_size, hidden_size=cfg.dim, intermediate_size=cfg.hidden_dim,
                         num_hidden_layers=cfg.n_layers, num_attention_heads=cfg.n_heads,
                         num_key_value_heads=cfg.n_kv_heads, max_position_embeddings=cfg.max_seq_len,
                         tie_word_embeddings=True)
    return LlamaForCausalLM(hf_cfg).to(device, dtype).eval()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--preset", default="minimind-26m")
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--new_tokens", type=int, default=256)
    parser.add_argument("--prompt_tokens", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    device = args.device
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    cfg = ModelConfig(**{"vocab_size": 6400, **PRESETS[args.preset]})
    torch.manual_seed(0)
    model = Transformer(cfg).to(device, dtype).eval()
    head = MinPPlusHead().to(device)
    hf = hf_model(cfg, device, dtype)
    print(f"# generation, {args.preset}, {args.new_tokens} new tokens after {args.prompt_tokens}, "
          f"{device_name(device)}, {dtype}, torch {torch.__version__}")
    print("| batch | what | tokens/s |\n| ---: | --- | ---: |")
    for batch in args.batch_sizes:
        prompts = torch.randint(0, cfg.vocab_size, (batch, args.prompt_tokens)).tolist()
        runs = {"ours, top_p 0.9": lambda: generate(model, prompts, args.new_tokens, method="top_p", top_p=0.9)}
        if hf is not None:
            ids = torch.tensor(prompts, device=device)
            for label, extra in (("HF generate, default cache", {}),
                                 ("HF generate, static cache", {"cache_implementation": "static"})):
                runs[label] = lambda extra=extra: hf.generate(ids, do_sample=True, top_p=0.9, top_k=0,
                                                              max_new_tokens=args.new_tokens,
                                                              min_new_tokens=args.new_tokens, **extra)
        for label, fn in runs.items():
            seconds = timed(fn, device, args.repeats)
            print(f"| {batch} | {label} | {batch * args.new_tokens / seconds:,.0f} |")
        if hf is None:
            print(f"| {batch} | Hugging Face generate | skipped: transformers is not installed |")
    # what each sampler adds to one decoding step, on logits of the largest batch
    logits = torch.randn(max(args.batch_sizes), cfg.vocab_size, device=device) * 3
    base = timed(lambda: torch.multinomial(torch.softmax(logits, -1), 1), device, 50)
    print(f"\n| sampler (batch {logits.size(0)}, V {cfg.vocab_size}) | µs per step | added over plain sampling |")
    print("| --- | ---: | ---: |")
    for label, params in (("temperature", dict(method="temperature")), ("top_p 0.9", dict(method="top_p", top_p=0.9)),
                          ("min_p 0.05", dict(method="min_p", min_p=0.05)), ("minpplus", dict(method="minpplus", head=head))):
        seconds = timed(lambda: torch.multinomial(torch.softmax(filter_logits(logits, **params), -1), 1), device, 50)
        print(f"| {label} | {seconds * 1e6:,.0f} | {(seconds - base) * 1e6:+,.0f} |")


if __name__ == "__main__":
    main()
