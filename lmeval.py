"""The language model's evaluation while it trains: loss on each split, bits per byte on text, KL to the
exact distribution on the synthetic language, the unigram bar, and the divergence check."""

import math

import numpy as np
import torch
from tqdm import tqdm

import corpus
import synthetic
from runtime import autocast, kept_message


def unigram_loss(train_counts, val_tokens):
    """Cross-entropy on val of add-one-smoothed train unigram frequencies: the bar to clear."""
    counts = train_counts + 1.0
    log_freq = np.log(counts / counts.sum())
    return float(-log_freq[np.asarray(val_tokens[:1_000_000], dtype=np.int64)].mean())


@torch.no_grad()
def evaluate(model, splits, cfg, device, dtype, meta, truth):
    """Mean loss on the same eval_batches windows of each split every time (a fixed RNG), bits per
    byte on text, and KL(p* || p_model) on the truth windows (x, p*) of the synthetic language."""
    model.eval()
    result = {}
    for name, tokens in splits.items():
        rng = np.random.default_rng(cfg.seed + 1)
        losses = []
        for _ in range(cfg.eval_batches):
            x, y = corpus.get_batch(tokens, cfg.batch_size, cfg.block_size, rng, device)
            with autocast(device, dtype):
                _, loss = model(x, y)
            losses.append(loss.item())
        result[f"{name}_loss"] = float(np.mean(losses))
    if meta.get("val_bytes"):  # bits per byte compare across tokenizers
        result["val_bpb"] = result["val_loss"] / math.log(2) * meta["val_tokens"] / meta["val_bytes"]
    if truth is not None:
        x, p_true = truth
        with autocast(device, dtype):
            result["kl_truth"] = synthetic.kl_to_truth(p_true, model(x))
    model.train()
    return result


def eval_baselines(cfg, meta, train_tokens, val_tokens, device):
    """(the truth windows (x, p*) on the synthetic language or None, the unigram val loss)."""
    truth = None
    if meta["kind"] == "synthetic":
        truth = synthetic.truth_windows(meta, val_tokens, cfg.truth_windows, cfg.block_size, device)
    return truth, unigram_loss(corpus.unigram_counts(meta, train_tokens), val_tokens)


DIVERGED = math.log(2)  # an eval this far past the run's best (twice its perplexity), and above unigram: diverged


def eval_and_log(model, splits, cfg, device, dtype, meta, truth, unigram, best, step, ckpt_path, log):
    """One eval: a console line, a metrics row; returns the val loss. FloatingPointError, before any
    save, when the run diverged: a val loss that is not finite, or that is both above the unigram
    loss and more than DIVERGED past best (the lowest so far; ln V, an untrained model's, at first).
    Huge but finite weights score about ln V, and must not replace the last good checkpoint."""
    result = evaluate(model, splits, cfg, device, dtype, meta, truth)
    log.write({"step": step, **result, "unigram_loss": unigram})
    tqdm.write(f"step {step}: " + " | ".join(f"{k} {v:.4f}" for k, v in result.items()))
    val_loss = result["val_loss"]
    if not math.isfinite(val_loss):
        raise FloatingPointError(f"val loss is {val_loss} at step {step}: stopping; "
                                 f"{kept_message(ckpt_path)}. Lower --lr or use --dtype bfloat16/float32")
    if val_loss > max(unigram, best + DIVERGED):
        raise FloatingPointError(f"val loss {val_loss:.4g} at step {step} is above the unigram loss {unigram:.3f} "
                                 f"and {val_loss - best:.3g} past the best so far {best:.3f}: the run diverged; "
                                 f"stopping; {kept_message(ckpt_path)}. Lower --lr")
    return val_loss
