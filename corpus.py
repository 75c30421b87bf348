"""Token files: the directory data.py prepares, written and read.

A data directory holds tokenizer.json, train.bin and val.bin (token ids, uint16 when the vocabulary
fits, else uint32) and meta.json, written last: its kind, vocabulary size, dtype, each split's
token count, largest id and file stamp (size and modification time), and the train split's
unigram counts, so that start-up scans no tokens unless a file changed. This module writes those
files atomically, reads them back as checked read-only memmaps, and cuts them into windows:
random batches for training, tilings for evaluation, and the answer positions of word problems.
"""
import json
import os

import numpy as np
import torch

import script
from synthetic import EOS, UNK

# ----------------------------------------------------------------------------
# Writing: the word-level tokenizer, token files and meta.json


def word_tokenizer(vocab):
    """A word-level `tokenizers` model whose ids are the synthetic language's token ids."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(vocab)}, unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(EOS, "isolated"), pre_tokenizers.Whitespace()])
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=True)  # joins words with spaces, tidies " ."
    tok.add_special_tokens([EOS])
    return tok


def token_dtype(vocab_size):
    return np.uint16 if vocab_size <= 2**16 else np.uint32


def unmark_complete(out_dir):
    """Remove out_dir's meta.json before the first other file is rewritten. meta.json, written last, marks
    a complete directory: an interrupted run then leaves one load_meta refuses, whichever file it stopped in
    (simpler than a digest per file in meta.json, and it covers the .bin files and problems.jsonl too)."""
    try:
        os.remove(os.path.join(out_dir, "meta.json"))
    except FileNotFoundError:
        pass


def write_split(path, ids, vocab_size):
    script.write_atomically(path, np.asarray(ids, dtype=token_dtype(vocab_size)).tofile)


def write_meta(out_dir, meta):
    """Write meta.json, with each token file's stamp added; returns what it wrote."""
    meta = meta | {f"{split}_stamp": file_stamp(os.path.join(out_dir, f"{split}.bin")) for split in ("train", "val")
                   if os.path.exists(os.path.join(out_dir, f"{split}.bin"))}
    # one line per key: the unigram counts take one long line, not one line per count
    lines = ",\n".join(f"  {json.dumps(key)}: {json.dumps(value)}" for key, value in meta.items())
    script.write_text(os.path.join(out_dir, "meta.json"), "{\n" + lines + "\n}\n")
    return meta


def file_stamp(path):
    """A token file's [size, modification time in ns]: while both match meta.json's, the file holds the
    ids data.py counted (an edit or a copy without its times changes the stamp, and start-up scans it)."""
    stat = os.stat(path)
    return [stat.st_size, stat.st_mtime_ns]


def token_stats(split, counts):
    """What start-up needs to know of a split, from how often each id occurs in it."""
    stats = {f"{split}_tokens": int(counts.sum()),
             f"{split}_max_id": int(np.flatnonzero(counts).max(initial=-1))}  # -1: no token
    if split == "train":  # the unigram baseline's counts
        stats["train_unigram_counts"] = counts.tolist()
    return stats


# ----------------------------------------------------------------------------
# Reading: meta.json checked, token files as memmaps checked against it

KINDS = ("synthetic", "text", "task")  # what meta.json's kind says: prepare_synthetic's, prepare_text's, task.py's


def load_meta(data_dir):
    """data_dir's meta.json, checked: kind is required (every data.py wrote it; train.py and sample.py read it)."""
    path = os.path.join(data_dir, "meta.json")
    if not os.path.exists(path):
        raise ValueError(f"no meta.json in {data_dir} (never prepared, or data.py was interrupted): prepare it with "
                         f"`python data.py --out_dir {data_dir}` (synthetic) or `--input FILE.txt` (your text)")
    try:
        with open(path) as f:
            meta = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise ValueError(f"cannot read {path} ({type(e).__name__}): re-run data.py for {data_dir}") from None
    missing = [k for k in ("kind", "vocab_size", "dtype") if not isinstance(meta, dict) or k not in meta]
    if missing:
        raise ValueError(f"{path} lacks {', '.join(missing)}: it was not written by data.py; "
                         f"re-run data.py for {data_dir}")
    vocab_size, dtype, kind = meta["vocab_size"], meta["dtype"], meta["kind"]
    bad = ([f"vocab_size {vocab_size!r} (not a positive integer)"] if isinstance(vocab_size, bool)
           or not isinstance(vocab_size, int) or vocab_size < 1 else [])
    bad += [f"dtype {dtype!r} (not uint16 or uint32)"] if dtype not in ("uint16", "uint32") else []
    bad += [f"kind {kind!r} (not one of {', '.join(KINDS)})"] if kind not in KINDS else []
    if bad:
        raise ValueError(f"{path} has {'; '.join(bad)}: it was edited or damaged; re-run data.py for {data_dir}")
    return meta


def load_tokenizer(data_dir):
    from tokenizers import Tokenizer

    path = os.path.join(data_dir, "tokenizer.json")
    if not os.path.exists(path):
        raise ValueError(f"no tokenizer.json in {data_dir}: re-run data.py for it")
    return Tokenizer.from_file(path)


SCAN_CHUNK = 1 << 24  # tokens read at a time when a token file is scanned (a changed file, older data)


def open_split(data_dir, split, meta):
    """The split's tokens as a read-only memmap, after checking that their number agrees with meta.json
    and that no id reaches vocab_size (the embedding would fail on it mid-run). The largest id is
    meta.json's while the file's stamp still matches; else (an edited file, a copy that did not keep
    its times, data prepared before meta.json held them) the file is scanned for it."""
    path = os.path.join(data_dir, f"{split}.bin")
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        raise ValueError(f"{path} is missing or empty: re-run data.py for {data_dir}")
    itemsize = np.dtype(meta["dtype"]).itemsize
    if os.path.getsize(path) % itemsize:
        raise ValueError(f"{path} is {os.path.getsize(path):,} bytes, not a whole number of {meta['dtype']} "
                         f"tokens as meta.json says: the file and meta.json disagree; re-run data.py")
    tokens = np.memmap(path, dtype=np.dtype(meta["dtype"]), mode="r")
    if len(tokens) != meta.get(f"{split}_tokens", len(tokens)):
        raise ValueError(f"{path} holds {len(tokens):,} tokens but meta.json says {meta[f'{split}_tokens']:,}: "
                         "the file and meta.json disagree; re-run data.py")
    top = meta.get(f"{split}_max_id")
    if top is None or meta.get(f"{split}_stamp") != file_stamp(path):
        top = scan_max_id(tokens)
    if top >= meta["vocab_size"]:
        raise ValueError(f"{path} holds token id {top} >= vocab_size {meta['vocab_size']}: "
                         "the file and meta.json disagree; re-run data.py")
    return tokens


def scan_max_id(tokens):
    """The largest id, read in slices, so a large file is never read into memory whole."""
    return max(int(tokens[i:i + SCAN_CHUNK].max()) for i in range(0, len(tokens), SCAN_CHUNK))


def unigram_counts(meta, train_tokens):
    """How often each id occurs in the train split: meta.json's, counted when the data was
    prepared, or counted now (in slices) for data prepared before meta.json held them."""
    if "train_unigram_counts" in meta:
        counts = np.array(meta["train_unigram_counts"], dtype=np.int64)
        if counts.shape != (meta["vocab_size"],):
            raise ValueError(f"meta.json's train_unigram_counts hold {counts.size:,} counts for vocab_size "
                             f"{meta['vocab_size']}: it was edited or damaged; re-run data.py")
        return counts
    counts = np.zeros(meta["vocab_size"], dtype=np.int64)
    for i in range(0, len(train_tokens), SCAN_CHUNK):
        counts += np.bincount(train_tokens[i:i + SCAN_CHUNK], minlength=meta["vocab_size"])
    return counts


# ----------------------------------------------------------------------------
# Windows and batches


def get_batch(tokens, batch_size, block_size, rng, device="cpu"):
    """Random windows: x = tokens[i:i+T], y = tokens[i+1:i+T+1], for batch_size random i."""
    if len(tokens) <= block_size:
        raise ValueError(f"{len(tokens)} tokens cannot fill one window of {block_size}: "
                         "use more data or a smaller --block_size")
    return windows_at(tokens, rng.integers(0, len(tokens) - block_size, size=batch_size), block_size, device)


def windows_at(tokens, starts, block_size, device="cpu"):
    """x = tokens[i:i+T], y = tokens[i+1:i+T+1] for each start i, as (len(starts), T) int64 tensors."""
    window = np.stack([tokens[i:i + block_size + 1] for i in starts]).astype(np.int64)
    window = torch.from_numpy(window)
    x, y = window[:, :-1], window[:, 1:]
    if torch.device(device).type == "cuda":  # pinned memory lets the copy overlap with compute
        return x.pin_memory().to(device, non_blocking=True), y.pin_memory().to(device, non_blocking=True)
    return x.contiguous(), y.contiguous()


def tiling_batches(tokens, batch_size, block_size, n_tokens):
    """The starts of non-overlapping windows holding about n_tokens targets (whole windows), a
    list of arrays of at most batch_size (windows_at makes each a batch): every window of the
    text when it has no more, else that many spread evenly over it. Each position counts at most
    once, unlike random windows, which repeat some and miss others."""
    available = (len(tokens) - 1) // block_size  # the text cut into whole windows
    if available == 0:
        raise ValueError(f"{len(tokens):,} tokens cannot fill one window of {block_size}: "
                         "use more data or a smaller --block_size")
    n_windows = min(-(-n_tokens // block_size), available)
    starts = np.arange(n_windows) * available // n_windows * block_size
    return [starts[first:first + batch_size] for first in range(0, n_windows, batch_size)]


def answer_mask(tokens, answer_id, eos_id):
    """True at every answer token: those after an answer marker, up to and including the <eos>
    that ends the example. A token is one when the last marker before it is later than the last
    <eos> before it."""
    tokens = np.asarray(tokens)
    index = np.arange(len(tokens))
    last_marker = np.maximum.accumulate(np.where(tokens == answer_id, index, -1))
    last_eos = np.maximum.accumulate(np.where(tokens == eos_id, index, -1))
    before = lambda last: np.concatenate([[-1], last[:-1]])  # strictly before each token
    return before(last_marker) > before(last_eos)
