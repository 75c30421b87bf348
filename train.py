"""Train the language model (default) or the MinP+ head on a frozen checkpoint.

    python train.py                                  # tiny preset on the synthetic language
    python train.py --data_dir data/shakespeare --preset small
    python train.py --head minpplus                  # head on out/ckpt.pt
    python train.py --resume                         # continue out/ckpt.pt (or out/head_ckpt.pt)

Every flag is a field of TrainConfig (or of ModelConfig, overriding the preset).
A run writes into --out_dir: ckpt.pt, metrics.jsonl, and for the head head.json + head_ckpt.pt.
"""
import argparse
import contextlib
import dataclasses
import json
import math
import os
import signal
import time
from dataclasses import dataclass, asdict

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

import data
from head import MinPPlusHead, chunk_stats, diagnostics, format_diagnostics, plot_curve, target_counts
from model import PRESETS, ModelConfig, Transformer, cuda_graph_replay, fingerprint, load_checkpoint, pick_device, read_checkpoint
from optim import AdamW, clip_grad_norm_, cosine_lr


@dataclass
class TrainConfig:
    # run
    out_dir: str = "out"
    data_dir: str = "data/synthetic"  # created with the synthetic language when missing
    preset: str = "tiny"
    device: str = "auto"  # auto: cuda when available, else cpu
    dtype: str = "auto"  # auto: bfloat16 on CUDA, float32 on CPU; float16 uses a GradScaler
    compile: bool = False
    seed: int = 1337
    resume: bool = False
    # optimisation
    batch_size: int = 32
    block_size: int = 0  # 0: the model's max_seq_len
    grad_accum: int = 1
    max_steps: int = 800
    lr: float = 3e-3
    min_lr: float = 3e-4
    warmup_steps: int = 60
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    # evaluation and checkpoints
    eval_interval: int = 200
    eval_batches: int = 20
    truth_windows: int = 64  # synthetic language: windows scored against the exact p*
    # MinP+ head (--head minpplus)
    head: str = ""  # "" trains the LM; "minpplus" trains the head on a frozen LM
    init_from: str = ""  # LM checkpoint for the head; default <out_dir>/ckpt.pt
    temperature: float = 1.0
    head_thresholds: int = 32
    head_tau_min: float = 1e-4
    head_spacing: str = "log"
    head_data: str = "val"  # fit on: val (its first half; held-out figures from the second) | train
    head_tokens: int = 200_000  # positions whose bucket statistics the head is fitted on (at most the text's)
    head_val_tokens: int = 50_000  # held-out positions it is evaluated on
    head_epochs: int = 100  # one full-batch step each: a pass over the (N, K) statistics
    head_lr: float = 0.2
    head_reg: str = "none"  # none | smooth (spread the weights) | sparse (concentrate them)
    head_reg_weight: float = 0.0
    head_prune_below: float = 0.0  # at export, drop weights below this share of the total


# how this process runs, not what the run computes: a resumed run takes these from its own flags
PROCESS_FIELDS = ("out_dir", "device", "compile", "resume")


def parse_args(argv=None):
    """Flags named after TrainConfig's and ModelConfig's fields; model flags override the preset.

    With --resume, every TrainConfig flag not given on this command line comes from the run being
    resumed (the train_config in its checkpoint), except PROCESS_FIELDS, so a bare --resume
    continues the same run; a flag that is given (say --max_steps, to train longer) wins. A
    resumed model is the checkpoint's."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     argument_default=argparse.SUPPRESS)  # only the flags given are set
    for cls, group in ((TrainConfig, "training"), (ModelConfig, "model (overrides the preset)")):
        arg_group = parser.add_argument_group(group)
        for f in dataclasses.fields(cls):
            if f.name == "vocab_size":  # always the data's
                continue
            kind = {"action": argparse.BooleanOptionalAction} if f.type is bool else {"type": f.type}
            arg_group.add_argument(f"--{f.name}", help=f"default {f.default}" if cls is TrainConfig else None, **kind)
    given = vars(parser.parse_args(argv))
    train_fields = {f.name for f in dataclasses.fields(TrainConfig)}
    cfg = TrainConfig(**{k: v for k, v in given.items() if k in train_fields})
    if cfg.resume:
        saved = resumed_train_config(cfg)
        cfg = TrainConfig(**{**{k: v for k, v in saved.items() if k in train_fields and k not in PROCESS_FIELDS},
                             **{k: v for k, v in given.items() if k in train_fields}})
    model_overrides = {k: v for k, v in given.items() if k not in train_fields}
    return cfg, model_overrides


def resumed_train_config(cfg):
    """The train_config saved in the checkpoint --resume continues ({} when there is none:
    train_lm and train_head then say so)."""
    path = os.path.join(cfg.out_dir, "head_ckpt.pt" if cfg.head else "ckpt.pt")
    if not os.path.exists(path):
        return {}
    return read_checkpoint(path).get("train_config", {})


def check_config(cfg):
    if cfg.preset not in PRESETS:
        raise SystemExit(f"error: unknown --preset {cfg.preset!r}: choose one of {', '.join(PRESETS)}")
    if cfg.head not in ("", "minpplus"):
        raise SystemExit(f"error: unknown --head {cfg.head!r}: the only head is 'minpplus'")
    if cfg.dtype not in ("auto", "float32", "bfloat16", "float16"):
        raise SystemExit(f"error: unknown --dtype {cfg.dtype!r}: use auto, float32, bfloat16 or float16")
    if not (math.isfinite(cfg.temperature) and cfg.temperature > 0):
        raise SystemExit(f"error: --temperature must be a finite number > 0, got {cfg.temperature}")
    if not 0 <= cfg.head_prune_below <= 1:
        raise SystemExit(f"error: --head_prune_below {cfg.head_prune_below} must be a share of the total weight, "
                         f"in [0, 1]")
    if not cfg.grad_clip >= 0:
        raise SystemExit(f"error: --grad_clip must be >= 0 (0 turns clipping off), got {cfg.grad_clip}")
    if not (math.isfinite(cfg.head_lr) and cfg.head_lr >= 0):
        raise SystemExit(f"error: --head_lr must be a finite number >= 0, got {cfg.head_lr}")
    if cfg.head_data not in ("val", "train"):
        raise SystemExit(f"error: unknown --head_data {cfg.head_data!r}: use val (held-out text, the default) "
                         f"or train (the LM's own training text)")
    if cfg.head_reg not in ("none", "smooth", "sparse"):
        raise SystemExit(f"error: unknown --head_reg {cfg.head_reg!r}: use none, smooth or sparse")
    for name in ("batch_size", "grad_accum", "max_steps", "eval_interval", "eval_batches", "head_epochs",
                 "head_tokens", "head_val_tokens"):
        if getattr(cfg, name) < 1:
            raise SystemExit(f"error: --{name} must be at least 1, got {getattr(cfg, name)}")


def resolve_device(cfg):
    device = pick_device(cfg.device)
    dtype = cfg.dtype
    if dtype == "auto":
        dtype = "bfloat16" if device.startswith("cuda") else "float32"
    return device, dtype


def setup_ddp(device):
    """Under torchrun (RANK is set): one process per GPU (nccl), or per CPU worker (gloo).
    Returns (rank, world_size, device); (0, 1, device) when not distributed."""
    if "RANK" not in os.environ:
        return 0, 1, device
    dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    if device.startswith("cuda"):
        device = f"cuda:{os.environ['LOCAL_RANK']}"
        torch.cuda.set_device(device)
    return dist.get_rank(), dist.get_world_size(), device


def sum_over_ranks(values, world_size, device):
    """Sum a few floats over the ranks, so every rank takes the same stop decisions."""
    if world_size == 1:
        return values
    summed = torch.tensor(values, dtype=torch.float64, device=device)  # nccl reduces on the GPU
    dist.all_reduce(summed)
    return summed.tolist()


def frozen_dtype(device, dtype="auto"):
    """The frozen LM under the head runs in fp16 autocast on CUDA, fp32 on a CPU (only the head
    trains, in fp32); --dtype picks another, e.g. bfloat16 for a model whose activations overflow fp16."""
    if dtype != "auto":
        return dtype
    return "float16" if device.startswith("cuda") else "float32"


def autocast(device, dtype):
    """Mixed precision for the forward pass; plain fp32 needs no context at all."""
    if dtype == "float32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=getattr(torch, dtype))


def ensure_data(cfg):
    """The synthetic language is generated on first use, so `python train.py` works anywhere."""
    if not os.path.exists(os.path.join(cfg.data_dir, "meta.json")):
        if os.path.normpath(cfg.data_dir) != os.path.normpath(TrainConfig.data_dir):
            data.load_meta(cfg.data_dir)  # exits with the message that says how to prepare it
        print(f"generating the synthetic language into {cfg.data_dir} ...")
        data.prepare_synthetic(cfg.data_dir)
    meta = data.load_meta(cfg.data_dir)
    return meta, data.open_split(cfg.data_dir, "train", meta), data.open_split(cfg.data_dir, "val", meta)


def save_atomic(obj, path):
    data.write_atomically(path, lambda tmp: torch.save(obj, tmp))


def log_metrics(out_dir, row):
    with open(os.path.join(out_dir, "metrics.jsonl"), "a") as f:
        f.write(json.dumps(row) + "\n")


class StopFlag:
    """Ctrl-C asks the loop to stop after the current step (and save); a second Ctrl-C kills."""

    def __init__(self):
        self.requested = False
        self.previous = signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        tqdm.write("interrupt: saving a checkpoint after this step (Ctrl-C again to quit now)")

    def restore(self):
        signal.signal(signal.SIGINT, self.previous)


# ----------------------------------------------------------------------------
# Evaluation against data and, on the synthetic language, against the exact distribution


def unigram_loss(train_tokens, val_tokens, vocab_size):
    """Cross-entropy on val of add-one-smoothed train unigram frequencies: the bar to clear."""
    counts = np.ones(vocab_size)
    chunk = 1 << 24
    for i in range(0, len(train_tokens), chunk):
        counts += np.bincount(train_tokens[i:i + chunk], minlength=vocab_size)
    log_freq = np.log(counts / counts.sum())
    return float(-log_freq[np.asarray(val_tokens[:1_000_000], dtype=np.int64)].mean())


def kl_to_truth(p_true, logits):
    """Mean over positions of KL(p* || softmax(logits)); 0 log 0 = 0, and inf where the model
    gives zero probability to a token that p* can emit."""
    log_q = F.log_softmax(logits.float(), dim=-1)
    terms = torch.where(p_true > 0, p_true * (p_true.clamp_min(1e-30).log() - log_q), torch.zeros_like(p_true))
    return terms.sum(-1).mean().item()


class Truth:
    """Held-out windows of the synthetic language with their exact next-token distributions."""

    def __init__(self, meta, val_tokens, n_windows, block_size, device):
        lang = data.SyntheticLanguage(meta["seed"])
        windows = data.document_windows(val_tokens, lang.eos_id, n_windows, block_size + 1)
        self.x = torch.from_numpy(windows[:, :-1]).to(device)
        self.p = torch.from_numpy(lang.next_token_probs(windows[:, :-1])).float().to(device)
        nonzero = self.p > 0
        self.entropy = -(self.p[nonzero] * self.p[nonzero].log()).sum().item() / self.p[..., 0].numel()


@torch.no_grad()
def evaluate(model, splits, cfg, device, dtype, meta, truth):
    """Mean loss on the same eval_batches windows of each split every time (a fixed RNG)."""
    model.eval()
    result = {}
    for name, tokens in splits.items():
        rng = np.random.default_rng(cfg.seed + 1)
        losses = []
        for _ in range(cfg.eval_batches):
            x, y = data.get_batch(tokens, cfg.batch_size, cfg.block_size, rng, device)
            with autocast(device, dtype):
                _, loss = model(x, y)
            losses.append(loss.item())
        result[f"{name}_loss"] = float(np.mean(losses))
    if meta.get("val_bytes"):  # bits per byte compare across tokenizers
        result["val_bpb"] = result["val_loss"] / math.log(2) * meta["val_tokens"] / meta["val_bytes"]
    if truth is not None:
        with autocast(device, dtype):
            logits = model(truth.x)
        result["kl_truth"] = kl_to_truth(truth.p, logits)
    model.train()
    return result


# ----------------------------------------------------------------------------
# Language-model pretraining


def build_model(cfg, model_overrides, meta):
    settings = {**PRESETS[cfg.preset], **model_overrides, "vocab_size": meta["vocab_size"]}
    try:
        return ModelConfig(**settings)
    except ValueError as e:  # --dim 30 with 4 heads, --n_kv_heads 3, ...
        raise SystemExit(f"error: {e}") from None


def train_lm(cfg, model_overrides):
    torch.manual_seed(cfg.seed)
    device, dtype = resolve_device(cfg)
    rank, world_size, device = setup_ddp(device)
    master = rank == 0  # only rank 0 prints, logs and writes checkpoints
    if master:
        meta, train_tokens, val_tokens = ensure_data(cfg)
    if world_size > 1:
        dist.barrier()  # the other ranks wait for rank 0 to generate the data
    if not master:
        meta, train_tokens, val_tokens = ensure_data(cfg)
    os.makedirs(cfg.out_dir, exist_ok=True)
    ckpt_path = os.path.join(cfg.out_dir, "ckpt.pt")
    if cfg.resume and not os.path.exists(ckpt_path):
        raise SystemExit(f"error: --resume but no checkpoint at {ckpt_path}: drop --resume to start afresh")
    ckpt = read_checkpoint(ckpt_path, device) if cfg.resume else None
    model_cfg = ModelConfig(**ckpt["model_config"]) if ckpt else build_model(cfg, model_overrides, meta)
    if model_cfg.vocab_size != meta["vocab_size"]:
        raise SystemExit(f"error: the checkpoint's vocab_size {model_cfg.vocab_size} differs from "
                         f"{cfg.data_dir}'s {meta['vocab_size']}: resume with the data it was trained on")
    cfg.block_size = cfg.block_size or model_cfg.max_seq_len
    if cfg.block_size > model_cfg.max_seq_len:
        raise SystemExit(f"error: --block_size {cfg.block_size} exceeds max_seq_len {model_cfg.max_seq_len}")
    for split, tokens in (("train", train_tokens), ("val", val_tokens)):  # now, not at the first eval
        if len(tokens) <= cfg.block_size:
            raise SystemExit(f"error: {cfg.data_dir}'s {split} split has {len(tokens):,} tokens, too few for one "
                             f"window of {cfg.block_size}: use more text or a smaller --block_size")
    model = Transformer(model_cfg).to(device)
    try:
        optimizer = AdamW(model.optim_groups(cfg.weight_decay), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
    except ValueError as e:  # a negative lr, a beta outside [0, 1)
        raise SystemExit(f"error: {e}") from None
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == "float16")
    rng = np.random.default_rng(cfg.seed + rank)  # each rank draws its own windows
    step = 0
    if ckpt:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scaler.load_state_dict(ckpt["scaler"])
        if len(ckpt["rng"]) != world_size:
            raise SystemExit(f"error: {ckpt_path} was written by {len(ckpt['rng'])} process(es), this run has "
                             f"{world_size}: resume with the same number of processes")
        rng.bit_generator.state = ckpt["rng"][rank]
        torch.set_rng_state(ckpt["torch_rng"].cpu())  # map_location moved it; the CPU generator wants it back
        step = ckpt["step"]
        if master:
            print(f"resuming {ckpt_path} at step {step}")
    eval_model = torch.compile(model) if cfg.compile else model
    train_model = eval_model
    if world_size > 1:
        local = [int(os.environ["LOCAL_RANK"])] if device.startswith("cuda") else None
        train_model = DistributedDataParallel(eval_model, device_ids=local)
    truth, unigram = None, None
    if master:  # only rank 0 evaluates
        if meta["kind"] == "synthetic":
            truth = Truth(meta, val_tokens, cfg.truth_windows, cfg.block_size, device)
        unigram = unigram_loss(train_tokens, val_tokens, meta["vocab_size"])
        print(f"model {model.num_params() / 1e6:.2f}M parameters | {cfg.preset} | {device} {dtype} | "
              f"unigram val loss {unigram:.3f}" + (f" | true entropy {truth.entropy:.3f}" if truth else "")
              + (f" | {world_size} processes" if world_size > 1 else ""))

    def save(step):
        rng_states = [rng.bit_generator.state]
        if world_size > 1:  # every rank's sampler state, so --resume replays each rank's windows
            rng_states = [None] * world_size
            dist.all_gather_object(rng_states, rng.bit_generator.state)
        if master:
            save_atomic({"model": model.state_dict(), "model_config": asdict(model_cfg), "train_config": asdict(cfg),
                         "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(), "step": step,
                         "rng": rng_states, "torch_rng": torch.get_rng_state()}, ckpt_path)

    def run_eval(step):
        if not master:
            return
        result = evaluate(eval_model, {"train": train_tokens, "val": val_tokens}, cfg, device, dtype, meta, truth)
        log_metrics(cfg.out_dir, {"step": step, **result, "unigram_loss": unigram})
        tqdm.write(f"step {step}: " + " | ".join(f"{k} {v:.4f}" for k, v in result.items()))
        return result

    stop = StopFlag()
    tokens_per_step = cfg.batch_size * cfg.block_size * cfg.grad_accum * world_size
    bar = tqdm(total=cfg.max_steps, initial=step, desc="train", dynamic_ncols=True, disable=not master)
    model.train()
    try:
        while step < cfg.max_steps:
            t0 = time.perf_counter()
            lr = cosine_lr(step, cfg.lr, cfg.min_lr, cfg.warmup_steps, cfg.max_steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            loss_sum = 0.0
            for micro in range(cfg.grad_accum):
                if world_size > 1:  # average gradients across ranks once, on the last micro-step
                    train_model.require_backward_grad_sync = micro == cfg.grad_accum - 1
                x, y = data.get_batch(train_tokens, cfg.batch_size, cfg.block_size, rng, device)
                with autocast(device, dtype):
                    _, loss = train_model(x, y)
                scaler.scale(loss / cfg.grad_accum).backward()
                loss_sum += loss.item() / cfg.grad_accum
            loss_sum, stop_votes = sum_over_ranks([loss_sum, float(stop.requested)], world_size, device)
            loss_sum /= world_size
            if not math.isfinite(loss_sum):
                raise SystemExit(f"error: loss is {loss_sum} at step {step}: stopping; the last good checkpoint "
                                 f"{ckpt_path} is untouched. Lower --lr or use --dtype bfloat16/float32")
            scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
            grad_norm = clip_grad_norm_(model.parameters(), cfg.grad_clip or math.inf)  # 0: measure, never clip
            if not scaler.is_enabled() and not math.isfinite(grad_norm):  # fp16's scaler skips such a step itself
                raise SystemExit(f"error: gradient norm is {float(grad_norm)} at step {step} (the loss was finite): "
                                 f"stopping; the last good checkpoint {ckpt_path} is untouched. Lower --lr")
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            tokens_per_s = tokens_per_step / (time.perf_counter() - t0)
            postfix = {"loss": f"{loss_sum:.3f}", "lr": f"{lr:.1e}", "tok/s": f"{tokens_per_s:,.0f}"}
            if device.startswith("cuda"):  # per GPU, against the H100's dense bf16 peak of 989 TFLOP/s
                postfix["mfu"] = f"{model.flops_per_token(cfg.block_size) * tokens_per_s / world_size / 989e12:.1%}"
            bar.set_postfix(postfix)
            bar.update(1)
            if master:
                log_metrics(cfg.out_dir, {"step": step, "train_loss_step": loss_sum, "lr": lr,
                                          "grad_norm": float(grad_norm), "tokens_per_s": tokens_per_s})
            if step % cfg.eval_interval == 0 or step == cfg.max_steps:
                run_eval(step)
                save(step)
            elif stop_votes:
                save(step)
            if stop_votes:
                if master:
                    tqdm.write(f"saved {ckpt_path} at step {step}; continue with --resume")
                break
        if world_size > 1:  # leave together: gloo aborts a process whose peer tears down first
            dist.barrier()
    finally:
        bar.close()
        stop.restore()
        if world_size > 1:
            dist.destroy_process_group()
    return model


# ----------------------------------------------------------------------------
# MinP+ head on a frozen model


@torch.no_grad()
def collect_stats(model, head, tokens, n_tokens, cfg, device, overlap=True):
    """Bucket statistics (S, b, log p_y) of about n_tokens positions (whole non-overlapping windows
    of the context length: each position at most once; data.tiling_batches).

    The LM is frozen, so its forward runs once here (fp16 autocast on CUDA) and the head is
    then fitted on these (N, K) tensors for many epochs without touching the logits again.
    On CUDA each batch's statistics run on a second stream while the next batch's forward is
    on the first, so their memory-bound kernels can fill the forward's gaps (overlap=False:
    one stream). cfg.compile runs the per-chunk statistics through torch.compile (model is
    whatever the caller passes: compiled or not)."""
    per_chunk = torch.compile(chunk_stats, dynamic=False) if cfg.compile else chunk_stats
    dtype = frozen_dtype(device, cfg.dtype)
    main = torch.cuda.current_stream(device) if torch.device(device).type == "cuda" else None
    side = torch.cuda.Stream(device) if overlap and main is not None else None

    def batch_stats(logits, y):
        logits = logits.view(-1, logits.size(-1))
        if cfg.temperature != 1:  # in fp32 as sampling does it; at 1, skip a whole extra pass over the logits
            logits = logits.float() / cfg.temperature
        # no per-batch checks: a host sync here would idle the GPU while the next forward is launched
        return head.bucket_stats(logits, y.view(-1), check=False, per_chunk=per_chunk)

    stats = []
    for starts in tqdm(data.tiling_batches(tokens, cfg.batch_size, cfg.block_size, n_tokens),
                       desc="frozen forward", dynamic_ncols=True, leave=False):
        x, y = data.windows_at(tokens, starts, cfg.block_size, device)
        with autocast(device, dtype):
            logits = model(x)
        if side is None:
            stats.append(batch_stats(logits, y))
            continue
        side.wait_stream(main)
        with torch.cuda.stream(side):
            stats.append(batch_stats(logits, y))
        for t in (logits, y):  # the allocator must not hand these to the next forward before side is done
            t.record_stream(side)
    if side is not None:
        main.wait_stream(side)
        for t in (t for part in stats for t in part):  # made on side, read and freed on main
            t.record_stream(main)
    S, b, logp_y = (torch.cat(parts) for parts in zip(*stats))
    if not torch.isfinite(logp_y).all():  # NaN: an overflowed row; -inf: a target the logits rule out
        raise SystemExit(f"error: the frozen model's logits hold NaN or inf under {dtype} autocast"
                         f"{f' at temperature {cfg.temperature}' if cfg.temperature != 1 else ''}: "
                         f"{'pass --dtype bfloat16 (fp16 overflows) or ' if dtype == 'float16' else ''}"
                         f"{'raise --temperature or ' if cfg.temperature < 1 else ''}check the checkpoint")
    return S, b, logp_y


def head_optimizer(head, cfg):
    # capturable: step count and lr stay on the device, so a fitting step can be a CUDA graph
    return AdamW(head.parameters(), lr=cfg.head_lr, betas=(0.9, 0.99), weight_decay=0.0, capturable=True)


def head_fitter(head, optimizer, stats, cfg, cuda_graph=True):
    """fit(first, last) -> the loss before the last step (0-d tensor): epochs first..last-1, each
    one full-batch AdamW step on all N rows of the statistics, the lr on a cosine schedule.

    Why full batch: the loss has 32 parameters and no noise worth averaging over minibatches,
    one pass over (N, K) statistics is a few cheap reads, and with nothing to shuffle every step
    has the same shapes. The target counts and mean log p_y do not depend on the head, so they
    are computed once; the epoch (which picks the lr) is a device-side counter. On CUDA the step
    is captured in a CUDA graph after its first run and replayed: its ~30 small launches cost
    more than its arithmetic, and one replay replaces them."""
    S, b, logp_y = stats
    device = S.device
    rows_per_bucket, mean_logp_y = target_counts(b, len(head.tau)), logp_y.mean()
    warmup = cfg.head_epochs // 10  # under 10 epochs: no warmup, or the only steps would have lr ~0
    lrs = torch.tensor([cosine_lr(e, cfg.head_lr, cfg.head_lr / 10, warmup, cfg.head_epochs)
                        for e in range(cfg.head_epochs)], device=device)
    epoch_index = torch.zeros(1, dtype=torch.long, device=device)
    last_loss = torch.zeros((), device=device)

    def step():
        with torch.enable_grad():
            loss = head.loss_from_counts(S, rows_per_bucket, mean_logp_y)
            if cfg.head_reg != "none":
                loss = loss + cfg.head_reg_weight * head.regulariser(cfg.head_reg)
            head.theta.grad, = torch.autograd.grad(loss, [head.theta])
        for group in optimizer.param_groups:
            group["lr"] = lrs.index_select(0, epoch_index)[0]
        optimizer.step()
        last_loss.copy_(loss.detach())
        epoch_index.add_(1)

    run_step = step
    graphed = cuda_graph and device.type == "cuda"

    def fit(first, last):
        nonlocal run_step
        epoch_index.fill_(first)
        for _ in range(first, last):  # no host sync in between: the caller checks the loss
            run_step()
            if graphed and run_step is step:  # the first step ran eagerly: the warm-up
                run_step = cuda_graph_replay(step, device)
        return last_loss

    return fit


def head_texts(cfg, meta):
    """(tokens the head is fitted on, held-out tokens it is evaluated on).

    By default both come from the val split, its first half and its second: like a
    temperature, the head corrects how the LM predicts text it has not seen, and on its own
    training text an LM that has overfit looks sharper than it is (on tiny Shakespeare a head
    fitted on train made held-out CE 1 % worse; fitted on held-out text it did no harm)."""
    val_tokens = data.open_split(cfg.data_dir, "val", meta)
    if cfg.head_data == "train":
        return data.open_split(cfg.data_dir, "train", meta), val_tokens
    half = len(val_tokens) // 2
    if half <= cfg.block_size:
        raise SystemExit(f"error: {cfg.data_dir}'s val split ({len(val_tokens):,} tokens) is too short to halve into "
                         f"windows of {cfg.block_size}: use --head_data train or a smaller --block_size")
    return val_tokens[:half], val_tokens[half:]


# what a head's statistics and thresholds depend on: a resumed head must not change them
HEAD_RUN_FIELDS = ("init_from", "data_dir", "head_data", "head_tokens", "dtype", "block_size", "temperature",
                   "head_thresholds", "head_tau_min", "head_spacing")


def train_head(cfg):
    device, _ = resolve_device(cfg)
    torch.manual_seed(cfg.seed)
    init_from = cfg.init_from or os.path.join(cfg.out_dir, "ckpt.pt")
    model, ckpt = load_checkpoint(init_from, device)
    model.requires_grad_(False)  # frozen: only the head's theta learns
    lm_fingerprint = fingerprint(model)  # names these weights in head_ckpt.pt and head.json
    lm_cfg = ckpt["train_config"]
    cfg.data_dir = lm_cfg["data_dir"] if cfg.data_dir == TrainConfig.data_dir else cfg.data_dir
    cfg.block_size = cfg.block_size or model.config.max_seq_len
    if cfg.block_size > model.config.max_seq_len:
        raise SystemExit(f"error: --block_size {cfg.block_size} exceeds {init_from}'s max_seq_len "
                         f"{model.config.max_seq_len}: drop it or pass at most that")
    meta = data.load_meta(cfg.data_dir)
    if meta["vocab_size"] != model.config.vocab_size:
        raise SystemExit(f"error: {cfg.data_dir} has vocab_size {meta['vocab_size']} but {init_from} has "
                         f"{model.config.vocab_size}: pass the --data_dir the model was trained on")
    fit_tokens, eval_tokens = head_texts(cfg, meta)
    os.makedirs(cfg.out_dir, exist_ok=True)
    try:
        head = MinPPlusHead(cfg.head_thresholds, cfg.head_tau_min, cfg.head_spacing).to(device)
    except ValueError as e:  # --head_thresholds 2, --head_tau_min 1, --head_spacing cubic, ...
        raise SystemExit(f"error: {e}") from None
    optimizer = head_optimizer(head, cfg)
    head_ckpt_path = os.path.join(cfg.out_dir, "head_ckpt.pt")
    epoch = 0
    if cfg.resume:
        if not os.path.exists(head_ckpt_path):
            raise SystemExit(f"error: --resume but no head checkpoint at {head_ckpt_path}")
        state = read_checkpoint(head_ckpt_path, device)
        changed = [k for k in HEAD_RUN_FIELDS if state["train_config"].get(k) != getattr(cfg, k)]
        if state.get("checkpoint") != lm_fingerprint:  # the LM itself was trained on since
            raise SystemExit(f"error: {head_ckpt_path} was fitted on other weights than {init_from}'s now: "
                             f"drop --resume to fit a head on this model")
        if changed:  # the Adam state and epoch belong to statistics these flags define
            was = ", ".join(f"--{k} {state['train_config'].get(k)!r}" for k in changed)
            raise SystemExit(f"error: {head_ckpt_path} was fitted with {was}: resume with those (or no such flags), "
                             f"or drop --resume to fit afresh")
        head.load_state_dict(state["head"])
        optimizer.load_state_dict(state["optimizer"])
        epoch = state["epoch"]
        print(f"resuming the head at epoch {epoch}")

    fitted_on = "the first half of val" if cfg.head_data == "val" else "train"
    frozen = torch.compile(model) if cfg.compile else model  # model itself stays plain for its fingerprint
    fit_stats = collect_stats(frozen, head, fit_tokens, cfg.head_tokens, cfg, device)
    eval_stats = collect_stats(frozen, head, eval_tokens, cfg.head_val_tokens, cfg, device)
    dtype = frozen_dtype(device, cfg.dtype)
    print(f"head on {init_from} | {device} {dtype}{' compiled' if cfg.compile else ''} | "
          f"fitted on {len(fit_stats[1]):,} positions of {fitted_on}, evaluated on {len(eval_stats[1]):,} held-out "
          f"ones | temperature {cfg.temperature}")
    truth = Truth(meta, eval_tokens, cfg.truth_windows, cfg.block_size, device) if meta["kind"] == "synthetic" else None
    if truth is not None:  # the LM is frozen: its logits on the truth windows, and their KL, never change
        with torch.no_grad(), autocast(device, dtype):
            truth_logits = model(truth.x).float() / cfg.temperature  # at the head's T, as base CE is
        kl_base = kl_to_truth(truth.p, truth_logits)

    def run_eval(epoch):
        with torch.no_grad():
            d = diagnostics(head, *eval_stats)
        # CEs, normalised weights, their entropy, share above the lowest threshold, mass above each, c(r)
        row = {"epoch": epoch, **d}
        if truth is not None:
            row["kl_head"] = kl_to_truth(truth.p, head(truth_logits))
            row["kl_base"] = kl_base
        log_metrics(cfg.out_dir, row)
        tqdm.write(f"epoch {epoch}: base CE {d['base_ce']:.4f} | head CE {d['head_ce']:.4f} "
                   f"({d['relative_improvement']:+.2%})"
                   + (f" | KL(p*||q) {row['kl_head']:.4f} vs KL(p*||p) {row['kl_base']:.4f}" if truth else ""))
        return d

    fit = head_fitter(head, optimizer, fit_stats, cfg)
    eval_every = max(1, cfg.head_epochs // 5)
    stop = StopFlag()
    bar = tqdm(total=cfg.head_epochs, initial=epoch, desc="head epochs", dynamic_ncols=True)
    try:
        while epoch < cfg.head_epochs:
            last = min(cfg.head_epochs, (epoch // eval_every + 1) * eval_every)
            loss = fit(epoch, last).item()
            finite_weights = bool(torch.isfinite(head.theta).all())  # the loss predates the round's last step
            if not (math.isfinite(loss) and finite_weights):
                what = f"head loss is {loss}" if not math.isfinite(loss) else "the head's weights are not finite"
                raise SystemExit(f"error: {what} after epoch {last}: stopping; "
                                 f"{head_ckpt_path} is untouched. Lower --head_lr")
            bar.update(last - epoch)
            epoch = last
            run_eval(epoch)
            save_atomic({"head": head.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch,
                         "train_config": asdict(cfg), "checkpoint": lm_fingerprint}, head_ckpt_path)
            if stop.requested and epoch < cfg.head_epochs:  # in the last round: finish and export
                tqdm.write(f"saved {head_ckpt_path} at epoch {epoch}; continue with --resume")
                return head
    finally:
        bar.close()
        stop.restore()

    with torch.no_grad():
        print(format_diagnostics(diagnostics(head, *eval_stats)))
    exported = head.pruned(cfg.head_prune_below) if cfg.head_prune_below > 0 else head
    json_path = os.path.join(cfg.out_dir, "head.json")
    exported.save_json(json_path, temperature=cfg.temperature, vocab_size=model.config.vocab_size,
                       checkpoint=lm_fingerprint, checkpoint_path=init_from, checkpoint_step=ckpt.get("step"),
                       fitted_on=fitted_on)
    png = os.path.join(cfg.out_dir, "head_curve.png")
    print(f"wrote {json_path}" + (f" and {png}" if plot_curve(exported, png) else ""))
    return head


def main(argv=None):
    try:
        return run(argv)
    except (ValueError, OSError) as e:  # bad input or a failed write: one line, no traceback
        raise SystemExit(f"error: {e}") from None


def run(argv=None):
    cfg, model_overrides = parse_args(argv)
    check_config(cfg)
    if cfg.head:
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # every rank would fit the same head into the same files
            raise SystemExit("error: head training runs in one process (its statistics take one forward): "
                             "start it with python, not torchrun")
        return train_head(cfg)
    return train_lm(cfg, model_overrides)


if __name__ == "__main__":
    main()
