"""Data: text -> tokenizer -> memmap'd token files (any text, or the synthetic language), batches.

    python data.py --input FILE.txt --out_dir data/mytext [--vocab_size 4096]   # any UTF-8 text
    python data.py --input FILE.txt --tokenizer out/smollm2 --out_dir data/X   # a converted model's tokenizer
    python data.py --out_dir data/synthetic                                     # the synthetic language
    python data.py --task arithmetic --out_dir data/arith                       # word problems (task.py)
    python data.py --task arithmetic --format gsm8k --out_dir data/arith-gsm8k  # as GSM8K-format files (gsm8k.py)

Either way out_dir gets tokenizer.json, train.bin, val.bin (uint16 when the vocabulary
fits, else uint32) and meta.json (with each split's token count, largest id, file size and
modification time and the train split's unigram counts, so start-up scans no tokens unless a
file changed). train.py reads them through np.memmap. A text is streamed a few MB at a time,
so memory stays bounded whatever its size. The synthetic language itself, with its exact
next-token distribution, is in synthetic.py.
"""
import argparse
import json
import mmap
import os
import re
import sys
import time

import numpy as np
import torch
from tqdm import tqdm

import pretrained_tokenizer
import script
from synthetic import EOS, UNK, SyntheticLanguage  # noqa: F401 (EOS, UNK: the special tokens of every tokenizer)


# ----------------------------------------------------------------------------
# Tokenizers and token files


def word_tokenizer(vocab):
    """A word-level `tokenizers` model whose ids are the synthetic language's token ids."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(vocab)}, unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(EOS, "isolated"), pre_tokenizers.Whitespace()])
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=True)  # joins words with spaces, tidies " ."
    tok.add_special_tokens([EOS])
    return tok


# Every line break str.splitlines knows, "\r\n" (one break) before "\r"; the tokenizer cuts the text
# after each. None is special in a regular expression, so the alternation of them is the pattern.
LINE_BREAKS = ["\r\n", "\n", "\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]
LINE_BREAK = "|".join(LINE_BREAKS)
LINE_BREAK_RE = re.compile(LINE_BREAK)
LINE_BREAK_BYTES = re.compile(b"|".join(b.encode("utf-8") for b in LINE_BREAKS))  # the same, in a UTF-8 file


def bpe_tokenizer(texts, vocab_size):
    """Train a byte-level BPE on an iterator of texts (or of lists of texts): every byte sequence
    stays encodable. Its pre-tokenizer first cuts the text after every line break, so any text
    encodes to the tokens of its lines encoded one by one (a run of blanks never spans two
    lines), and data.py can hand it large blocks of lines rather than one string per line."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(LINE_BREAK), "merged_with_previous"),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer=trainer)
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


def prepare_synthetic(out_dir, train_tokens=2_000_000, val_tokens=100_000, seed=0):
    """Generate the synthetic language's corpus into out_dir (train and val from distinct seeds)."""
    script.make_out_dir(out_dir)
    lang = SyntheticLanguage(seed)
    unmark_complete(out_dir)
    script.write_atomically(os.path.join(out_dir, "tokenizer.json"), word_tokenizer(lang.vocab).save)
    meta = {"kind": "synthetic", "seed": seed, "vocab_size": lang.vocab_size,
            "eos_id": lang.eos_id, "dtype": np.dtype(token_dtype(lang.vocab_size)).name}
    for split, n, corpus_seed in (("train", train_tokens, seed + 1), ("val", val_tokens, seed + 2)):
        ids = np.concatenate([[lang.eos_id], lang.sample_tokens(n, corpus_seed)])  # starts at <eos>
        write_split(os.path.join(out_dir, f"{split}.bin"), ids, lang.vocab_size)
        meta |= token_stats(split, np.bincount(ids, minlength=lang.vocab_size))
    write_meta(out_dir, meta)


# ----------------------------------------------------------------------------
# Text: streamed in pieces, so memory stays bounded whatever the size of the file

PIECE_BYTES = 1 << 22  # read, decode and encode 4 MB at a time: big batches for the encoder's threads
BLOCK_CHARS = 1 << 16  # each piece goes to the tokenizer as blocks of 64 K characters, one per thread at a time


def split_point(text, val_fraction):
    """Where val starts in text (a str, or a file's bytes such as an mmap): just after the last line
    break before the 1 - val_fraction mark when one lies within a tenth of val's share of it (val
    then starts on a whole line), else at the mark (in bytes: at the start of the character there)."""
    mark = int(len(text) * (1 - val_fraction))
    near = len(text) * val_fraction / 10
    newline = "\n" if isinstance(text, str) else b"\n"
    line_start = text.rfind(newline, max(0, int(mark - near) - 1), mark) + 1  # a farther one is not near
    if line_start and mark - line_start <= near:
        return line_start
    return char_start(text, mark) if not isinstance(text, str) and mark < len(text) else mark


def char_start(utf8, i):
    """Index i of UTF-8 bytes moved back over continuation bytes to the first byte of its character."""
    while i > 0 and utf8[i] & 0xC0 == 0x80:
        i -= 1
    return i


def text_pieces(path, start, end):
    """The file's bytes [start, end) as (byte count, decoded text) pieces of at most 2 * PIECE_BYTES,
    each ending at a line break or at end, so the lines of each piece are whole lines of the text.
    Only a line longer than a piece is cut (before a character), so memory stays bounded even for a
    text that is one line: there alone its tokens may differ from those of the line encoded whole."""
    with open(path, "rb") as f:
        f.seek(start)
        offset = start
        while offset < end:
            piece = f.read(min(PIECE_BYTES, end - offset))
            if offset + len(piece) < end and not piece.endswith(b"\n"):
                piece += f.readline(min(PIECE_BYTES, end - offset - len(piece)))  # the rest of the line
            if offset + len(piece) < end and not piece.endswith(b"\n"):  # no "\n" for a piece: another break
                piece = piece[:end_of_lines(piece)]
                f.seek(offset + len(piece))
            try:
                yield len(piece), piece.decode("utf-8")
            except UnicodeDecodeError as e:
                raise ValueError(f"{path} is not UTF-8 ({e.reason} at byte {offset + e.start}): "
                                 "convert it to UTF-8 first") from None
            offset += len(piece)


def end_of_lines(piece):
    """How many bytes of piece (UTF-8, not ending in "\\n") hold whole lines: up to its last line break
    of any kind ("\\r" as the last byte does not count: a "\\n" may follow), else up to its last
    character, which may be cut (a line longer than the piece)."""
    ends = [m.end() for m in LINE_BREAK_BYTES.finditer(piece) if m.end() < len(piece) or m.group() != b"\r"]
    if ends:
        return ends[-1]
    return char_start(piece, len(piece) - 1) or len(piece)


def line_blocks(text):
    """text cut into strings of about BLOCK_CHARS characters, each ending at a line break or at the
    end of text: the tokenizer cuts there anyway, so the blocks' tokens are the text's."""
    blocks, start = [], 0
    while start < len(text):
        found = LINE_BREAK_RE.search(text, start + BLOCK_CHARS)
        end = found.end() if found else len(text)
        blocks.append(text[start:end])
        start = end
    return blocks


def train_texts(path, cut, size, sample_bytes, progress):
    """What the BPE trainer sees, a piece at a time (as line_blocks): the whole train part when it
    holds no more than sample_bytes, else pieces of it spread evenly, that many bytes in all. Every
    other piece and the val part are decoded too, unused, so a byte that is not UTF-8 anywhere
    stops the run before any file is written."""
    share = min(1.0, sample_bytes / max(cut, 1))
    has_content = False
    for i, (n_bytes, text) in enumerate(text_pieces(path, 0, cut)):
        has_content = has_content or not text.isspace()
        if int((i + 1) * share) > int(i * share):  # one piece in every 1 / share
            yield line_blocks(text)
        progress.update(n_bytes)
    for n_bytes, text in text_pieces(path, cut, size):
        has_content = has_content or not text.isspace()
        progress.update(n_bytes)
    if not has_content:
        raise ValueError(f"{path} is empty: give a text file with some content")


def encode_split(tok, path, start, end, out_path, progress, vocab_size):
    """Encode the file's bytes [start, end) into the token file out_path, a piece at a time;
    returns how often each id occurs. No marker is added (a pretrained tokenizer.json may add BOS)."""
    dtype = token_dtype(vocab_size)
    counts = np.zeros(vocab_size, dtype=np.int64)

    def write(tmp):
        with open(tmp, "wb") as f:
            for n_bytes, text in text_pieces(path, start, end):
                encodings = tok.encode_batch_fast(line_blocks(text), add_special_tokens=False)  # threads over blocks
                ids = np.concatenate([np.array(e.ids, dtype=dtype) for e in encodings])
                ids.tofile(f)
                counts[:] += np.bincount(ids, minlength=len(counts))
                progress.update(n_bytes)
    script.write_atomically(out_path, write)
    return counts


def prepare_text(input_path, out_dir, vocab_size=4096, val_fraction=0.1, tokenizer_mb=200, tokenizer_dir=None):
    """UTF-8 text -> byte-level BPE tokenizer + train/val token files; the last val_fraction of
    the bytes is val. Two passes over the file, neither holding it: train the BPE (on at most
    tokenizer_mb MB of the train part, spread over it), then encode. tokenizer_dir: a converted
    model's directory (convert.py), whose tokenizer encodes instead of a trained one."""
    if os.path.isdir(input_path):
        raise ValueError(f"{input_path} is a directory: pass --input with one UTF-8 text file "
                         f"(concatenate several first)")
    if not os.path.exists(input_path):
        raise ValueError(f"no file at {input_path}: pass --input with a UTF-8 text file")
    size = os.path.getsize(input_path)
    if size == 0:
        raise ValueError(f"{input_path} is empty: give a text file with some content")
    with open(input_path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as text_bytes:
        cut = split_point(text_bytes, val_fraction)  # reads only the pages near the mark
    if not 0 < cut < size:
        raise ValueError(f"{input_path} holds {size} byte(s), too few to split into train and val: give a longer text")
    pretrained = pretrained_tokenizer.for_text(tokenizer_dir) if tokenizer_dir else None  # a bad one: no out_dir
    script.make_out_dir(out_dir)  # before the long part: a bad --out_dir stops the run at once
    if pretrained:  # the model's vocab_size: its embedding may have more rows than the tokenizer has tokens
        tok, vocab_size = pretrained
    else:
        with tqdm(total=size, unit="B", unit_scale=True, desc="training the tokenizer") as progress:
            tok = bpe_tokenizer(train_texts(input_path, cut, size, tokenizer_mb * 1e6, progress), vocab_size)
        vocab_size = tok.get_vocab_size()
    unmark_complete(out_dir)
    script.write_atomically(os.path.join(out_dir, "tokenizer.json"), tok.save)
    meta = {"kind": "text", "source": os.path.basename(input_path), "vocab_size": vocab_size,
            "eos_id": None, "dtype": np.dtype(token_dtype(vocab_size)).name}
    with tqdm(total=size, unit="B", unit_scale=True, desc="encoding") as progress:
        for split, start, end in (("train", 0, cut), ("val", cut, size)):
            path = os.path.join(out_dir, f"{split}.bin")
            counts = encode_split(tok, input_path, start, end, path, progress, vocab_size)
            meta[f"{split}_bytes"] = end - start
            meta |= token_stats(split, counts)
    return write_meta(out_dir, meta)


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


MAX_VOCAB = 2**20  # far past any useful BPE vocabulary; a larger one aborts inside the tokenizers library


def main(argv=None):
    script.run_script(prepare, argv)


def prepare(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if any(a == "--format" or a.startswith("--format=") for a in argv):  # GSM8K-format files: gsm8k.py's flags
        import gsm8k
        return gsm8k.data_main(argv)
    if any(a == "--task" or a.startswith("--task=") for a in argv):  # the task's own flags live in task.py
        import task
        return task.prepare_main(argv)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", help="a UTF-8 text file; omit for the synthetic language")
    parser.add_argument("--task", choices=["arithmetic"], help="word problems with exact answers instead "
                        "(task.py; flags --steps --max_number --train_problems --val_problems --eval_problems)")
    parser.add_argument("--out_dir", default="data/synthetic")
    parser.add_argument("--vocab_size", type=int, help="BPE vocabulary size (text only; default 4096)")
    parser.add_argument("--tokenizer", help="text only: a converted model's directory; its tokenizer, not a new BPE")
    parser.add_argument("--tokenizer_mb", type=float, default=200,
                        help="train the BPE on at most this many MB of the train part, spread over it (text only)")
    parser.add_argument("--train_tokens", type=int, default=2_000_000, help="synthetic only")
    parser.add_argument("--val_tokens", type=int, default=100_000, help="synthetic only")
    parser.add_argument("--seed", type=int, default=0, help="synthetic only: the language and its corpus")
    args = parser.parse_args(argv)
    if args.vocab_size is not None and not args.input:  # default None: only a --vocab_size given is refused
        raise ValueError(f"--vocab_size {args.vocab_size} is for --input only: the synthetic language's "
                         f"vocabulary is fixed; drop it or pass --input FILE.txt")
    if args.tokenizer and (not args.input or args.vocab_size is not None):
        raise ValueError("--tokenizer encodes an --input text with a converted model's tokenizer: "
                         + ("drop --vocab_size" if args.input else "pass --input FILE.txt"))
    args.vocab_size = 4096 if args.vocab_size is None else args.vocab_size
    if args.input and not 257 < args.vocab_size <= MAX_VOCAB:  # byte-level BPE starts from 256 bytes and <eos>
        raise ValueError(f"--vocab_size {args.vocab_size} must be above 257 (the 256 bytes and <eos>) and at most "
                         f"{MAX_VOCAB:,} (2**20): try 4096")
    if args.input and not args.tokenizer_mb > 0:
        raise ValueError(f"--tokenizer_mb {args.tokenizer_mb:g} must be above 0: try 200")
    if not args.input and min(args.train_tokens, args.val_tokens) < 1:
        raise ValueError("--train_tokens and --val_tokens must be at least 1")
    started = time.perf_counter()
    if args.input:
        meta = prepare_text(args.input, args.out_dir, args.vocab_size, tokenizer_mb=args.tokenizer_mb,
                            tokenizer_dir=args.tokenizer)
    else:
        prepare_synthetic(args.out_dir, args.train_tokens, args.val_tokens, args.seed)
        meta = load_meta(args.out_dir)
    seconds = time.perf_counter() - started
    speed = f" ({os.path.getsize(args.input) / 1e6 / seconds:.1f} MB/s)" if args.input else ""
    print(f"wrote {args.out_dir} in {seconds:.1f} s{speed}: vocab {meta['vocab_size']}, "
          f"train {meta['train_tokens']:,} tokens, val {meta['val_tokens']:,} tokens")


if __name__ == "__main__":
    main()
