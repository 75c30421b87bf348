"""Sample text with every common truncation method and with the MinP+ head.

    python sample.py --method top_p --top_p 0.9
    python sample.py --method min_p --min_p 0.05 --prompt "the old king" --num_samples 5
    python sample.py --method minpplus --head out/head.json

Library: `filter_logits(logits, method, **params)` returns logits whose softmax is exactly
the sampling distribution (removed tokens at -inf); `generate(model, prompts, ...)` decodes
with the KV cache, batched prompts of any lengths, per-row EOS.
"""
import argparse
import os
import time
import warnings

import torch
import torch.nn.functional as F

import data
from head import MinPPlusHead
from model import KVCache, fingerprint, load_checkpoint

# a prefix whose mass is within this of top_p / typical_p counts as reaching it: fp32
# probabilities cannot tell 0.8 from 0.79999995, and users mean the former
MASS_TOLERANCE = 1e-6


def keep_only(logits, keep):
    """logits where keep, -inf elsewhere; the most likely token is always kept."""
    keep = keep | (logits == logits.amax(-1, keepdim=True))
    return logits.masked_fill(~keep, float("-inf"))


def keep_smallest_prefix(logits, order_key, mass):
    """Keep the fewest tokens, taken in ascending order_key, whose probability sums to >= mass."""
    probs = F.softmax(logits.double(), dim=-1)  # float64: the cumulative sum decides ties with p
    order = order_key.argsort(dim=-1, stable=True)
    sorted_probs = probs.gather(-1, order)
    mass_before = sorted_probs.cumsum(-1) - sorted_probs
    keep_sorted = mass_before < mass - MASS_TOLERANCE
    keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)  # the first in order always stays
    return logits.masked_fill(~keep, float("-inf"))


def greedy(logits):
    first_max = F.one_hot(logits.argmax(-1), logits.size(-1)).bool()  # ties: the lowest id, as argmax
    return logits.masked_fill(~first_max, float("-inf"))


def top_k(logits, top_k):
    kth = logits.topk(min(top_k, logits.size(-1)), dim=-1).values[..., -1:]
    return keep_only(logits, logits >= kth)  # ties with the k-th are kept, as in Hugging Face


def top_p(logits, top_p):
    return keep_smallest_prefix(logits, -logits, top_p)


def min_p(logits, min_p):
    # p >= min_p * max p  <=>  z - max z >= log(min_p), with no softmax needed
    return keep_only(logits, logits - logits.amax(-1, keepdim=True) >= torch.tensor(min_p).log())


def typical(logits, typical_p):
    """Typical sampling (Meister et al.): keep the tokens whose surprisal is closest to the
    entropy, fewest first, until their mass reaches typical_p."""
    log_p = F.log_softmax(logits.double(), dim=-1)
    entropy = -(log_p.exp() * log_p).nan_to_num().sum(-1, keepdim=True)
    return keep_smallest_prefix(logits, (-log_p - entropy).abs(), typical_p)


def epsilon(logits, epsilon_cutoff):
    """Epsilon sampling (Hewitt et al. 2022): drop tokens with p < epsilon_cutoff."""
    return keep_only(logits, F.softmax(logits.float(), dim=-1) >= epsilon_cutoff)


def eta(logits, eta_cutoff):
    """Eta sampling (Hewitt et al. 2022): drop p < min(eta, sqrt(eta) * exp(-entropy))."""
    log_p = F.log_softmax(logits.float(), dim=-1)
    entropy = -(log_p.exp() * log_p).nan_to_num().sum(-1, keepdim=True)
    cutoff = torch.minimum(torch.tensor(eta_cutoff), eta_cutoff ** 0.5 * torch.exp(-entropy))
    return keep_only(logits, log_p.exp() >= cutoff)


def top_nsigma(logits, n_sigma):
    """Top-nσ (Tang et al. 2024): keep logits within n_sigma standard deviations of the max."""
    finite = torch.isfinite(logits)  # -inf entries (already removed tokens) stay out of the std
    n = finite.sum(-1, keepdim=True)
    mean = logits.where(finite, 0.0).sum(-1, keepdim=True) / n
    std = ((logits - mean).where(finite, 0.0).pow(2).sum(-1, keepdim=True) / (n - 1).clamp_min(1)).sqrt()
    return keep_only(logits, logits >= logits.amax(-1, keepdim=True) - n_sigma * std)


def minpplus(logits, head):
    return head(logits)  # the very transform the head was trained with


METHODS = {  # method -> (function, its parameter, the check its value must pass, the rule in words)
    "greedy": (greedy, None, None, None),
    "temperature": (lambda z: z, None, None, None),
    "top_k": (top_k, "top_k", lambda v: isinstance(v, int) and v >= 1, "an integer >= 1"),
    "top_p": (top_p, "top_p", lambda v: 0 < v <= 1, "in (0, 1]"),
    "min_p": (min_p, "min_p", lambda v: 0 <= v <= 1, "in [0, 1]"),
    "typical": (typical, "typical_p", lambda v: 0 < v <= 1, "in (0, 1]"),
    "epsilon": (epsilon, "epsilon_cutoff", lambda v: 0 <= v < 1, "in [0, 1)"),
    "eta": (eta, "eta_cutoff", lambda v: 0 <= v < 1, "in [0, 1)"),
    "top_nsigma": (top_nsigma, "n_sigma", lambda v: v >= 0, ">= 0"),
    "minpplus": (minpplus, "head", lambda v: isinstance(v, MinPPlusHead), "a MinPPlusHead (--head PATH.json)"),
}


def filter_logits(logits, method, temperature=1.0, temperature_last=False, **params):
    """Logits (B, V) -> fp32 logits whose softmax is the exact sampling distribution.

    Temperature divides the logits before truncation (Hugging Face order) unless
    temperature_last=True (llama.cpp order: truncate the raw logits, then divide what is
    kept). temperature 0 means greedy. Extra params the method does not use are ignored,
    so one set of CLI flags can serve every method."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}: choose one of {', '.join(METHODS)}")
    if temperature < 0:
        raise ValueError(f"temperature={temperature} must be >= 0 (0 means greedy)")
    fn, name, valid, rule = METHODS[method]
    if name is not None:
        value = params.get(name)
        if value is None:
            raise ValueError(f"method {method!r} needs {name}: pass {name}=... ({rule})")
        if not valid(value):
            raise ValueError(f"{name}={value!r} must be {rule}")
    logits = logits.float()
    if method == "greedy" or temperature == 0:
        return greedy(logits)
    truncate = (lambda z: fn(z, params[name])) if name else fn
    if temperature_last:
        return truncate(logits) / temperature
    return truncate(logits / temperature)


def left_pad(prompts, max_len):
    """Right-align prompts of different lengths in one (B, L) batch; pad[b] = row b's padding."""
    lengths = torch.tensor([len(p) for p in prompts])
    L = int(lengths.max())
    idx = torch.zeros(len(prompts), L, dtype=torch.long)
    for row, prompt in enumerate(prompts):
        idx[row, L - len(prompt):] = torch.as_tensor(prompt, dtype=torch.long)
    return idx, L - lengths


def crop_prompts(prompts, max_prompt_len):
    """Keep the last max_prompt_len tokens of each prompt, warning when anything is cut."""
    too_long = [len(p) for p in prompts if len(p) > max_prompt_len]
    if too_long:
        warnings.warn(f"{len(too_long)} prompt(s) of up to {max(too_long)} tokens cropped to their last "
                      f"{max_prompt_len} tokens to leave room for the new ones in the context")
    return [list(p)[-max_prompt_len:] for p in prompts]


@torch.inference_mode()
def generate(model, prompts, max_new_tokens, method="temperature", do_sample=True, eos_id=None,
             generator=None, **params):
    """Decode up to max_new_tokens after each prompt (a list of token-id lists, lengths may differ).

    Returns one list of new token ids per prompt; a row stops after its own eos_id (which it
    includes). do_sample=False is argmax whatever the method. Prompts longer than
    max_seq_len - max_new_tokens keep their last tokens, with a warning."""
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens={max_new_tokens} must be >= 0")
    if any(len(p) == 0 for p in prompts):
        raise ValueError("every prompt needs at least one token: start from an <eos> or a newline")
    if max_new_tokens == 0:
        return [[] for _ in prompts]
    context = model.config.max_seq_len
    if max_new_tokens >= context:
        raise ValueError(f"max_new_tokens={max_new_tokens} must be below the context {context}: "
                         "this generator has no sliding window")
    prompts = crop_prompts(prompts, context - max_new_tokens)
    device = next(model.parameters()).device
    idx, pad = left_pad(prompts, context)
    cache = KVCache(model.config, len(prompts), idx.size(1) + max_new_tokens, device,
                    next(model.parameters()).dtype, pad=pad.to(device) if pad.any() else None)
    logits = model(idx.to(device), cache=cache)[:, -1]
    done = torch.zeros(len(prompts), dtype=torch.bool, device=device)
    new_tokens = []
    for _ in range(max_new_tokens):
        if do_sample:
            probs = F.softmax(filter_logits(logits, method, **params), dim=-1)
            token = torch.multinomial(probs, 1, generator=generator)[:, 0]
        else:
            token = logits.argmax(-1)
        new_tokens.append(token.masked_fill(done, -1))
        if eos_id is not None:
            done |= token == eos_id
            if done.all():
                break
        logits = model(token[:, None], cache=cache)[:, -1]
    rows = torch.stack(new_tokens, 1).tolist()
    return [[t for t in row if t >= 0] for row in rows]


# ----------------------------------------------------------------------------
# Command line


def load_head(path, model, temperature):
    """The head JSON, validated against this model; warns when sampled at another temperature."""
    if not os.path.exists(path):
        raise SystemExit(f"error: no head at {path}: train one with `python train.py --head minpplus` or pass --head")
    try:
        head, meta = MinPPlusHead.load_json(path, vocab_size=model.config.vocab_size, checkpoint=fingerprint(model))
    except ValueError as e:
        raise SystemExit(f"error: {e}")
    trained_at = meta.get("temperature", 1.0)
    if temperature is None:
        temperature = trained_at
    elif temperature != trained_at:
        warnings.warn(f"the head was trained at temperature {trained_at}; sampling at {temperature}")
    return head, temperature


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", default="out/ckpt.pt")
    parser.add_argument("--data_dir", default=None, help="tokenizer location; default: the checkpoint's data")
    parser.add_argument("--prompt", default="", help="text to continue; empty starts a new document")
    parser.add_argument("--num_samples", type=int, default=3)
    parser.add_argument("--max_new_tokens", type=int, default=60)
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--method", default="temperature", choices=list(METHODS))
    parser.add_argument("--greedy", action="store_true", help="do_sample=False: argmax whatever the method")
    parser.add_argument("--temperature", type=float, default=None, help="default 1 (the head's own for minpplus)")
    parser.add_argument("--temperature_last", action="store_true", help="truncate first, then apply temperature")
    parser.add_argument("--top_k", type=int)
    parser.add_argument("--top_p", type=float)
    parser.add_argument("--min_p", type=float)
    parser.add_argument("--typical_p", type=float)
    parser.add_argument("--epsilon_cutoff", type=float)
    parser.add_argument("--eta_cutoff", type=float)
    parser.add_argument("--n_sigma", type=float)
    parser.add_argument("--head", default=None, help="MinP+ head JSON; default: head.json beside --ckpt")
    args = parser.parse_args(argv)

    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    model, ckpt = load_checkpoint(args.ckpt, device)
    data_dir = args.data_dir or ckpt["train_config"]["data_dir"]
    tokenizer, meta = data.load_tokenizer(data_dir), data.load_meta(data_dir)
    params = {k: getattr(args, k) for k in ("top_k", "top_p", "min_p", "typical_p", "epsilon_cutoff",
                                            "eta_cutoff", "n_sigma")}
    temperature = args.temperature
    if args.method == "minpplus":
        head_path = args.head or os.path.join(os.path.dirname(args.ckpt), "head.json")
        params["head"], temperature = load_head(head_path, model, temperature)
        params["head"].to(device)
    params["temperature"] = 1.0 if temperature is None else temperature
    try:
        filter_logits(torch.zeros(1, model.config.vocab_size, device=device), args.method,
                      temperature_last=args.temperature_last, **params)  # bad parameters fail here, once
    except ValueError as e:
        raise SystemExit(f"error: {e}")

    eos_id = meta.get("eos_id")
    prompt_ids = tokenizer.encode(args.prompt).ids if args.prompt else []
    if not args.prompt or meta["kind"] == "synthetic":  # documents start after an <eos>
        prompt_ids = ([eos_id] if eos_id is not None else tokenizer.encode("\n").ids) + prompt_ids
    generator = torch.Generator(device).manual_seed(args.seed)
    start = time.perf_counter()
    outputs = generate(model, [prompt_ids] * args.num_samples, args.max_new_tokens, method=args.method,
                       do_sample=not args.greedy, eos_id=eos_id, generator=generator,
                       temperature_last=args.temperature_last, **params)
    seconds = time.perf_counter() - start
    separator = " " if meta["kind"] == "synthetic" else ""  # word-level tokens carry no spaces; BPE's do
    for i, new in enumerate(outputs):
        print(f"--- sample {i + 1}")
        print((args.prompt + separator if args.prompt else "") + tokenizer.decode(new).strip())
    n_tokens = sum(len(o) for o in outputs)
    print(f"--- {n_tokens} tokens in {seconds:.2f} s: {n_tokens / seconds:,.0f} tokens/s ({device}, {args.method})")


if __name__ == "__main__":
    main()
