"""Benchmark generation: tokens/s of sample.generate, and what each sampler adds per step.

    python -m bench.generate                       # minimind-26m, batch 1 and 64, 256 new tokens, top_p 0.9
    python -m bench.generate --compile             # also torch.compile'd model forwards
    python -m bench.generate --device cpu --preset tiny --new_tokens 32 --batch_sizes 1 8

Random weights (speed does not depend on them). When `transformers` is importable, Hugging
Face `generate` runs in the same script on a LlamaForCausalLM holding the very same weights
(the script checks that both greedy-decode the same tokens), with its default cache and
with cache_implementation="static". Prints markdown tables naming the device.
"""
import argparse

import torch

from bench.head import device_name, time_ms
from head import MinPPlusHead
from model import PRESETS, ModelConfig, Transformer
from sample import generate

# Hugging Face generate's tokens/s measured on an H100 at this shape (top_p 0.9, 256 new tokens),
# and the project's targets for ours: 3x its static cache at batch 1, 1.5x at batch 64
H100_ANCHORS = {("HF, default cache", 1): "120", ("HF, default cache", 64): "6,800",
                ("HF, static cache", 1): "435", ("HF, static cache", 64): "20,000",
                ("ours", 1): "target >= 1,305", ("ours", 64): "target >= 30,000"}


def timed(fn, device, repeats):
    """Median seconds of fn() after one warm-up call (which also compiles, when compiling)."""
    return time_ms(fn, torch.device(device), 1, repeats) / 1e3


def hf_twin(model):
    """A Hugging Face Llama holding model's weights, or None when transformers is not importable."""
    try:
        from transformers import LlamaConfig, LlamaForCausalLM
    except ImportError:
        return None
    cfg = model.config
    hf = LlamaForCausalLM(LlamaConfig(
        vocab_size=cfg.vocab_size, hidden_size=cfg.dim, intermediate_size=cfg.hidden_dim,
        num_hidden_layers=cfg.n_layers, num_attention_heads=cfg.n_heads, num_key_value_heads=cfg.n_kv_heads,
        max_position_embeddings=cfg.max_seq_len, rms_norm_eps=cfg.norm_eps, rope_theta=cfg.rope_theta,
        tie_word_embeddings=True, bos_token_id=None, eos_token_id=None, pad_token_id=0))
    ours = model.state_dict()
    names = {"tok_emb": "model.embed_tokens", "norm": "model.norm", "output": "lm_head", "attn.wq": "self_attn.q_proj",
             "attn.wk": "self_attn.k_proj", "attn.wv": "self_attn.v_proj", "attn.wo": "self_attn.o_proj",
             "ffn.w1": "mlp.gate_proj", "ffn.w3": "mlp.up_proj", "ffn.w2": "mlp.down_proj",
             "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm"}
    theirs = {}
    for name, tensor in ours.items():
        parts = name.split(".")
        if parts[0] == "layers":  # layers.3.attn.wq.weight -> model.layers.3.self_attn.q_proj.weight
            theirs[f"model.layers.{parts[1]}.{names['.'.join(parts[2:-1])]}.weight"] = tensor
        else:
            theirs[f"{names[parts[0]]}.weight"] = tensor
    hf.load_state_dict(theirs)  # strict: every HF weight must come from ours
    weight = next(model.parameters())
    return hf.to(weight.device, weight.dtype).eval()


def greedy_agreement(model, hf, prompts, n_tokens):
    """How many of the first n_tokens greedy tokens of every row the two models agree on."""
    ours = torch.tensor(generate(model, prompts, n_tokens, do_sample=False))
    ids = torch.tensor(prompts, device=next(model.parameters()).device)
    with torch.inference_mode():
        theirs = hf.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=n_tokens,
                             min_new_tokens=n_tokens)[:, ids.size(1):]
    same = (ours == theirs.cpu()).cumprod(1).sum(1)  # the agreeing prefix of each row
    return int(same.min())


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--preset", default="minimind-26m", choices=list(PRESETS))
    parser.add_argument("--vocab_size", type=int, default=6400, help="for presets that do not fix one")
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--new_tokens", type=int, default=256)
    parser.add_argument("--prompt_tokens", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compile", action="store_true", help="torch.compile the model's forward (prefill and decode)")
    parser.add_argument("--no_hf", action="store_true", help="skip Hugging Face even when it is installed")
    args = parser.parse_args()
    device = args.device
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    cfg = ModelConfig(**{"vocab_size": args.vocab_size, **PRESETS[args.preset]})
    if args.prompt_tokens + args.new_tokens > cfg.max_seq_len:
        raise SystemExit(f"error: {args.prompt_tokens} + {args.new_tokens} tokens exceed the context {cfg.max_seq_len}")
    torch.manual_seed(0)
    model = Transformer(cfg).to(device, dtype).eval()
    head = MinPPlusHead().to(device)
    hf = None if args.no_hf else hf_twin(model)
    prompts = torch.randint(0, cfg.vocab_size, (max(args.batch_sizes), args.prompt_tokens)).tolist()

    print(f"# generation: {args.preset} ({model.num_params() / 1e6:.1f} M parameters), {args.prompt_tokens} prompt + "
          f"{args.new_tokens} new tokens, top_p 0.9; {device_name(torch.device(device))}, {dtype}, "
          f"torch {torch.__version__}"
          f"{', compiled' if args.compile else ''}")
    if hf is not None:
        import transformers

        agree = greedy_agreement(model, hf, prompts[:4], 16)
        print(f"# transformers {transformers.__version__}, same weights: greedy agrees on {agree} of 16 tokens")
    cuda = device.startswith("cuda")
    ours = {"ours, CUDA graph (sample.generate)": (model, True)} if cuda else {}
    ours["ours, eager" if cuda else "ours (sample.generate)"] = (model, False)
    if args.compile:
        ours["ours, compiled" + (" + CUDA graph" if cuda else "")] = (torch.compile(model), cuda)
    print("\n| batch | generate | tokens/s | H100, minimind-26m (reference) |\n| ---: | --- | ---: | ---: |")
    for batch in args.batch_sizes:
        rows = prompts[:batch]
        runs = {label: lambda m=m, g=g: generate(m, rows, args.new_tokens, method="top_p", top_p=0.9, cuda_graph=g)
                for label, (m, g) in ours.items()}
        if hf is not None:
            ids = torch.tensor(rows, device=device)
            for label, extra in (("default cache", {}), ("static cache", {"cache_implementation": "static"})):
                runs[f"HF, {label}"] = lambda extra=extra: hf.generate(  # the mask: no prompt token is padding
                    ids, attention_mask=torch.ones_like(ids), do_sample=True, top_p=0.9, top_k=0,
                    max_new_tokens=args.new_tokens,
                    min_new_tokens=args.new_tokens, **extra)
        for label, fn in runs.items():
            seconds = timed(fn, device, args.repeats)
            anchor = ""
            if args.preset == "minimind-26m":
                anchor = H100_ANCHORS.get((label if label.startswith("HF") else "ours", batch), "")
            print(f"| {batch} | {label} | {batch * args.new_tokens / seconds:,.0f} | {anchor} |", flush=True)
        if hf is None:
            why = "--no_hf" if args.no_hf else "transformers is not importable"
            print(f"| {batch} | Hugging Face generate | skipped: {why} | |")

    # what each sampler adds to a whole decoding step, measured inside generate itself
    how = "CUDA graph" if cuda else "eager"
    print(f"\n| sampler ({how}, V = {cfg.vocab_size}) | "
          + " | ".join(f"µs/token-step at batch {b}" for b in args.batch_sizes)
          + " |\n| --- |" + " ---: |" * len(args.batch_sizes))
    samplers = {"plain sampling (temperature 1)": dict(method="temperature"),
                "top_p 0.9": dict(method="top_p", top_p=0.9), "min_p 0.05": dict(method="min_p", min_p=0.05),
                "minpplus (32 thresholds)": dict(method="minpplus", head=head),
                "greedy (argmax, no sampling)": dict(do_sample=False)}
    base = {}
    for label, params in samplers.items():
        cells = []
        for b in args.batch_sizes:
            seconds = timed(lambda: generate(model, prompts[:b], args.new_tokens, **params), device, args.repeats)
            step_us = seconds / args.new_tokens * 1e6
            base.setdefault(b, step_us)
            cells.append(f"{step_us:,.0f}" + (f" ({step_us - base[b]:+,.0f})" if label != next(iter(samplers)) else ""))
        print(f"| {label} | " + " | ".join(cells) + " |", flush=True)
    print("\n(in brackets: added per step over plain sampling; each figure includes the prefill and the "
          "graph capture, spread over the new tokens)")


if __name__ == "__main__":
    main()
