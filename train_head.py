"""Fit the MinP+ head on a frozen language model: `python train.py --head minpplus`.

The LM never changes, so its forward runs once over the fitting text: `collect_stats` keeps
only the head's sufficient statistics of each position (the probability mass in each
threshold bucket, the target's bucket and log p of the target; see head.py), and
`head_fitter` then takes full-batch AdamW steps on those (N, K) tensors, never touching the
logits again. `fit_head` is the same fitting as one call, for callers with statistics at hand.

train_head(cfg) is the whole job: statistics of the fitting text and of held-out text, fitting
with an eval round every fifth of the epochs (one console line, one head_metrics.jsonl row each),
head_ckpt.pt for --resume, and head.json (thresholds, weights, temperature, which LM) at the end.
"""
import math
import os
from dataclasses import asdict

import numpy as np
import torch
from tqdm import tqdm

import corpus
import script
import synthetic
from head import MinPPlusHead, chunk_stats, diagnostics, format_diagnostics, plot_curve, target_counts
from model import cuda_graph_replay, fingerprint, load_checkpoint, pick_device, read_checkpoint, trained_data_dir
from optim import AdamW, cosine_lr
from runtime import MetricsLog, StopFlag, autocast, kept_message, save_checkpoint

# what a head's statistics and thresholds depend on: a resumed head must not change them
HEAD_RUN_FIELDS = ("init_from", "data_dir", "head_data", "head_positions", "head_tokens", "dtype", "block_size",
                   "temperature",
                   "head_thresholds", "head_tau_min", "head_spacing")
AUTO_T_GRID = "0.7,0.8,0.9,0.95,1,1.05,1.1,1.15,1.2,1.25,1.3,1.4,1.5,1.7,2,2.5,3"  # --temperature auto: fine near 1
MAX_T_GRID = 64  # each temperature keeps its own (N, K) statistics


def frozen_dtype(device, dtype="auto"):
    """The frozen LM under the head runs in fp16 autocast on CUDA, fp32 on a CPU (only the head
    trains, in fp32); --dtype picks another, e.g. bfloat16 for a model whose activations overflow fp16."""
    if dtype != "auto":
        return dtype
    return "float16" if device.startswith("cuda") else "float32"


@torch.no_grad()
def collect_stats(model, head, tokens, n_tokens, cfg, device, overlap=True, temperatures=None):
    """Bucket statistics (S, b, log p_y) of about n_tokens positions (whole non-overlapping windows
    of the context length: each position at most once; corpus.tiling_batches) at cfg.temperature;
    with temperatures (a list), a list of them, one per temperature, all from the same forward
    passes (the forward is the cost: each extra temperature adds only its bucket sums).

    cfg supplies batch_size, block_size, temperature, dtype and compile (a train.TrainConfig).
    On CUDA each batch's statistics run on a second stream while the next batch's forward is
    on the first, so their memory-bound kernels can fill the forward's gaps (overlap=False:
    one stream). cfg.compile runs the per-chunk statistics through torch.compile (model is
    whatever the caller passes: compiled or not)."""
    per_chunk = torch.compile(chunk_stats, dynamic=False) if cfg.compile else chunk_stats
    temps = [cfg.temperature] if temperatures is None else list(temperatures)
    dtype = frozen_dtype(device, cfg.dtype)
    main = torch.cuda.current_stream(device) if torch.device(device).type == "cuda" else None
    side = torch.cuda.Stream(device) if overlap and main is not None else None

    def batch_stats(logits, y):
        # no per-batch checks: a host sync here would idle the GPU while the next forward is launched
        return head.bucket_stats(logits.view(-1, logits.size(-1)), y.view(-1), check=False, per_chunk=per_chunk,
                                 temperatures=temps)

    stats = []  # per batch: one (S, b, log p_y) per temperature
    for starts in tqdm(corpus.tiling_batches(tokens, cfg.batch_size, cfg.block_size, n_tokens),
                       desc="frozen forward", dynamic_ncols=True, leave=False):
        x, y = corpus.windows_at(tokens, starts, cfg.block_size, device)
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
        for t in (t for batch in stats for part in batch for t in part):  # made on side, read and freed on main
            t.record_stream(main)
    out = [tuple(torch.cat(parts) for parts in zip(*(batch[i] for batch in stats))) for i in range(len(temps))]
    for T, (_, _, logp_y) in zip(temps, out):
        if not torch.isfinite(logp_y).all():  # NaN: an overflowed row; -inf: a target the logits rule out
            raise ValueError(f"the frozen model's logits hold NaN or inf under {dtype} autocast"
                             f"{f' at temperature {T:g}' if T != 1 else ''}: "
                             f"{'pass --dtype bfloat16 (fp16 overflows) or ' if dtype == 'float16' else ''}"
                             f"{'raise --temperature or ' if T < 1 else ''}check the checkpoint")
    return out[0] if temperatures is None else out


def answer_rows(tokens, n_tokens, cfg, meta):
    """(N,) bool, row for row with collect_stats(tokens, n_tokens, cfg): True where the target is
    an answer token of task data (after the answer marker, up to and including its <eos>)."""
    if meta.get("answer_id") is None:
        raise ValueError(f"--head_positions answer needs task data, whose meta.json names its answer marker; "
                         f"{cfg.data_dir} has none: prepare one with python data.py --task arithmetic")
    mask = corpus.answer_mask(tokens, meta["answer_id"], meta["eos_id"])
    starts = np.concatenate(corpus.tiling_batches(tokens, cfg.batch_size, cfg.block_size, n_tokens))
    targets = np.stack([mask[i + 1:i + cfg.block_size + 1] for i in starts])  # as corpus.windows_at's y
    if not targets.any():
        raise ValueError(f"no answer tokens among the {targets.size:,} positions read from {cfg.data_dir}: "
                         f"raise --head_tokens")
    return torch.from_numpy(targets.reshape(-1))


def keep_rows(stats, rows):
    """The statistics (S, b, log p_y) of the rows where rows (N,) is True; all of them when rows is None."""
    if rows is None:
        return stats
    return tuple(t[rows.to(t.device)] for t in stats)


def new_head(cfg, device):
    """The untrained head cfg's --head_thresholds, --head_tau_min and --head_spacing describe."""
    return MinPPlusHead(cfg.head_thresholds, cfg.head_tau_min, cfg.head_spacing).to(device)


def head_optimizer(head, lr):
    # capturable: step count and lr stay on the device, so a fitting step can be a CUDA graph
    return AdamW(head.parameters(), lr=lr, betas=(0.9, 0.99), weight_decay=0.0, capturable=True)


def head_fitter(head, optimizer, stats, epochs, lr, reg="none", reg_weight=0.0, cuda_graph=True):
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
    warmup = epochs // 10  # under 10 epochs: no warmup, or the only steps would have lr ~0
    lrs = torch.tensor([cosine_lr(e, lr, lr / 10, warmup, epochs) for e in range(epochs)], device=device)
    epoch_index = torch.zeros(1, dtype=torch.long, device=device)
    last_loss = torch.zeros((), device=device)

    def step():
        with torch.enable_grad():
            loss = head.loss_from_counts(S, rows_per_bucket, mean_logp_y)
            if reg != "none":
                loss = loss + reg_weight * head.regulariser(reg)
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


def fit_head(head, stats, epochs=100, lr=0.2, reg="none", reg_weight=0.0):
    """Fit head in place on statistics (S, b, log p_y) from collect_stats or head.bucket_stats, as
    train.py --head minpplus does with its defaults; returns the head. ValueError if it diverges."""
    fit = head_fitter(head, head_optimizer(head, lr), stats, epochs, lr, reg, reg_weight)
    loss = fit(0, epochs).item()
    if not (math.isfinite(loss) and torch.isfinite(head.theta).all()):
        raise ValueError(f"head fitting diverged (loss {loss}): lower the learning rate (now {lr})")
    return head


def head_texts(cfg, meta):
    """(tokens the head is fitted on, held-out tokens it is evaluated on).

    By default both come from the val split, its first half and its second: like a
    temperature, the head corrects how the LM predicts text it has not seen, and on its own
    training text an LM that has overfit looks sharper than it is (on tiny Shakespeare a head
    fitted on train made held-out CE 1 % worse; fitted on held-out text it did no harm)."""
    val_tokens = corpus.open_split(cfg.data_dir, "val", meta)
    if cfg.head_data == "train":
        return corpus.open_split(cfg.data_dir, "train", meta), val_tokens
    half = len(val_tokens) // 2
    if half <= cfg.block_size:
        raise ValueError(f"{cfg.data_dir}'s val split ({len(val_tokens):,} tokens) is too short to halve into "
                         f"windows of {cfg.block_size}: use --head_data train or a smaller --block_size")
    return val_tokens[:half], val_tokens[half:]


def frozen_model(cfg, device):
    """(LM with requires_grad off, its checkpoint dict, its path); fills in cfg's data_dir and block_size."""
    init_from = cfg.init_from or os.path.join(cfg.out_dir, "ckpt.pt")
    model, ckpt = load_checkpoint(init_from, device)
    model.requires_grad_(False)  # frozen: only the head's theta learns
    cfg.data_dir = cfg.data_dir or trained_data_dir(ckpt, init_from)  # "" (not given): the LM's own data
    cfg.block_size = cfg.block_size or model.config.max_seq_len
    if cfg.block_size > model.config.max_seq_len:
        raise ValueError(f"--block_size {cfg.block_size} exceeds {init_from}'s max_seq_len "
                         f"{model.config.max_seq_len}: drop it or pass at most that")
    return model, ckpt, init_from


def resume_head(head, optimizer, cfg, path, lm_fingerprint, init_from, device):
    """Load head_ckpt.pt into head and optimizer after checking it belongs to this run; its epoch."""
    if not os.path.exists(path):
        raise ValueError(f"--resume but no head checkpoint at {path}: drop --resume to fit afresh")
    state = read_checkpoint(path, device)
    if not isinstance(state.get("train_config"), dict):
        raise ValueError(f"{path} is damaged (its train_config is missing or not a dict): delete it or drop --resume")
    if state.get("checkpoint") != lm_fingerprint:  # the LM itself was trained on since
        raise ValueError(f"{path} was fitted on other weights than {init_from}'s now: "
                         f"drop --resume to fit a head on this model")
    fields = HEAD_RUN_FIELDS + (("head_t_grid",) if cfg.temperature == "auto" else ())
    changed = [k for k in fields if state["train_config"].get(k) != getattr(cfg, k)]
    if changed:  # the Adam state and epoch belong to statistics these flags define
        was = ", ".join(f"--{k} {state['train_config'].get(k)!r}" for k in changed)
        raise ValueError(f"{path} was fitted with {was}: resume with those (or no such flags), "
                         f"or drop --resume to fit afresh")
    check_head_checkpoint(state, head, cfg, path)
    head.load_state_dict(state["head"])
    try:
        optimizer.load_state_dict(state["optimizer"])
        shapes = {"step": (), "exp_avg": head.theta.shape, "exp_avg_sq": head.theta.shape}
        if not all(torch.isfinite(s[k]).all() and s[k].shape == shape  # else the first fitting step would crash
                   for s in optimizer.state.values() for k, shape in shapes.items()):
            raise ValueError("moments")
    except (KeyError, ValueError, TypeError, IndexError, RuntimeError, AttributeError) as e:
        raise ValueError(f"{path} is damaged (its optimizer state: {type(e).__name__}): "
                         f"delete it or drop --resume") from None
    print(f"resuming the head at epoch {state['epoch']}")
    return state["epoch"]


def check_head_checkpoint(state, head, cfg, path):
    """ValueError unless state (a head_ckpt.pt of this run's flags) holds what resume_head reads, of the right
    types and shapes: an edited file would crash in load_state_dict, an epoch past --head_epochs skip the fitting."""
    expected = head.state_dict()
    saved, epoch = state.get("head"), state.get("epoch")
    problem = None
    if not all(isinstance(state.get(k), dict) for k in ("head", "optimizer")):
        problem = "its head or optimizer state is missing or not a dict"
    elif saved.keys() != expected.keys() or any(not torch.is_tensor(saved[k]) or saved[k].shape != v.shape
                                                 or saved[k].dtype != v.dtype for k, v in expected.items()):
        problem = f"its head state is not {', '.join(f'{k} {tuple(v.shape)}' for k, v in expected.items())}"
    elif not torch.isfinite(saved["theta"]).all() or not torch.equal(saved["tau"].cpu(), expected["tau"].cpu()):
        problem = "its head's weights are not finite or its thresholds are not the configured ones"
    elif type(epoch) is not int or epoch < 0:
        problem = f"its epoch is {epoch!r}, not a count"
    if problem:
        raise ValueError(f"{path} is damaged ({problem}): delete it or drop --resume")
    if epoch > cfg.head_epochs:
        raise ValueError(f"{path} is at epoch {epoch}, past --head_epochs {cfg.head_epochs}: pass --head_epochs "
                         f"{epoch} or more, or drop --resume")


def truth_logits(model, meta, eval_tokens, cfg, device, temperature):
    """(p*, the frozen LM's logits at the head's temperature) on held-out windows of the synthetic
    language; (None, None) on other data. The LM is frozen: computed once, not at every eval."""
    if meta["kind"] != "synthetic":
        return None, None
    x, p_true = synthetic.truth_windows(meta, eval_tokens, cfg.truth_windows, cfg.block_size, device)
    with torch.no_grad(), autocast(device, frozen_dtype(device, cfg.dtype)):
        return p_true, model(x).float() / temperature  # at the head's T, as base CE is


def parse_t_grid(text):
    """--head_t_grid's comma-separated temperatures, sorted; 1 is always among them (the plain model)."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise ValueError(f"--head_t_grid {text!r}: write temperatures separated by commas (0.8,1,1.2)") from None
    bad = [v for v in values if not 1e-6 <= v < math.inf]
    if bad:
        raise ValueError(f"--head_t_grid holds {bad[0]:g}: every temperature must be a finite number >= 1e-6")
    values = sorted(set(values) | {1.0})
    if len(values) > MAX_T_GRID:
        raise ValueError(f"--head_t_grid holds {len(values)} temperatures, more than {MAX_T_GRID}: use fewer")
    return values


def search_temperature(cfg, temperatures, fit_all, eval_all, device):
    """One row per temperature: a head fitted there as the main fit does, its CE on the fitting text
    (fit_ce, what picks the temperature) and on the held-out text (head_ce), the plain model's
    held-out CE at that temperature (base_ce) and the head's share of weight at tau = 0."""
    rows = []
    for T, fit_stats, eval_stats in tqdm(list(zip(temperatures, fit_all, eval_all)), desc="temperatures",
                                         dynamic_ncols=True, leave=False):
        head = fit_head(new_head(cfg, device), fit_stats, cfg.head_epochs, cfg.head_lr, cfg.head_reg,
                        cfg.head_reg_weight)
        with torch.no_grad():
            rows.append({"temperature": T, "fit_ce": head.loss_from_stats(*fit_stats).item(),
                         "head_ce": head.loss_from_stats(*eval_stats).item(), "base_ce": (-eval_stats[2]).mean().item(),
                         "weight_at_0": head.weight_shares()[0].item()})
    return rows


def format_search(rows, chosen):
    lines = [f"  {'T':>5} {'fit CE':>8} {'held-out CE: head':>17} {'plain p_T':>9} {'weight at 0':>11}"]
    for r in rows:
        mark = "  <- chosen" if r["temperature"] == chosen else ""
        lines.append(f"  {r['temperature']:>5g} {r['fit_ce']:>8.4f} {r['head_ce']:>17.4f} {r['base_ce']:>9.4f} "
                     f"{r['weight_at_0']:>11.1%}{mark}")
    return "\n".join(lines)


def head_statistics(frozen, head, fit_tokens, eval_tokens, cfg, meta, device):
    """(T, fitting statistics, held-out statistics, the plain LM's held-out CE at T = 1, search rows):
    at the fixed --temperature (search None), or with --temperature auto at the --head_t_grid
    temperature whose fitted head has the least CE on the fitting text, every temperature's
    statistics taken in the same forward passes."""
    answers_only = cfg.head_positions == "answer"  # fitted and judged on answer tokens, as on a verifiable task
    fit_rows = answer_rows(fit_tokens, cfg.head_tokens, cfg, meta) if answers_only else None
    eval_rows = answer_rows(eval_tokens, cfg.head_val_tokens, cfg, meta) if answers_only else None
    auto = cfg.temperature == "auto"
    temps = parse_t_grid(cfg.head_t_grid) if auto else [cfg.temperature]
    eval_temps = temps if 1.0 in temps else temps + [1.0]  # T = 1 for ce_t1
    fit_all = [keep_rows(s, fit_rows) for s in
               collect_stats(frozen, head, fit_tokens, cfg.head_tokens, cfg, device, temperatures=temps)]
    eval_all = [keep_rows(s, eval_rows) for s in
                collect_stats(frozen, head, eval_tokens, cfg.head_val_tokens, cfg, device, temperatures=eval_temps)]
    ce_t1 = (-eval_all[eval_temps.index(1.0)][2]).mean().item()
    if not auto:
        return temps[0], fit_all[0], eval_all[0], ce_t1, None
    search = search_temperature(cfg, temps, fit_all, eval_all, device)
    best = min(range(len(temps)), key=lambda i: search[i]["fit_ce"])
    print(f"--temperature auto: a head fitted at each of {len(temps)} temperatures; the least CE on the "
          f"fitting text is at T = {temps[best]:g}\n" + format_search(search, temps[best]))
    return temps[best], fit_all[best], eval_all[best], ce_t1, search


def train_head(cfg):
    device = pick_device(cfg.device)
    torch.manual_seed(cfg.seed)
    model, ckpt, init_from = frozen_model(cfg, device)
    lm_fingerprint = fingerprint(model)  # names these weights in head_ckpt.pt and head.json
    meta = corpus.load_meta(cfg.data_dir)
    if meta["vocab_size"] != model.config.vocab_size:
        raise ValueError(f"{cfg.data_dir} has vocab_size {meta['vocab_size']} but {init_from} has "
                         f"{model.config.vocab_size}: pass the --data_dir the model was trained on")
    fit_tokens, eval_tokens = head_texts(cfg, meta)
    script.make_out_dir(cfg.out_dir)
    script.remove_debris(cfg.out_dir, ["head_ckpt.pt.tmp", "head_metrics.jsonl.new", "head_metrics.jsonl.tmp",
                                       "head.json.tmp", "head_curve.png.tmp"])
    head = new_head(cfg, device)
    optimizer = head_optimizer(head, cfg.head_lr)
    head_ckpt_path = os.path.join(cfg.out_dir, "head_ckpt.pt")
    epoch = resume_head(head, optimizer, cfg, head_ckpt_path, lm_fingerprint, init_from, device) if cfg.resume else 0

    fitted_on = "the first half of val" if cfg.head_data == "val" else "train"
    fitted_on += ", answer positions only" if cfg.head_positions == "answer" else ""
    frozen = torch.compile(model) if cfg.compile else model  # model itself stays plain for its fingerprint
    T, fit_stats, eval_stats, ce_t1, search = head_statistics(frozen, head, fit_tokens, eval_tokens, cfg, meta, device)
    print(f"head on {init_from} | {device} {frozen_dtype(device, cfg.dtype)}{' compiled' if cfg.compile else ''} | "
          f"fitted on {len(fit_stats[1]):,} positions of {fitted_on}, evaluated on {len(eval_stats[1]):,} held-out "
          f"ones | temperature {'auto: ' if search else ''}{T:g}")
    p_true, logits = truth_logits(model, meta, eval_tokens, cfg, device, T)
    kl_base = synthetic.kl_to_truth(p_true, logits) if p_true is not None else None
    log = MetricsLog(cfg.out_dir, "head_metrics.jsonl", "epoch", epoch if cfg.resume else None)

    def run_eval(epoch):
        with torch.no_grad():
            d = diagnostics(head, *eval_stats)
        # CEs, normalised weights, their entropy, share above the lowest threshold, mass above each, c(r)
        row = {"epoch": epoch, "temperature": T, "ce_t1": ce_t1, **d}  # ce_t1: the plain LM at T = 1
        if p_true is not None:
            row.update(kl_head=synthetic.kl_to_truth(p_true, head(logits)), kl_base=kl_base)
        log.write(row)
        tqdm.write(f"epoch {epoch}: T {T:g} | base CE {d['base_ce']:.4f} | head CE {d['head_ce']:.4f} "
                   f"({d['relative_improvement']:+.2%}) | LM at T = 1 {ce_t1:.4f}"
                   + (f" | KL(p*||q) {row['kl_head']:.4f} vs KL(p*||p) {kl_base:.4f}" if p_true is not None else ""))

    fit = head_fitter(head, optimizer, fit_stats, cfg.head_epochs, cfg.head_lr, cfg.head_reg, cfg.head_reg_weight)
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
                raise FloatingPointError(f"{what} after epoch {last}: stopping; {kept_message(head_ckpt_path)}. "
                                         f"Lower --head_lr")
            bar.update(last - epoch)
            epoch = last
            run_eval(epoch)
            save_checkpoint({"head": head.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch,
                             "train_config": asdict(cfg), "checkpoint": lm_fingerprint}, head_ckpt_path)
            log.saved()
            if stop.requested and epoch < cfg.head_epochs:  # in the last round: finish and export
                raise script.Interrupted(f"interrupted: saved {head_ckpt_path} at epoch {epoch}; "
                                         "continue with --resume")
    finally:
        bar.close()
        stop.restore()
    export_head(head, cfg, eval_stats, model, ckpt, lm_fingerprint, init_from, fitted_on, T, search)
    return head


def export_head(head, cfg, eval_stats, model, ckpt, lm_fingerprint, init_from, fitted_on, temperature, search=None):
    """Print the final diagnostics and write head.json (pruned, when asked) and its curve's PNG;
    with --temperature auto, head.json records the search too (one row per temperature tried)."""
    with torch.no_grad():
        print(format_diagnostics(diagnostics(head, *eval_stats)))
    exported = head.pruned(cfg.head_prune_below) if cfg.head_prune_below > 0 else head
    json_path = os.path.join(cfg.out_dir, "head.json")
    extra = {"temperature_search": search} if search else {}
    exported.save_json(json_path, temperature=temperature, vocab_size=model.config.vocab_size,
                       checkpoint=lm_fingerprint, checkpoint_path=init_from, checkpoint_step=ckpt.get("step"),
                       fitted_on=fitted_on, **extra)
    png = os.path.join(cfg.out_dir, "head_curve.png")
    print(f"wrote {json_path}" + (f" and {png}" if plot_curve(exported, png) else ""))
