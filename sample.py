"""Sample text with every common truncation method and with the MinP+ head.

    python sample.py --method top_p --top_p 0.9
    python sample.py --method min_p --min_p 0.05 --prompt "the old king" --num_samples 5
    python sample.py --method minpplus --head out/head.json
    python sample.py --compile --num_samples 64 --max_new_tokens 100   # throughput on a GPU
    python sample.py --ckpt out/smollm2/ckpt.pt --chat "What is min-p sampling?"   # a converted model

Library:
- `filter_logits(logits, method, temperature=1.0, ..., top_p=None, ...)` returns fp32 logits
  whose softmax is exactly the sampling distribution (removed tokens at -inf);
- `generate(model, prompts, max_new_tokens, method=..., **params)` decodes with the KV cache,
  prompts of any lengths in one batch, each row stopping at its own EOS.
"""
import argparse
import math
import numbers
import os
import time
import warnings

import torch
import torch.nn.functional as F

import corpus
import pretrained_tokenizer
import script
from head import MinPPlusHead, check_strength, log_ratio, log_threshold
from model import KVCache, cuda_graph_replay, fingerprint, load_checkpoint, pick_device, trained_data_dir

# a prefix whose mass is within this of top_p / typical_p counts as reaching it: fp32
# probabilities cannot tell 0.8 from 0.79999995, and users mean the former
MASS_TOLERANCE = 1e-6
EOS_CHECK_EVERY = 8  # steps between "has every row ended?" checks: each one waits for the GPU


def keep_only(logits, keep):
    """logits where keep, -inf elsewhere; the most likely token is always kept."""
    keep = keep | (logits == logits.amax(-1, keepdim=True))
    return logits.masked_fill(~keep, float("-inf"))


def keep_smallest_prefix(logits, order_key, mass):
    """Keep the fewest tokens, taken in ascending order_key, whose probability sums to >= mass,
    and every token whose key ties with the last one kept: tied tokens stay or go together, so
    the result never depends on how the vocabulary happens to number them."""
    if mass >= 1:
        return logits  # everything: the tolerance below must not trim a tail of mass < 1e-6
    probs = F.softmax(logits.double(), dim=-1)  # float64: the cumulative sum decides ties with p
    order = order_key.argsort(dim=-1, stable=True)
    sorted_probs = probs.gather(-1, order)
    mass_before = sorted_probs.cumsum(-1) - sorted_probs
    keep_sorted = mass_before < mass - MASS_TOLERANCE
    keep_sorted[..., 0] = True  # the first in order always stays, however small the mass asked for
    last_kept_key = order_key.gather(-1, order).masked_fill(~keep_sorted, float("-inf")).amax(-1, keepdim=True)
    return logits.masked_fill(order_key > last_kept_key, float("-inf"))


def entropy_of(log_p):
    return -(log_p.exp() * log_p).nan_to_num().sum(-1, keepdim=True)  # 0 * log 0 = 0 for removed tokens


# ----------------------------------------------------------------------------
# One function per method: raw logits (B, V) fp32 and the method's parameter -> logits (B, V)


def greedy(logits):
    ids = torch.arange(logits.size(-1), device=logits.device)  # not F.one_hot: it checks its input on the host
    first_max = ids == logits.argmax(-1, keepdim=True)  # ties: the lowest id, as argmax
    return logits.masked_fill(~first_max, float("-inf"))


def temperature_only(logits):
    return logits


def top_k(logits, top_k):
    kth = logits.topk(min(top_k, logits.size(-1)), dim=-1).values[..., -1:]
    return keep_only(logits, logits >= kth)  # ties with the k-th are kept, as in Hugging Face


def top_p(logits, top_p):
    """Nucleus sampling (Holtzman et al. 2020): the smallest most-probable prefix of mass >= top_p."""
    return keep_smallest_prefix(logits, -logits, top_p)


def min_p(logits, min_p):
    """Min-p (Nguyen et al. 2024): p >= min_p * max p, i.e. z - max z >= log(min_p), no softmax needed."""
    # the head's own log r and log threshold: min-p is exactly its one-hot case, ties included
    return keep_only(logits, log_ratio(logits) >= log_threshold(min_p).item())


def typical(logits, typical_p):
    """Typical sampling (Meister et al. 2023): the tokens whose surprisal is closest to the
    entropy, closest first, until their mass reaches typical_p."""
    log_p = F.log_softmax(logits.double(), dim=-1)
    return keep_smallest_prefix(logits, (-log_p - entropy_of(log_p)).abs(), typical_p)


def epsilon(logits, epsilon_cutoff):
    """Epsilon sampling (Hewitt et al. 2022): drop tokens with p < epsilon_cutoff."""
    return keep_only(logits, F.softmax(logits, dim=-1) >= epsilon_cutoff)


def eta(logits, eta_cutoff):
    """Eta sampling (Hewitt et al. 2022): drop p < min(eta, sqrt(eta) * exp(-entropy))."""
    cutoff = torch.exp(-entropy_of(F.log_softmax(logits, dim=-1))).mul(math.sqrt(eta_cutoff)).clamp(max=eta_cutoff)
    return keep_only(logits, F.softmax(logits, dim=-1) >= cutoff)  # the same probabilities epsilon compares


def top_nsigma(logits, n_sigma):
    """Top-nσ (Tang et al. 2024): keep logits within n_sigma standard deviations of the max."""
    finite = torch.isfinite(logits)  # -inf entries (tokens already removed) stay out of the std
    n = finite.sum(-1, keepdim=True)
    mean = logits.where(finite, 0.0).sum(-1, keepdim=True) / n
    var = (logits - mean).where(finite, 0.0).pow(2).sum(-1, keepdim=True) / (n - 1).clamp_min(1)  # as torch.std
    return keep_only(logits, logits >= logits.amax(-1, keepdim=True) - n_sigma * var.sqrt())


def minpplus(logits, head, head_strength=1.0):
    # the very transform the head was trained with: logits + lambda * log c, -inf where c = 0
    return head(logits, head_strength)


def is_real(v):
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


METHODS = {  # method -> (its function, its parameter, the check the value must pass, the rule in words)
    "greedy": (greedy, None, None, None),
    "temperature": (temperature_only, None, None, None),
    "top_k": (top_k, "top_k", lambda v: isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 1,
              "an integer >= 1"),
    "top_p": (top_p, "top_p", lambda v: is_real(v) and 0 < v <= 1, "in (0, 1]"),
    "min_p": (min_p, "min_p", lambda v: is_real(v) and 0 <= v <= 1, "in [0, 1]"),
    "typical": (typical, "typical_p", lambda v: is_real(v) and 0 < v <= 1, "in (0, 1]"),
    "epsilon": (epsilon, "epsilon_cutoff", lambda v: is_real(v) and 0 <= v < 1, "in [0, 1)"),
    "eta": (eta, "eta_cutoff", lambda v: is_real(v) and 0 <= v < 1, "in [0, 1)"),
    "top_nsigma": (top_nsigma, "n_sigma", lambda v: is_real(v) and v >= 0, ">= 0"),
    "minpplus": (minpplus, "head", lambda v: isinstance(v, MinPPlusHead), "a MinPPlusHead (--head PATH.json)"),
}
PARAMS = [name for _, name, _, _ in METHODS.values() if name]


def check_temperatures(values, flag="--temperatures"):
    """values rounded to 6 places, distinct and sorted (tables and plots run from low to high),
    after checking that each (rounded) is a finite number > 0; ValueError naming flag otherwise."""
    bad = [T for T in values if not (math.isfinite(T) and round(T, 6) > 0)]
    if bad:
        raise ValueError(f"{flag} holds {bad[0]:g}: every temperature must be a finite number >= 1e-6")
    return sorted({round(T, 6) for T in values})


def check_params(method, temperature=1.0, temperature_last=False, value_needed=True, head_strength=1.0, **params):
    """The value of the method's own parameter, after checking the method, the parameter names,
    the temperature and (when value_needed) that value (and minpplus's head_strength); ValueError
    naming the problem otherwise. Other methods' parameters are ignored, so a caller can pass one
    dict of every parameter (sample.py's command line refuses them instead: a flag that changes
    nothing is a mistake there)."""
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"unknown method {method!r}: choose one of {', '.join(METHODS)}")
    if not isinstance(temperature_last, bool):
        raise ValueError(f"temperature_last={temperature_last!r} must be True or False")
    unknown = sorted(set(params) - set(PARAMS))
    if unknown:
        raise ValueError(f"unknown sampling parameter(s) {', '.join(unknown)}: the names are {', '.join(PARAMS)}")
    if not (is_real(temperature) and 0 <= temperature < float("inf")):
        raise ValueError(f"temperature={temperature!r} must be a finite number >= 0 (0 means greedy)")
    if method == "minpplus":
        check_strength(head_strength)  # even when greedy decoding makes it moot: a bad value is a mistake
    _, name, valid, rule = METHODS[method]
    if name is None or not value_needed:
        return None
    value = params.get(name)
    if value is None:
        raise ValueError(f"method {method!r} needs {name} (--{name} on the command line), {rule}")
    if not valid(value):
        raise ValueError(f"{name}={value!r} must be {rule}")
    if isinstance(value, numbers.Integral):
        return int(value)  # numpy integers, bools excluded by the check
    return float(value) if is_real(value) else value  # a Fraction or numpy float becomes a plain float


def filter_logits(logits, method, temperature=1.0, temperature_last=False, top_k=None, top_p=None, min_p=None,
                  typical_p=None, epsilon_cutoff=None, eta_cutoff=None, n_sigma=None, head=None, head_strength=1.0):
    """Logits (B, V) -> fp32 logits (B, V) whose softmax is the exact sampling distribution.

    Temperature divides the logits before the method sees them (Hugging Face order) unless
    temperature_last=True (llama.cpp order: the method sees the raw logits, then whatever it
    returns is divided by T). temperature=0 means greedy. Only the method's own parameter is
    used; minpplus also takes head_strength (lambda >= 0: softmax(z / T + lambda * log c(r)),
    0 the identity, 1 the fitted head). Logits that are no tensor, have no vocabulary, or have a row
    with a NaN, a +inf or no token above -inf are a ValueError naming the first such row."""
    value = check_params(method, temperature, temperature_last, top_k=top_k, top_p=top_p, min_p=min_p,
                         typical_p=typical_p, epsilon_cutoff=epsilon_cutoff, eta_cutoff=eta_cutoff, n_sigma=n_sigma,
                         head=head, head_strength=head_strength)
    check_logits(logits)
    logits, temperature = logits.float(), float(temperature)  # a Fraction or numpy value, once checked
    if method == "greedy" or temperature == 0:
        return greedy(logits)
    fn = METHODS[method][0]
    extra = {"head_strength": float(head_strength)} if method == "minpplus" else {}
    method_of = (lambda z: fn(z, value, **extra)) if value is not None else fn
    if temperature_last:
        return divide(method_of(logits), temperature)
    return method_of(divide(logits, temperature))


LOGIT_FAULTS = {"nan": "holds NaN", "inf": "holds +inf", "-inf": "is all -inf (no token is left to sample)"}


def check_logits(logits):
    """ValueError naming the first bad row unless logits is a (..., V) tensor, V >= 1, each row with
    no NaN, no +inf and some token above -inf: else softmax is NaN and a sampler draws garbage. It
    costs one reduction, the row max (NaN and +inf win it; -inf only for an all -inf row), and one
    read of a flag, skipped while a CUDA graph is captured (nothing can be read then; the eager
    first decoding step checked the same computation)."""
    if not torch.is_tensor(logits) or logits.dim() == 0:
        what = f"a {type(logits).__name__}" if not torch.is_tensor(logits) else "one of shape ()"
        raise ValueError(f"logits must be a tensor of shape (batch, vocab), not {what}: pass the model's output")
    if logits.size(-1) == 0:
        raise ValueError(f"no vocabulary: logits of shape {tuple(logits.shape)} have no token to sample")
    if logits.is_cuda and torch.cuda.is_current_stream_capturing():
        return
    row_max = logits.amax(-1).reshape(-1)
    bad = ~torch.isfinite(row_max)
    if bad.any():
        row = int(bad.nonzero()[0])
        raise ValueError(f"logits row {row} {LOGIT_FAULTS[str(row_max[row].item())]}: sampling needs finite logits "
                         "with one above -inf; check the model's output (in float32, if it overflowed)")


def divide(logits, temperature):
    """logits / T; where a tiny T overflows a row (its max turns +-inf and softmax NaN), that row's
    greedy limit instead. Only T < 1 can overflow finite logits, so T >= 1 costs nothing more."""
    scaled = logits / temperature
    if temperature >= 1:
        return scaled
    overflowed = ~torch.isfinite(scaled.amax(-1, keepdim=True)) & torch.isfinite(logits.amax(-1, keepdim=True))
    return torch.where(overflowed, greedy(logits), scaled)


# ----------------------------------------------------------------------------
# Generation


def left_pad(prompts):
    """Right-align prompts of different lengths in one (B, L) batch; pad[b] = row b's padding."""
    lengths = torch.tensor([len(p) for p in prompts])
    L = int(lengths.max())
    idx = torch.zeros(len(prompts), L, dtype=torch.long)
    for row, prompt in enumerate(prompts):
        idx[row, L - len(prompt):] = torch.tensor(prompt, dtype=torch.long)
    return idx, L - lengths


def crop_prompts(prompts, max_prompt_len):
    """Keep the last max_prompt_len tokens of each prompt, warning when anything is cut."""
    too_long = [len(p) for p in prompts if len(p) > max_prompt_len]
    if too_long:  # stacklevel 4: point at generate's caller, past the inference_mode wrapper
        warnings.warn(f"{len(too_long)} prompt(s) of up to {max(too_long)} tokens cropped to their last "
                      f"{max_prompt_len} tokens to leave room for the new ones in the context", stacklevel=4)
    return [p[-max_prompt_len:] for p in prompts]


def draw(logits, generator=None):
    """One token id per row, drawn from softmax(logits) (B, V).

    An exponential race: with E_v ~ Exp(1), argmax p_v / E_v is token v with probability p_v
    (E_v / p_v is exponential with rate p_v; the smallest of them wins). Unlike
    torch.multinomial it never waits for the GPU, so a decoding step can be a CUDA graph."""
    probs = F.softmax(logits.float(), dim=-1)
    race = torch.empty_like(probs).exponential_(generator=generator)
    race.clamp_min_(torch.finfo(race.dtype).tiny)  # a draw of exactly 0 would make a removed token's 0 / 0
    return probs.div_(race).argmax(-1)


@torch.inference_mode()
def generate(model, prompts, max_new_tokens, method="temperature", do_sample=True, eos_id=None,
             generator=None, cuda_graph=True, **params):
    """Decode up to max_new_tokens after each prompt; returns one list of new token ids per prompt.

    prompts: a list of token-id lists (lengths may differ; they are left-padded, with per-row
    positions and the padding masked) or a (B, T) tensor. A row ends with its own eos_id (the
    list includes it; eos_id may be a list of ids, e.g. a chat model's end of turn and end of
    text); the others go on. do_sample=False is argmax whatever the method.
    params: temperature, temperature_last and the method's parameter, as in filter_logits.
    The prompt and the new tokens must fit in the context: a prompt longer than
    max_seq_len - max_new_tokens keeps its last tokens, with a warning.
    On CUDA each decoding step after the first is replayed from a CUDA graph unless
    cuda_graph=False; the tokens are the same either way."""
    prompts = prompts.tolist() if torch.is_tensor(prompts) else [list(p) for p in prompts]
    check_params(method, value_needed=do_sample, **params)  # fail before the prefill, not at the first step
    if not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens={max_new_tokens!r} must be an integer >= 0")
    if not prompts:
        raise ValueError("no prompts: pass a list of token-id lists")
    if any(len(p) == 0 for p in prompts):
        raise ValueError("every prompt needs at least one token: start from an <eos> or a newline")
    if max_new_tokens == 0:
        return [[] for _ in prompts]
    context = model.config.max_seq_len
    if max_new_tokens >= context:
        raise ValueError(f"max_new_tokens={max_new_tokens} must be below the context {context}: "
                         "this generator has no sliding window")
    prompts = crop_prompts(prompts, context - max_new_tokens)
    weight = next(model.parameters())
    device = weight.device
    idx, pad = left_pad(prompts)
    cache = KVCache(model.config, len(prompts), idx.size(1) + max_new_tokens, device, weight.dtype,
                    pad=pad.to(device) if pad.any() else None)

    stop_ids = torch.tensor([] if eos_id is None else eos_id, dtype=torch.long, device=device).reshape(-1)

    def choose(logits):  # (B, V) -> (B,)
        return draw(filter_logits(logits, method, **params), generator) if do_sample else logits.argmax(-1)

    token = choose(model(idx.to(device), cache=cache)[:, -1])  # prefill: every prompt token at once
    cache.begin_decoding()
    # the state a decoding step carries, all on the device and updated in place (so a graph can replay it)
    new_tokens = torch.full((len(prompts), max_new_tokens), -1, device=device)  # -1: row had already ended
    done = torch.zeros(len(prompts), dtype=torch.bool, device=device)

    def record():  # the current token goes into its column (the slot it will fill, past the prompt)
        new_tokens.index_copy_(1, cache.slot - idx.size(1), token.masked_fill(done, -1)[:, None])
        if len(stop_ids):  # a row ends at its EOS
            done.logical_or_(torch.isin(token, stop_ids))

    def step():
        record()
        token.copy_(choose(model(token[:, None], cache=cache)[:, -1]))

    run_step = step
    for n in range(max_new_tokens - 1):
        if n == 1 and cuda_graph and device.type == "cuda":
            run_step = cuda_graph_replay(step, device, generator)  # step 0 ran eagerly: the warm-up
        run_step()
        if len(stop_ids) and n % EOS_CHECK_EVERY == EOS_CHECK_EVERY - 1 and done.all():
            break
    else:
        record()  # the last token needs no forward
    return [[t for t in row if t >= 0] for row in new_tokens.tolist()]


# ----------------------------------------------------------------------------
# Command line


def load_head(path, model, temperature):
    """The head JSON, validated against this model, and the temperature to sample it at."""
    head, meta = MinPPlusHead.load_json(path, vocab_size=model.config.vocab_size, checkpoint=fingerprint(model))
    trained_at = meta.get("temperature", 1.0)
    if temperature is None:
        return head, trained_at
    if temperature != trained_at:
        warnings.warn(f"the head was trained at temperature {trained_at}; sampling it at {temperature}")
    return head, temperature


def load_text_side(ckpt, ckpt_path, data_dir, vocab_size):
    """(tokenizer, meta) of the data the checkpoint was trained on, checked against the model; for a
    model convert.py wrote (and no data_dir), its own tokenizer, which travels beside its ckpt.pt."""
    if data_dir is None and "converted_from" in ckpt:
        tokenizer, meta = pretrained_tokenizer.load(os.path.dirname(ckpt_path) or ".")
        if meta["vocab_size"] != vocab_size:
            raise ValueError(f"the tokenizer beside {ckpt_path} is for vocab_size {meta['vocab_size']}, the model "
                             f"has {vocab_size}: convert the model again")
        return tokenizer, meta
    data_dir = data_dir or trained_data_dir(ckpt, ckpt_path)
    meta = corpus.load_meta(data_dir)
    if meta["vocab_size"] != vocab_size:
        raise ValueError(f"{data_dir} has vocab_size {meta['vocab_size']} but the model has {vocab_size}: "
                         "pass the --data_dir the model was trained on")
    return corpus.load_tokenizer(data_dir), meta


def prompt_of(args, tokenizer, meta):
    """(the id or ids that end a sample, the prompt's ids) for --prompt or --chat."""
    if meta["kind"] == "pretrained":  # a converted model: its BOS, its end of text and of turn, its chat template
        text = args.prompt if args.chat is None else pretrained_tokenizer.render_chat(meta, args.chat, tokenizer)
        prompt_ids = pretrained_tokenizer.encode(tokenizer, meta, text)
        return meta["stop_ids"], prompt_ids or tokenizer.encode("\n", add_special_tokens=False).ids
    if args.chat is not None:
        raise ValueError("--chat needs a converted chat model (python convert.py): use --prompt")
    eos_id = meta.get("eos_id")
    prompt_ids = tokenizer.encode(args.prompt).ids if args.prompt else []
    unk_id = tokenizer.token_to_id("<unk>")
    if unk_id is not None and unk_id in prompt_ids:  # the word-level synthetic vocabulary
        unknown = [w for w in args.prompt.split() if tokenizer.token_to_id(w) is None]
        raise ValueError(f"the prompt has words the model's vocabulary lacks ({', '.join(unknown)}): "
                         f"use its words (lower case; they are in the data's tokenizer.json)")
    if not args.prompt or meta["kind"] in ("synthetic", "task"):  # documents start after an <eos>
        prompt_ids = ([eos_id] if eos_id is not None else tokenizer.encode("\n").ids) + prompt_ids
    return eos_id, prompt_ids


def main(argv=None):
    script.run_script(cli, argv)


def cli(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", default="out/ckpt.pt")
    parser.add_argument("--data_dir", default=None, help="tokenizer location; default: the checkpoint's data")
    parser.add_argument("--prompt", default="", help="text to continue; empty starts a new document")
    parser.add_argument("--chat", default=None, help="a converted chat model: this message, in its chat template; "
                        "the reply stops at its end of turn")
    parser.add_argument("--num_samples", type=int, default=3)
    parser.add_argument("--max_new_tokens", type=int, default=60)
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument("--device", default="auto", help="auto: cuda when available, else cpu")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model first: fused kernels "
                        "in each CUDA-graph decoding step (about 2x the tokens/s on a GPU, after a minute of "
                        "compiling)")
    parser.add_argument("--method", default="temperature", choices=list(METHODS))
    parser.add_argument("--do_sample", action=argparse.BooleanOptionalAction, default=True,
                        help="--no-do_sample (or --greedy): argmax whatever the method")
    parser.add_argument("--greedy", dest="do_sample", action="store_false", help="same as --no-do_sample")
    parser.add_argument("--temperature", type=float, default=None, help="default 1 (the head's own for minpplus)")
    parser.add_argument("--temperature_last", action="store_true", help="apply the method first, then temperature")
    parser.add_argument("--top_k", type=int)
    parser.add_argument("--top_p", type=float)
    parser.add_argument("--min_p", type=float)
    parser.add_argument("--typical_p", type=float)
    parser.add_argument("--epsilon_cutoff", type=float)
    parser.add_argument("--eta_cutoff", type=float)
    parser.add_argument("--n_sigma", type=float)
    parser.add_argument("--head", default=None, help="MinP+ head JSON for --method minpplus; default: "
                                                     "head.json beside --ckpt")
    parser.add_argument("--head_strength", type=float, default=None, help="MinP+ strength lambda >= 0 (default 1): "
                        "softmax(z / T + lambda * log c(r)); 0 no head, 1 the fitted head, above 1 stronger")
    args = parser.parse_args(argv)
    if args.num_samples < 1:
        raise ValueError(f"--num_samples {args.num_samples} must be >= 1")
    if args.chat is not None and args.prompt:
        raise ValueError("--chat and --prompt both given: --chat is the message, --prompt a text to continue; "
                         "pass one")
    method_of = {name: method for method, (_, name, _, _) in METHODS.items() if name} | {"head_strength": "minpplus"}
    stray = [name for name, method in method_of.items() if getattr(args, name) is not None and method != args.method]
    if stray:  # a flag that would be silently ignored: say so rather than sample with something else
        raise ValueError(f"--{stray[0]} belongs to --method {method_of[stray[0]]}, not --method {args.method}: "
                         f"add --method {method_of[stray[0]]} or drop --{stray[0]}")

    device = pick_device(args.device)
    model, ckpt = load_checkpoint(args.ckpt, device)
    tokenizer, meta = load_text_side(ckpt, args.ckpt, args.data_dir, model.config.vocab_size)
    params = {name: getattr(args, name) for name in PARAMS if name != "head"}
    temperature = args.temperature
    if args.method == "minpplus":
        head_path = args.head or os.path.join(os.path.dirname(args.ckpt), "head.json")
        params["head"], temperature = load_head(head_path, model, temperature)
        params["head"].to(device)
    params.update(temperature=1.0 if temperature is None else temperature, temperature_last=args.temperature_last)
    if args.method == "minpplus":
        params["head_strength"] = 1.0 if args.head_strength is None else args.head_strength

    eos_id, prompt_ids = prompt_of(args, tokenizer, meta)
    word_level = meta["kind"] in ("synthetic", "task")
    decoder = torch.compile(model) if args.compile else model

    def run():
        generator = torch.Generator(device).manual_seed(args.seed)
        return generate(decoder, [prompt_ids] * args.num_samples, args.max_new_tokens, method=args.method,
                        do_sample=args.do_sample, eos_id=eos_id, generator=generator, **params)

    if args.compile:
        run()  # compiles: the timed run below reuses the compiled code (and draws the same text)
    start = time.perf_counter()
    outputs = run()
    seconds = time.perf_counter() - start
    separator = " " if word_level else ""  # word-level tokens carry no spaces; BPE's do
    for i, new in enumerate(outputs):
        print(f"--- sample {i + 1}")
        text = tokenizer.decode(new)  # BPE text keeps its leading space: the prompt's last word may end there
        print(args.prompt + separator + text.rstrip() if args.prompt and args.chat is None else text.strip())
    n_tokens = sum(len(o) for o in outputs)
    decoding = args.method if args.do_sample else "greedy"
    print(f"--- {n_tokens} tokens in {seconds:.2f} s: {n_tokens / seconds:,.0f} tokens/s ({device}, {decoding}"
          f"{', compiled' if args.compile else ''})")


if __name__ == "__main__":
    main()
