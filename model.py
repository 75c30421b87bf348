"""A Llama-style decoder: RMSNorm, rotary embeddings, grouped-query attention, SwiGLU.

The whole model is in this file. `Transformer(config)(idx)` returns logits (B, T, V);
`Transformer(config)(idx, targets)` returns (logits, loss). Decoding passes a `KVCache`.
"""
import hashlib
import math
import os
import pickle
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class ModelConfig:
    vocab_size: int = 512
    dim: int = 128
    n_layers: int = 4
    n_heads: int = 4
    n_kv_heads: int = 2
    hidden_dim: int = 0  # SwiGLU width; 0 means 8/3 * dim rounded up to multiple_of
    multiple_of: int = 32
    max_seq_len: int = 128
    norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    dropout: float = 0.0
    # what pretrained Llama-family models need (convert.py); the defaults are this project's own models
    qkv_bias: bool = False  # Qwen2 adds a bias to the q, k and v projections
    tie_embeddings: bool = True  # False: the output matrix is its own, not the token embedding
    rope_freq_factors: tuple = ()  # divisors of each rotary frequency (Llama 3's long-context scaling); () none

    def __post_init__(self):
        for name in ("vocab_size", "dim", "n_layers", "n_heads", "n_kv_heads", "multiple_of", "max_seq_len"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be at least 1")
        if self.hidden_dim < 0:
            raise ValueError(f"hidden_dim={self.hidden_dim} must be at least 1 (or 0: 8/3 * dim)")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout={self.dropout} must lie in [0, 1)")
        if self.dim % self.n_heads:
            raise ValueError(f"dim={self.dim} is not divisible by n_heads={self.n_heads}: pick a dim that is")
        if self.n_heads % self.n_kv_heads:
            raise ValueError(f"n_heads={self.n_heads} is not a multiple of n_kv_heads={self.n_kv_heads}")
        if self.head_dim % 2:
            raise ValueError(f"head dim {self.head_dim} must be even for rotary embeddings")
        self.rope_freq_factors = tuple(float(f) for f in self.rope_freq_factors)
        if self.rope_freq_factors and (len(self.rope_freq_factors) != self.head_dim // 2
                                       or not all(math.isfinite(f) and f > 0 for f in self.rope_freq_factors)):
            raise ValueError(f"rope_freq_factors must be {self.head_dim // 2} finite numbers > 0 (one per rotary "
                             f"frequency), got {len(self.rope_freq_factors)}")
        if not self.hidden_dim:
            self.hidden_dim = self.multiple_of * math.ceil(int(8 * self.dim / 3) / self.multiple_of)

    @property
    def head_dim(self):
        return self.dim // self.n_heads


# Named presets. vocab_size here is a default only: train.py takes it from the data.
PRESETS = {
    "tiny": dict(dim=128, n_layers=4, n_heads=4, n_kv_heads=2, max_seq_len=128),
    "small": dict(dim=384, n_layers=6, n_heads=6, n_kv_heads=2, max_seq_len=256),
    "minimind-26m": dict(dim=512, n_layers=8, n_heads=8, n_kv_heads=2, vocab_size=6400, max_seq_len=512),
    "gpt2-124m": dict(dim=768, n_layers=12, n_heads=12, n_kv_heads=12, vocab_size=50304, max_seq_len=1024),
}


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        # normalise in fp32: the mean of squares underflows in half precision
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).type_as(x) * self.weight


def rope_tables(head_dim, max_seq_len, theta, freq_factors=()):
    """cos and sin of the rotation angle pos * theta^(-2i/d) / factor_i, each (max_seq_len, head_dim/2)."""
    inv_freq = theta ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    if freq_factors:
        inv_freq = inv_freq / torch.tensor(freq_factors, dtype=torch.float64)
    angles = torch.outer(torch.arange(max_seq_len, dtype=torch.float64), inv_freq)
    return angles.cos().float(), angles.sin().float()


def apply_rope(x, cos, sin):
    """Rotate each (first half, second half) pair of x (B, H, T, hd) by its position's angle.

    cos/sin are (T, hd/2) when all rows share positions, else (B, T, hd/2)."""
    if cos.dim() == 3:
        cos, sin = cos[:, None], sin[:, None]
    x1, x2 = x.float().chunk(2, dim=-1)
    rotated = torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)
    return rotated.type_as(x)


class KVCache:
    """Preallocated keys and values of every layer for incremental decoding.

    Two phases. Prefill: `model(prompt, cache=cache)`, in one chunk or several, fills slots
    0..length-1 (`length` is a Python int). Then `begin_decoding()`: from there on each
    `model(token, cache=cache)` takes one token per row, writes it at the device-side `slot`
    and attends over the whole buffer under a mask, so every step has the same shapes and no
    host sync: one step can be captured in a CUDA graph (sample.generate) or compiled once.
    Prompts of different lengths are left-padded; `pad[b]` counts row b's padding so that
    its positions start at 0 at its first real token and padding is never attended."""

    def __init__(self, config, batch_size, max_len, device, dtype, pad=None):
        if max_len > config.max_seq_len:
            raise ValueError(f"a cache of {max_len} slots exceeds max_seq_len={config.max_seq_len}")
        shape = (batch_size, config.n_kv_heads, max_len, config.head_dim)
        self.k = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(config.n_layers)]
        self.v = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(config.n_layers)]
        self.max_len = max_len
        self.length = 0  # slots filled by the prefill, the same for every row
        self.pad = pad  # (B,) long tensor, or None when no row is padded
        self.slot = None  # once decoding: (1,) long on the device, the slot the next token goes to

    @property
    def decoding(self):
        return self.slot is not None

    def begin_decoding(self):
        self.slot = torch.full((1,), self.length, dtype=torch.long, device=self.k[0].device)

    def update(self, layer, k, v):
        """Write this step's k, v (B, Hkv, T, hd); return the keys and values to attend over:
        those so far while prefilling, the whole (masked) buffer while decoding."""
        if self.decoding:
            self.k[layer].index_copy_(2, self.slot, k)
            self.v[layer].index_copy_(2, self.slot, v)
            return self.k[layer], self.v[layer]
        start, end = self.length, self.length + k.shape[2]
        self.k[layer][:, :, start:end] = k
        self.v[layer][:, :, start:end] = v
        return self.k[layer][:, :, :end], self.v[layer][:, :, :end]


class Attention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
        self.wq = nn.Linear(cfg.dim, cfg.n_heads * cfg.head_dim, bias=cfg.qkv_bias)
        self.wk = nn.Linear(cfg.dim, cfg.n_kv_heads * cfg.head_dim, bias=cfg.qkv_bias)
        self.wv = nn.Linear(cfg.dim, cfg.n_kv_heads * cfg.head_dim, bias=cfg.qkv_bias)
        self.wo = nn.Linear(cfg.n_heads * cfg.head_dim, cfg.dim, bias=False)
        self.dropout = cfg.dropout

    def forward(self, x, cos, sin, mask, cache=None, layer=0):
        B, T, _ = x.shape
        q = self.wq(x).view(B, T, self.n_heads, self.head_dim).transpose(1, 2)
        k = self.wk(x).view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)
        v = self.wv(x).view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if cache is not None:
            k, v = cache.update(layer, k, v)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=mask is None and T > 1,
            dropout_p=self.dropout if self.training else 0.0, enable_gqa=self.n_kv_heads != self.n_heads)
        return self.wo(y.transpose(1, 2).reshape(B, T, -1))


class FeedForward(nn.Module):
    """SwiGLU: w2(silu(w1 x) * w3 x)."""

    def __init__(self, cfg):
        super().__init__()
        self.w1 = nn.Linear(cfg.dim, cfg.hidden_dim, bias=False)
        self.w3 = nn.Linear(cfg.dim, cfg.hidden_dim, bias=False)
        self.w2 = nn.Linear(cfg.hidden_dim, cfg.dim, bias=False)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x):
        return self.dropout(self.w2(F.silu(self.w1(x)) * self.w3(x)))


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.attn_norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.attn = Attention(cfg)
        self.ffn_norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.ffn = FeedForward(cfg)

    def forward(self, x, cos, sin, mask, cache, layer):
        x = x + self.attn(self.attn_norm(x), cos, sin, mask, cache, layer)
        return x + self.ffn(self.ffn_norm(x))


class Transformer(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.dim)
        self.layers = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.norm = RMSNorm(config.dim, config.norm_eps)
        self.output = nn.Linear(config.dim, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.output.weight = self.tok_emb.weight  # tied: one matrix reads and writes tokens
        cos, sin = rope_tables(config.head_dim, config.max_seq_len, config.rope_theta, config.rope_freq_factors)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.apply(self._init_weights)
        # GPT-2's scaled init: each residual branch adds variance, so shrink its output projection
        for name, p in self.named_parameters():
            if name.endswith(("wo.weight", "w2.weight")):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layers))

    @staticmethod
    def _init_weights(module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def num_params(self):
        return sum(p.numel() for p in self.parameters())

    def forward(self, idx, targets=None, cache=None):
        B, T = idx.shape
        decoding = cache is not None and cache.decoding
        if decoding:  # one token per row at the device-side slot, over the whole buffer: fixed shapes
            if T != 1:
                raise ValueError(f"a decoding step takes one token per row, got {T}: prefill before "
                                 "cache.begin_decoding()")
            slots, end = cache.slot, cache.max_len
        else:
            start = cache.length if cache is not None else 0
            if cache is not None and start + T > cache.max_len:
                raise ValueError(f"{start + T} tokens exceed the cache's {cache.max_len} slots: make a larger KVCache")
            if start + T > self.config.max_seq_len:
                raise ValueError(f"sequence of {start + T} tokens exceeds max_seq_len={self.config.max_seq_len}; "
                                 "crop it")
            slots, end = torch.arange(start, start + T, device=idx.device), start + T
        positions, mask = slots, None
        if cache is not None and (decoding or cache.pad is not None or (cache.length > 0 and T > 1)):
            positions, mask = self._positions_and_mask(slots, end, cache.pad)
        cos, sin = self.rope_cos[positions], self.rope_sin[positions]
        x = self.tok_emb(idx)
        for layer, block in enumerate(self.layers):
            x = block(x, cos, sin, mask, cache, layer)
        if decoding:
            cache.slot += 1
        elif cache is not None:
            cache.length += T
        logits = self.output(self.norm(x))
        if targets is None:
            return logits
        loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1)
        return logits, loss

    @staticmethod
    def _positions_and_mask(slots, end, pad):
        """Per-row positions (B, T) and a boolean mask (B, 1, T, end): causal, padding never attended.
        slots (T,) are the cache slots of this call's tokens: a range while prefilling, the one
        device-side slot while decoding (then end is the whole buffer and the mask hides the rest)."""
        keys = torch.arange(end, device=slots.device)  # end is a Python int: no device sync per step
        mask = (keys[None, :] <= slots[:, None])[None, None]  # (1, 1, T, S)
        if pad is None:
            return slots, mask
        pad = pad.to(slots.device)
        positions = (slots[None, :] - pad[:, None]).clamp(min=0)
        mask = mask & (keys[None, :] >= pad[:, None])[:, None, None, :]
        # a padded query row would attend to nothing (NaN): let it see itself; its output is unused
        mask = mask | (keys[None, None, :] == slots[None, :, None])[:, None]
        return positions, mask

    def optim_groups(self, weight_decay):
        """Matrices (and the tied embedding) decay; norm gains do not, since shrinking them
        towards 0 only rescales activations and fights the normalisation."""
        params = [p for p in self.parameters() if p.requires_grad]
        return [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ]

    def flops_per_token(self, seq_len):
        """Training FLOPs per token (forward + backward): 6N plus attention's 12 L d T (PaLM appendix B)."""
        # the tied embedding is counted once: its lookup is free, its use as the output matmul is not
        return 6 * self.num_params() + 12 * self.config.n_layers * self.config.dim * seq_len


def cuda_graph_replay(step, device, generator=None):
    """Capture step() in a CUDA graph and return the graph's replay: one launch instead of
    the hundreds of small ones of a decoding step (sample.generate) or of a head-fitting step
    (train_head.py). Only tensors updated in place carry state between replays; step must already
    have run once (lazy initialisation cannot be captured). A user's generator is registered
    so that each replay draws new numbers from it."""
    graph = torch.cuda.CUDAGraph()
    if generator is not None:
        graph.register_generator_state(generator)
    with torch.cuda.device(device), torch.cuda.graph(graph):
        step()
    return graph.replay


def fingerprint(model):
    """A short hash of the weights: names the exact model a MinP+ head was trained on,
    wherever its checkpoint file is later moved."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


def pick_device(name):
    """"auto" -> cuda when a GPU is visible, else cpu; any other name as given, once checked."""
    device = ("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name
    try:
        parsed = torch.device(device)
    except RuntimeError:
        raise ValueError(f"unknown --device {device!r}: use auto, cpu, cuda or cuda:N") from None
    if parsed.type not in ("cpu", "cuda", "mps"):  # meta, xpu, ...: not devices this project runs on
        raise ValueError(f"--device {device!r} is not one this project runs on: use auto, cpu, cuda or cuda:N")
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda asked for but no GPU is visible: use --device cpu")
    if parsed.type == "cuda" and (parsed.index or 0) >= torch.cuda.device_count():
        raise ValueError(f"--device {device} but only {torch.cuda.device_count()} GPU(s) are visible")
    return device


def read_checkpoint(path, device="cpu", mmap=False):
    """The dict train.py saved at path, read with weights_only=True: a checkpoint holds tensors and
    plain Python values only, so a crafted file that pickles code is refused instead of run.
    mmap=True maps the tensors instead of reading them, for a caller that needs only the plain values."""
    if os.path.isfile(path) and os.path.getsize(path) == 0:  # torch's own message would blame the file format
        raise ValueError(f"{path} is empty (an interrupted copy?): use a checkpoint that train.py wrote")
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True, mmap=mmap)
    except FileNotFoundError:
        raise ValueError(f"no checkpoint at {path}: run `python train.py` first or pass the right path")
    except torch.OutOfMemoryError:
        raise  # a real checkpoint too large for the device: torch's own message says so
    except pickle.UnpicklingError as e:  # weights_only refused something that is not a tensor or plain value
        if "GLOBAL" in str(e):  # a class or function reference: what a code-running payload needs
            raise ValueError(f"{path} holds Python objects other than tensors and plain values, which "
                             f"could run code when loaded; refusing it: use a ckpt.pt that train.py wrote") from None
        raise ValueError(f"cannot read {path} as a checkpoint (not a torch.save file): "
                         f"pass the ckpt.pt that train.py wrote") from None
    except (OSError, EOFError, RuntimeError) as e:  # a directory, a text file, a truncation
        raise ValueError(f"cannot read {path} as a checkpoint ({type(e).__name__}: "
                         f"{str(e).splitlines()[0] if str(e) else 'no detail'}): pass the ckpt.pt that train.py wrote"
                         ) from None
    if not isinstance(ckpt, dict):
        raise ValueError(f"{path} is not a checkpoint written by train.py: pass the ckpt.pt that train.py wrote")
    return ckpt


def checkpoint_config(ckpt, path):
    """The ModelConfig of a checkpoint, once checked against its weights on the meta device: an
    edited config (n_layers 10**9, say) is refused without hours of building or gigabytes allocated."""
    try:
        config, weights = ModelConfig(**ckpt["model_config"]), ckpt["model"]
        if not 1 <= config.max_seq_len <= 2**20:  # its rotary tables are built, not saved: no shape tells
            raise ValueError(f"max_seq_len {config.max_seq_len!r}")
        layers = {k.split(".")[1] for k in weights if k.startswith("layers.")}
        if config.n_layers != len(layers):
            raise ValueError(f"n_layers {config.n_layers!r} but {len(layers)} layers of weights")
        with torch.device("meta"):
            shapes = {k: v.shape for k, v in Transformer(config).state_dict().items()}
        wrong = sorted(set(shapes) ^ set(weights)) + [k for k in shapes if k in weights and
                                                      weights[k].shape != shapes[k]]
        if wrong:
            raise ValueError(f"{len(wrong)} tensors missing, extra or of another shape, e.g. {wrong[0]}")
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as e:
        raise ValueError(f"{path}'s weights do not fit its own model_config ({str(e).splitlines()[0]}): "
                         f"the file is damaged or was edited; use another checkpoint") from None
    return config


def load_checkpoint(path, device="cpu"):
    """Rebuild the model saved by train.py at `path`; returns (model in eval mode, checkpoint dict)."""
    ckpt = read_checkpoint(path, device)
    if "model_config" not in ckpt or "model" not in ckpt:
        raise ValueError(f"{path} is not a language-model checkpoint (head_ckpt.pt is the head's): "
                         f"pass the ckpt.pt that train.py wrote")
    model = Transformer(checkpoint_config(ckpt, path))
    model.load_state_dict(ckpt["model"])
    return model.to(device).eval(), ckpt


def trained_data_dir(ckpt, path):
    """The data directory the checkpoint at path was trained on, as train.py saved it; ValueError,
    naming the fix, when it is not recorded or not here."""
    data_dir = ckpt.get("train_config", {}).get("data_dir")
    if not isinstance(data_dir, str) or not os.path.exists(os.path.join(data_dir, "meta.json")):
        raise ValueError(f"{path} was trained on data in {data_dir!r}, which is not here "
                         f"(relative paths count from the current directory): pass --data_dir")
    return data_dir
