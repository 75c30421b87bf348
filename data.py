"""Data preparation: text -> tokenizer -> token files (any text, or the synthetic language).

    python data.py --input FILE.txt --out_dir data/mytext [--vocab_size 4096]   # any UTF-8 text
    python data.py --input FILE.txt --tokenizer out/smollm2 --out_dir data/X   # a converted model's tokenizer
    python data.py --out_dir data/synthetic                                     # the synthetic language
    python data.py --task arithmetic --out_dir data/arith                       # word problems (word_problems.py)
    python data.py --task arithmetic --format gsm8k --out_dir data/arith-gsm8k  # as GSM8K-format files

Either way out_dir gets tokenizer.json, train.bin, val.bin and meta.json, as corpus.py describes,
writes and reads them (train.py reads them through np.memmap). A text is streamed a few MB at a
time, so memory stays bounded whatever its size. The synthetic language itself, with its exact
next-token distribution, is in synthetic.py.
"""
import argparse
import mmap
import os
import re
import sys
import time

import numpy as np
from tqdm import tqdm

import corpus
import pretrained_tokenizer
import word_problems
import script
from synthetic import EOS, SyntheticLanguage


# ----------------------------------------------------------------------------
# The BPE tokenizer of a text


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


# ----------------------------------------------------------------------------
# The synthetic language's corpus


def prepare_synthetic(out_dir, train_tokens=2_000_000, val_tokens=100_000, seed=0):
    """Generate the synthetic language's corpus into out_dir (train and val from distinct seeds)."""
    script.make_out_dir(out_dir)
    lang = SyntheticLanguage(seed)
    corpus.unmark_complete(out_dir)
    script.write_atomically(os.path.join(out_dir, "tokenizer.json"), corpus.word_tokenizer(lang.vocab).save)
    meta = {"kind": "synthetic", "seed": seed, "vocab_size": lang.vocab_size,
            "eos_id": lang.eos_id, "dtype": np.dtype(corpus.token_dtype(lang.vocab_size)).name}
    for split, n, corpus_seed in (("train", train_tokens, seed + 1), ("val", val_tokens, seed + 2)):
        ids = np.concatenate([[lang.eos_id], lang.sample_tokens(n, corpus_seed)])  # starts at <eos>
        corpus.write_split(os.path.join(out_dir, f"{split}.bin"), ids, lang.vocab_size)
        meta |= corpus.token_stats(split, np.bincount(ids, minlength=lang.vocab_size))
    corpus.write_meta(out_dir, meta)


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
    dtype = corpus.token_dtype(vocab_size)
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
    corpus.unmark_complete(out_dir)
    script.write_atomically(os.path.join(out_dir, "tokenizer.json"), tok.save)
    meta = {"kind": "text", "source": os.path.basename(input_path), "vocab_size": vocab_size,
            "eos_id": None, "dtype": np.dtype(corpus.token_dtype(vocab_size)).name}
    with tqdm(total=size, unit="B", unit_scale=True, desc="encoding") as progress:
        for split, start, end in (("train", 0, cut), ("val", cut, size)):
            path = os.path.join(out_dir, f"{split}.bin")
            counts = encode_split(tok, input_path, start, end, path, progress, vocab_size)
            meta[f"{split}_bytes"] = end - start
            meta |= corpus.token_stats(split, counts)
    return corpus.write_meta(out_dir, meta)


MAX_VOCAB = 2**20  # far past any useful BPE vocabulary; a larger one aborts inside the tokenizers library


def main(argv=None):
    script.run_script(prepare, argv)


def prepare(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if any(a == "--format" or a.startswith("--format=") for a in argv):  # GSM8K-format files: their own flags
        return word_problems.gsm8k_main(argv)
    if any(a == "--task" or a.startswith("--task=") for a in argv):  # the task's own flags: word_problems.py
        return word_problems.task_main(argv)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", help="a UTF-8 text file; omit for the synthetic language")
    parser.add_argument("--task", choices=["arithmetic"], help="word problems with exact answers instead "
                        "(word_problems.py; its flags: --steps --max_number --train_problems --val_problems "
                        "--eval_problems)")
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
        meta = corpus.load_meta(args.out_dir)
    seconds = time.perf_counter() - started
    speed = f" ({os.path.getsize(args.input) / 1e6 / seconds:.1f} MB/s)" if args.input else ""
    print(f"wrote {args.out_dir} in {seconds:.1f} s{speed}: vocab {meta['vocab_size']}, "
          f"train {meta['train_tokens']:,} tokens, val {meta['val_tokens']:,} tokens")


if __name__ == "__main__":
    main()
