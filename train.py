"""Train the language model (default) or the MinP+ head on a frozen checkpoint.

    python train.py                                  # tiny preset on the synthetic language
    python train.py --data_dir data/shakespeare --preset small
    python train.py --head minpplus                  # the head on out/ckpt.pt (train_head.py)
    python train.py --resume                         # continue out/ckpt.pt (or out/head_ckpt.pt)

Every flag is a field of TrainConfig (or of ModelConfig, overriding the preset); --help groups
them. A run writes into --out_dir: ckpt.pt and metrics.jsonl; the head adds head.json,
head_ckpt.pt and head_metrics.jsonl. Under torchrun the LM trains with DDP, one process per GPU (or CPU worker).
"""
import argparse
import dataclasses
import math
import os
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

import corpus
import data
import script
import synthetic
from ddp import peer_gone, setup_ddp, sum_over_ranks
from lmeval import eval_and_log, eval_baselines
from model import PRESETS, ModelConfig, Transformer, checkpoint_config, pick_device, read_checkpoint
from optim import AdamW, clip_grad_norm_, cosine_lr
from runtime import MetricsLog, StopFlag, autocast, kept_message, peak_flops, save_checkpoint
from train_head import AUTO_T_GRID, parse_t_grid, train_head


def option(default, group, help):
    return field(default=default, metadata={"group": group, "help": help})


@dataclass
class TrainConfig:
    data_dir: str = option("data/synthetic", "data", "data.py's output; the synthetic language is generated "
                           "here when missing (the head: the LM's own data)")
    preset: str = option("tiny", "model", f"one of {', '.join(PRESETS)}; the flags below override it")
    batch_size: int = option(32, "optimisation", "windows per step and process")
    block_size: int = option(0, "optimisation", "window length; 0: the model's max_seq_len")
    grad_accum: int = option(1, "optimisation", "micro-steps per step (tokens per step = batch x block x this)")
    max_steps: int = option(800, "optimisation", "steps in all")
    lr: float = option(3e-3, "optimisation", "peak learning rate")
    min_lr: float = option(3e-4, "optimisation", "learning rate at the end of the cosine decay")
    warmup_steps: int = option(60, "optimisation", "linear warmup from 0")
    weight_decay: float = option(0.1, "optimisation", "AdamW decay of matrices and embeddings (norm gains: none)")
    beta1: float = option(0.9, "optimisation", "AdamW beta1")
    beta2: float = option(0.95, "optimisation", "AdamW beta2")
    grad_clip: float = option(1.0, "optimisation", "clip the gradient norm to this; 0: never clip")
    out_dir: str = option("out", "run", "where checkpoints, metrics logs and head.json go")
    device: str = option("auto", "run", "auto (cuda when visible, else cpu), cpu, cuda, cuda:N")
    dtype: str = option("auto", "run", "auto: bfloat16 on CUDA, float32 on CPU (the head's frozen LM: float16 "
                        "on CUDA); float16 trains with a GradScaler")
    compile: bool = option(False, "run", "torch.compile the model")
    seed: int = option(1337, "run", "weights and batches")
    resume: bool = option(False, "run", "continue the run in --out_dir; flags not given come from it")
    eval_interval: int = option(200, "run", "steps between evals and checkpoints")
    eval_batches: int = option(20, "run", "batches per eval and split")
    truth_windows: int = option(64, "run", "synthetic language: held-out windows scored against the exact p*")
    head: str = option("", "MinP+ head", "minpplus: fit the head on a frozen LM instead of training the LM")
    init_from: str = option("", "MinP+ head", "the frozen LM's checkpoint; default <out_dir>/ckpt.pt")
    temperature: float = option(1.0, "MinP+ head", "the temperature the head is fitted (and sampled) at; auto: "
                                "fit at each of --head_t_grid's and keep the one with the least CE on the fitting text")
    head_t_grid: str = option(AUTO_T_GRID, "MinP+ head", "--temperature auto: the temperatures tried, comma-separated "
                              "(1 is always among them)")
    head_thresholds: int = option(32, "MinP+ head", "number of thresholds K, including 0")
    head_tau_min: float = option(1e-4, "MinP+ head", "the smallest nonzero threshold on r = p / max p")
    head_spacing: str = option("log", "MinP+ head", "log or linear spacing of the thresholds")
    head_data: str = option("val", "MinP+ head", "val: fit on the first half of val, report on the second; "
                            "train: fit on the LM's training text")
    head_positions: str = option("all", "MinP+ head", "all: fit on every position; answer: only where the target "
                                 "is an answer token (task data, python data.py --task)")
    head_tokens: int = option(200_000, "MinP+ head", "positions the head is fitted on (at most the text's)")
    head_val_tokens: int = option(50_000, "MinP+ head", "held-out positions it is evaluated on")
    head_epochs: int = option(100, "MinP+ head", "full-batch AdamW steps on the statistics")
    head_lr: float = option(0.2, "MinP+ head", "peak learning rate of the head")
    head_reg: str = option("none", "MinP+ head", "none, smooth (spread the weights) or sparse (concentrate them)")
    head_reg_weight: float = option(0.0, "MinP+ head", "weight of --head_reg")
    head_prune_below: float = option(0.0, "MinP+ head", "at export, drop weights below this share of the total")


# how this process runs, not what the run computes: a resumed run takes these from its own flags
PROCESS_FIELDS = ("out_dir", "device", "compile", "resume")
MODEL_FLAGS = ("dim", "n_layers", "n_heads", "n_kv_heads", "hidden_dim", "max_seq_len", "dropout")
GROUPS = ("data", "model", "optimisation", "run", "MinP+ head")
MAX_BATCH_TOKENS = 2**24  # per micro-batch: 64 x 2048 is 2**17
METAVAR = {int: "N", float: "X", str: "S"}


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     usage="%(prog)s [--head minpplus] [--FLAG VALUE ...]",
                                     argument_default=argparse.SUPPRESS)  # only the flags given are set
    groups = {name: parser.add_argument_group(name) for name in GROUPS}
    for f in dataclasses.fields(TrainConfig):
        kind = ({"action": argparse.BooleanOptionalAction} if f.type is bool
                else {"type": f.type, "metavar": METAVAR[f.type]})
        if f.name == "temperature":
            kind = {"type": temperature_flag, "metavar": "X|auto"}
        groups[f.metadata["group"]].add_argument(f"--{f.name}", help=f"{f.metadata['help']} [{f.default}]", **kind)
    model_fields = {f.name: f for f in dataclasses.fields(ModelConfig)}
    for name in MODEL_FLAGS:
        kind = model_fields[name].type
        groups["model"].add_argument(f"--{name}", type=kind, metavar=METAVAR[kind], help="[the preset's]")
    return parser


def temperature_flag(text):
    """--temperature: a number, or auto (the head picks its own)."""
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither a number nor auto") from None


def parse_args(argv=None):
    """(TrainConfig, model overrides) from the command line; model flags override the preset.

    With --resume, every TrainConfig flag not given on this command line comes from the run being
    resumed (the train_config in its checkpoint), except PROCESS_FIELDS, so a bare --resume
    continues the same run; a flag that is given (say --max_steps, to train longer) wins. A
    resumed model is the checkpoint's: a model flag must then agree with it (lm_config checks)."""
    given = vars(build_parser().parse_args(argv))
    train_fields = {f.name for f in dataclasses.fields(TrainConfig)}
    train_given = {k: v for k, v in given.items() if k in train_fields}
    model_overrides = {k: v for k, v in given.items() if k not in train_fields}
    cfg = TrainConfig(**train_given)
    if cfg.resume:
        saved = resumed_train_config(cfg)
        cfg = TrainConfig(**{**{k: v for k, v in saved.items() if k in train_fields and k not in PROCESS_FIELDS},
                             **train_given})
    head_only = [f"--{f.name}" for f in dataclasses.fields(TrainConfig)
                 if f.metadata["group"] == "MinP+ head" and f.name != "head" and f.name in train_given]
    if head_only and not cfg.head:  # silently ignored otherwise: the user meant to fit a head
        raise ValueError(f"{', '.join(head_only)} only apply to the head: add --head minpplus, or drop them")
    if "head_t_grid" in train_given and cfg.temperature != "auto":
        raise ValueError("--head_t_grid only applies to --temperature auto: add it, or drop --head_t_grid")
    if cfg.head and "data_dir" not in given and not cfg.resume:
        cfg.data_dir = ""  # the frozen LM's own data (train_head fills it in)
    if model_overrides and cfg.head:
        flags = ", ".join(f"--{k}" for k in model_overrides)
        raise ValueError(f"{flags} cannot change the frozen model, which is its checkpoint's: drop {flags}")
    return cfg, model_overrides


def resumed_train_config(cfg):
    """The train_config saved in the checkpoint --resume continues ({} when there is none:
    train_lm and train_head then say so)."""
    path = os.path.join(cfg.out_dir, "head_ckpt.pt" if cfg.head else "ckpt.pt")
    if not os.path.exists(path):
        return {}
    saved = read_checkpoint(path, mmap=True).get("train_config", {})  # the config only: no weights read
    for f in dataclasses.fields(TrainConfig):
        value = saved.get(f.name, f.default) if isinstance(saved, dict) else None
        if not of_type(value, f.type) and not (f.name == "temperature" and value == "auto"):
            raise ValueError(f"{path}'s train_config holds {f.name}={value!r}, not a {f.type.__name__}: the file "
                             "is damaged or was edited; drop --resume to start afresh")
    return saved


def of_type(value, kind):
    """Whether a saved config value is of a field's type: an int counts as a float, a bool as no number."""
    if isinstance(value, bool):
        return kind is bool
    return isinstance(value, kind) or kind is float and isinstance(value, int)


def check_config(cfg):
    """ValueError for any flag value that cannot work, before any work is done."""
    choices = {"preset": tuple(PRESETS), "head": ("", "minpplus"), "dtype": ("auto", "float32", "bfloat16", "float16"),
               "head_data": ("val", "train"), "head_positions": ("all", "answer"),
               "head_reg": ("none", "smooth", "sparse")}
    for name, allowed in choices.items():
        if getattr(cfg, name) not in allowed:
            raise ValueError(f"unknown --{name} {getattr(cfg, name)!r}: use one of {', '.join(map(repr, allowed))}")
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if f.name == "temperature" and value == "auto":
            continue
        if f.type is float and not math.isfinite(value):
            raise ValueError(f"--{f.name} is {value}: it must be a finite number")
        if f.type is float and abs(value) > torch.finfo(torch.float32).max:  # tensors hold it in fp32
            raise ValueError(f"--{f.name} {value:g} is beyond float32's range: pass a smaller value")
    if cfg.temperature != "auto" and not cfg.temperature > 0:
        raise ValueError(f"--temperature must be > 0, got {cfg.temperature}")
    parse_t_grid(cfg.head_t_grid)
    if not 0 <= cfg.head_prune_below <= 1:
        raise ValueError(f"--head_prune_below {cfg.head_prune_below} must be a share of the total weight, in [0, 1]")
    for name in ("grad_clip", "head_lr", "lr", "min_lr", "weight_decay", "head_reg_weight", "warmup_steps",
                 "block_size"):
        if getattr(cfg, name) < 0:
            raise ValueError(f"--{name} must be >= 0, got {getattr(cfg, name)}")
    for name in ("batch_size", "grad_accum", "max_steps", "eval_interval", "eval_batches", "head_epochs",
                 "head_tokens", "head_val_tokens", "truth_windows"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"--{name} must be at least 1, got {getattr(cfg, name)}")


def resolve_device(cfg):
    device = pick_device(cfg.device)
    dtype = cfg.dtype
    if dtype == "auto":
        dtype = "bfloat16" if device.startswith("cuda") else "float32"
    return device, dtype


def open_data(cfg, master, world_size):
    """(meta, train tokens, val tokens); the synthetic language is generated on first use, so
    `python train.py` works anywhere (by rank 0, while the other ranks wait)."""
    if master and not os.path.exists(os.path.join(cfg.data_dir, "meta.json")):
        if os.path.normpath(cfg.data_dir) != os.path.normpath(TrainConfig.data_dir):
            corpus.load_meta(cfg.data_dir)  # raises the message that says how to prepare it
        print(f"generating the synthetic language into {cfg.data_dir} ...")
        data.prepare_synthetic(cfg.data_dir)
    if world_size > 1:
        dist.barrier()
    meta = corpus.load_meta(cfg.data_dir)
    return meta, corpus.open_split(cfg.data_dir, "train", meta), corpus.open_split(cfg.data_dir, "val", meta)


# ----------------------------------------------------------------------------
# Language-model pretraining


def lm_config(cfg, model_overrides, meta, ckpt, splits):
    """The model's config (the checkpoint's when resuming), checked against the data; sets cfg.block_size."""
    if ckpt:
        model_cfg = checkpoint_config(ckpt, os.path.join(cfg.out_dir, "ckpt.pt"))
        changed = [f"--{k} {v}" for k, v in model_overrides.items() if getattr(model_cfg, k) != v]
        if changed:
            raise ValueError(f"{', '.join(changed)} differs from the resumed checkpoint's model: a resumed run keeps "
                             f"its model; drop the flag, or start afresh in another --out_dir")
    else:
        model_cfg = ModelConfig(**{**PRESETS[cfg.preset], **model_overrides, "vocab_size": meta["vocab_size"]})
    if model_cfg.vocab_size != meta["vocab_size"]:
        raise ValueError(f"the checkpoint's vocab_size {model_cfg.vocab_size} differs from "
                         f"{cfg.data_dir}'s {meta['vocab_size']}: resume with the data it was trained on")
    cfg.block_size = cfg.block_size or model_cfg.max_seq_len
    if cfg.block_size > model_cfg.max_seq_len:
        raise ValueError(f"--block_size {cfg.block_size} exceeds max_seq_len {model_cfg.max_seq_len}")
    if cfg.batch_size * cfg.block_size > MAX_BATCH_TOKENS:  # else minutes of window gathering, then out of memory
        raise ValueError(f"--batch_size {cfg.batch_size} windows of {cfg.block_size} tokens exceed "
                         f"{MAX_BATCH_TOKENS:,} tokens a micro-batch: pass a smaller --batch_size (--grad_accum "
                         "makes the batch larger)")
    for split, tokens in zip(("train", "val"), splits):  # now, not at the first eval
        if len(tokens) <= cfg.block_size:
            raise ValueError(f"{cfg.data_dir}'s {split} split has {len(tokens):,} tokens, too few for one "
                             f"window of {cfg.block_size}: use more text or a smaller --block_size")
    return model_cfg


def restore(ckpt, path, model, optimizer, scaler, rng, rank, world_size):
    """Load a checkpoint's weights, optimiser, scaler and this rank's batch RNG; returns its step."""
    try:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scaler.load_state_dict(ckpt["scaler"])
        rngs, step = list(ckpt["rng"]), int(ckpt["step"])
        torch.set_rng_state(ckpt["torch_rng"].cpu())  # map_location moved it; the CPU generator wants it back
        if len(rngs) != world_size:
            raise ValueError(f"{path} was written by {len(rngs)} process(es), this run has "
                             f"{world_size}: resume with the same number of processes")
        rng.bit_generator.state = rngs[rank]
    except (KeyError, TypeError, AttributeError, RuntimeError) as e:
        raise ValueError(f"{path} cannot be resumed ({type(e).__name__}: {str(e).splitlines()[0]}): the file is "
                         f"damaged or was edited; drop --resume to start afresh") from None
    return step


def train_step(train_model, model, optimizer, scaler, tokens, rng, cfg, device, dtype):
    """Forward and backward over grad_accum micro-batches, unscale, clip: (mean loss, grad norm).
    The optimiser step is the caller's, once every rank has agreed that the loss is finite."""
    loss_sum = 0.0
    for micro in range(cfg.grad_accum):
        if isinstance(train_model, DistributedDataParallel):  # average gradients once, on the last micro-step
            train_model.require_backward_grad_sync = micro == cfg.grad_accum - 1
        x, y = corpus.get_batch(tokens, cfg.batch_size, cfg.block_size, rng, device)
        with autocast(device, dtype):
            _, loss = train_model(x, y)
        scaler.scale(loss / cfg.grad_accum).backward()
        loss_sum += loss.item() / cfg.grad_accum
    scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
    grad_norm = clip_grad_norm_(model.parameters(), cfg.grad_clip or math.inf)  # 0: measure, never clip
    return loss_sum, float(grad_norm)


def optimizer_step(train_model, model, optimizer, scaler, tokens, rng, cfg, device, dtype, step, stop, world_size,
                   ckpt_path):
    """Step step + 1 of train_lm: (loss averaged over the ranks, grad norm, learning rate, the ranks' stop votes)."""
    lr = cosine_lr(step, cfg.lr, cfg.min_lr, cfg.warmup_steps, cfg.max_steps)
    for group in optimizer.param_groups:
        group["lr"] = lr
    loss, grad_norm = train_step(train_model, model, optimizer, scaler, tokens, rng, cfg, device, dtype)
    loss, stop_votes = sum_over_ranks([loss, float(stop.requested)], world_size, device)
    loss /= world_size
    check_finite(loss, grad_norm, scaler.is_enabled(), step + 1, ckpt_path)
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
    return loss, grad_norm, lr, stop_votes


def check_finite(loss, grad_norm, has_scaler, step, ckpt_path):
    """Stop before step (the update being made; the first is 1) on a NaN loss or gradient: the weights
    it would make must never be saved."""
    if not math.isfinite(loss):
        raise FloatingPointError(f"loss is {loss} at step {step}: stopping; {kept_message(ckpt_path)}. "
                                 f"Lower --lr or use --dtype bfloat16/float32")
    if not has_scaler and not math.isfinite(grad_norm):  # fp16's scaler skips such a step itself
        raise FloatingPointError(f"gradient norm is {grad_norm} at step {step} (the loss was finite): "
                                 f"stopping; {kept_message(ckpt_path)}. Lower --lr")


def save_lm(path, step, model, model_cfg, cfg, optimizer, scaler, rng, world_size, master, best_val_loss):
    """ckpt.pt with everything --resume needs, every rank's batch RNG and the run's best val loss
    included (a collective call)."""
    rng_states = [rng.bit_generator.state]
    if world_size > 1:  # every rank's sampler state, so --resume replays each rank's windows
        rng_states = [None] * world_size
        dist.all_gather_object(rng_states, rng.bit_generator.state)
    if master:
        save_checkpoint({"model": model.state_dict(), "model_config": asdict(model_cfg),
                         "train_config": asdict(cfg), "optimizer": optimizer.state_dict(),
                         "scaler": scaler.state_dict(), "step": step, "rng": rng_states,
                         "torch_rng": torch.get_rng_state(), "best_val_loss": best_val_loss}, path)


def train_lm(cfg, model_overrides):
    torch.manual_seed(cfg.seed)
    device, dtype = resolve_device(cfg)
    rank, world_size, device = setup_ddp(device)
    master = rank == 0  # only rank 0 prints, logs and writes checkpoints
    meta, train_tokens, val_tokens = open_data(cfg, master, world_size)
    script.make_out_dir(cfg.out_dir)
    if master:
        script.remove_debris(cfg.out_dir, ["ckpt.pt.tmp", "metrics.jsonl.new", "metrics.jsonl.tmp"])
    ckpt_path = os.path.join(cfg.out_dir, "ckpt.pt")
    if cfg.resume and not os.path.exists(ckpt_path):
        raise ValueError(f"--resume but no checkpoint at {ckpt_path}: drop --resume to start afresh")
    ckpt = read_checkpoint(ckpt_path, device) if cfg.resume else None
    model_cfg = lm_config(cfg, model_overrides, meta, ckpt, (train_tokens, val_tokens))
    model = Transformer(model_cfg).to(device)
    optimizer = AdamW(model.optim_groups(cfg.weight_decay), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
    scaler = torch.amp.GradScaler(torch.device(device).type, enabled=dtype == "float16")
    rng = np.random.default_rng(cfg.seed + rank)  # each rank draws its own windows
    step = restore(ckpt, ckpt_path, model, optimizer, scaler, rng, rank, world_size) if ckpt else 0
    eval_model = torch.compile(model) if cfg.compile else model
    train_model = eval_model
    if world_size > 1:
        local = [int(os.environ["LOCAL_RANK"])] if device.startswith("cuda") else None
        train_model = DistributedDataParallel(eval_model, device_ids=local)
    truth, unigram, log = None, None, None
    best = ckpt.get("best_val_loss") if ckpt else None  # the divergence check's reference (eval_and_log)
    best = best if isinstance(best, float) else math.log(model_cfg.vocab_size)
    if master:  # only rank 0 evaluates and logs
        if ckpt:
            print(f"resuming {ckpt_path} at step {step}")
        truth, unigram = eval_baselines(cfg, meta, train_tokens, val_tokens, device)
        log = MetricsLog(cfg.out_dir, "metrics.jsonl", "step", step if ckpt else None)
        print(f"model {model.num_params() / 1e6:.2f}M parameters | {cfg.preset} | {device} {dtype} | "
              f"unigram val loss {unigram:.3f}" + (f" | true entropy {synthetic.truth_entropy(truth[1]).mean():.3f}"
                                                    if truth else "")
              + (f" | {world_size} processes" if world_size > 1 else ""))

    def save(step):
        save_lm(ckpt_path, step, model, model_cfg, cfg, optimizer, scaler, rng, world_size, master, best)
        if master:
            log.saved()

    def run_eval(step):
        nonlocal best
        if master:
            splits = {"train": train_tokens, "val": val_tokens}
            val_loss = eval_and_log(eval_model, splits, cfg, device, dtype, meta, truth, unigram, best, step,
                                    ckpt_path, log)
            best = min(best, val_loss)

    stop = StopFlag(announce=world_size == 1)  # torchrun logs the Ctrl-C it forwards to every rank
    interrupted = False
    tokens_per_step = cfg.batch_size * cfg.block_size * cfg.grad_accum * world_size
    peak = peak_flops(device)
    bar = tqdm(total=cfg.max_steps, initial=step, desc="train", dynamic_ncols=True, disable=not master)
    model.train()
    try:
        while step < cfg.max_steps:
            t0 = time.perf_counter()
            loss, grad_norm, lr, stop_votes = optimizer_step(train_model, model, optimizer, scaler, train_tokens, rng,
                                                             cfg, device, dtype, step, stop, world_size, ckpt_path)
            step += 1
            tokens_per_s = tokens_per_step / (time.perf_counter() - t0)
            postfix = {"loss": f"{loss:.3f}", "lr": f"{lr:.1e}", "tok/s": f"{tokens_per_s:,.0f}"}
            if peak:  # per GPU, against its dense bf16 peak
                postfix["mfu"] = f"{model.flops_per_token(cfg.block_size) * tokens_per_s / world_size / peak:.1%}"
            bar.set_postfix(postfix)
            bar.update(1)
            if master:
                log.write({"step": step, "train_loss_step": loss, "lr": lr, "grad_norm": grad_norm,
                           "tokens_per_s": tokens_per_s})
            if step % cfg.eval_interval == 0 or step == cfg.max_steps:
                run_eval(step)
                save(step)
            elif stop_votes:
                save(step)
            if stop_votes:
                interrupted = step < cfg.max_steps  # a Ctrl-C in the last step: the run is complete
                break
        if world_size > 1:  # leave together: gloo aborts a process whose peer tears down first
            dist.barrier()
    finally:
        bar.close()
        stop.restore()
        if world_size > 1:
            dist.destroy_process_group()
    if interrupted:  # exit status 130, one line from rank 0 and none from the others
        raise script.Interrupted(f"interrupted: saved {ckpt_path} at step {step}; continue with --resume" if master
                                 else "")
    return model


def main(argv=None):
    return script.run_script(run, argv)


def run(argv=None):
    cfg, model_overrides = parse_args(argv)
    check_config(cfg)
    if cfg.head:
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # every rank would fit the same head into the same files
            raise ValueError("head training runs in one process (its statistics take one forward): "
                             "start it with python, not torchrun")
        return train_head(cfg)
    try:
        return train_lm(cfg, model_overrides)
    except RuntimeError as e:
        gone = peer_gone(e, os.path.join(cfg.out_dir, "ckpt.pt"))
        if gone is None:
            raise
        raise gone from None


if __name__ == "__main__":
    main()
