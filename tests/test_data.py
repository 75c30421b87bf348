import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from tqdm import tqdm

import corpus
import data
import script
import synthetic
from tokenizers import Tokenizer


@pytest.fixture(scope="module")
def lang():
    return synthetic.SyntheticLanguage(seed=0)


def test_loader_y_is_x_shifted_by_one_read_from_the_file(tmp_path):
    path = str(tmp_path / "train.bin")
    tokens = (np.arange(5000) * 7919) % 60000  # distinct neighbours, above uint8, within uint16
    corpus.write_split(path, tokens, vocab_size=60000)
    memmap = np.memmap(path, dtype=np.uint16, mode="r")
    rng = np.random.default_rng(0)
    x, y = corpus.get_batch(memmap, batch_size=8, block_size=32, rng=rng)
    assert x.shape == y.shape == (8, 32)
    for row_x, row_y in zip(x.numpy(), y.numpy()):
        start = int(np.flatnonzero(tokens == row_x[0])[0])
        assert np.array_equal(row_x, tokens[start:start + 32])
        assert np.array_equal(row_y, tokens[start + 1:start + 33])


def test_a_vocabulary_past_uint16_is_stored_as_uint32(tmp_path):
    ids = [0, 65535, 65536, 99999]
    for vocab, dtype in ((65536, "uint16"), (100_000, "uint32")):
        corpus.write_split(str(tmp_path / "train.bin"), ids[:2] if vocab == 65536 else ids, vocab)
        meta = {"vocab_size": vocab, "dtype": np.dtype(corpus.token_dtype(vocab)).name}
        assert meta["dtype"] == dtype
        assert corpus.open_split(str(tmp_path), "train", meta).tolist() == (ids[:2] if vocab == 65536 else ids)


def test_tiling_batches_count_each_position_at_most_once():
    tokens = np.arange(1000, dtype=np.uint16)  # 31 whole windows of 32 (y needs one token past x)

    def windows(batch_size, n_tokens):
        return [corpus.windows_at(tokens, starts, 32)
                for starts in corpus.tiling_batches(tokens, batch_size, 32, n_tokens)]

    whole = windows(batch_size=8, n_tokens=10**6)  # more than the text
    x, y = (torch.cat(parts) for parts in zip(*whole))
    assert [len(b) for b, _ in whole] == [8, 8, 8, 7]
    assert torch.equal(x.flatten(), torch.arange(31 * 32)) and torch.equal(y.flatten(), torch.arange(1, 31 * 32 + 1))
    batches = windows(batch_size=3, n_tokens=300)
    assert [len(b) for b, _ in batches] == [3, 3, 3, 1]  # ceil(300 / 32) = 10 windows, spread over the 31
    x, y = (torch.cat(parts) for parts in zip(*batches))
    starts = x[:, 0]
    assert (starts % 32 == 0).all() and (starts.diff() >= 96).all() and starts[-1] >= 27 * 32
    assert torch.equal(y, x + 1)
    with pytest.raises(ValueError, match="32 tokens cannot fill one window of 32"):
        corpus.tiling_batches(tokens[:32], 4, 32, 100)


def test_exact_probabilities_sum_to_one(lang):
    tokens = lang.sample_tokens(20_000, seed=5)
    windows = synthetic.document_windows(np.concatenate([[lang.eos_id], tokens]), lang.eos_id, 30, 64)
    probs = lang.next_token_probs(windows)
    assert probs.shape == (30, 64, lang.vocab_size)
    assert np.allclose(probs.sum(-1), 1.0)
    # every token that actually follows has positive probability
    assert (np.take_along_axis(probs[:, :-1], windows[:, 1:, None], 2) > 0).all()


def test_exact_probabilities_agree_with_empirical_frequencies(lang):
    tokens = np.concatenate([[lang.eos_id], lang.sample_tokens(2_000_000, seed=7)])
    # p*(next | window) averaged over every occurrence of a context must match the counts;
    # with ~20k windows the sampling noise in total variation is about 0.03.
    windows = synthetic.document_windows(tokens, lang.eos_id, 20_000, 12)
    probs = lang.next_token_probs(windows[:, :-1])

    def observed(position):
        return np.bincount(windows[:, position + 1], minlength=lang.vocab_size) / len(windows)

    for position in (0, 3, 8):
        assert 0.5 * np.abs(probs[:, position].mean(0) - observed(position)).sum() < 0.045
    assert 0.5 * np.abs(probs[:, 3].mean(0) - observed(8)).sum() > 0.1  # the check can tell positions apart
    the = lang.vocab.index("the")  # condition on a context word too
    rows, cols = np.nonzero(windows[:, 1:-1] == the)
    predicted = probs[rows, cols + 1].mean(0)
    observed = np.bincount(windows[rows, cols + 2], minlength=lang.vocab_size) / len(rows)
    assert 0.5 * np.abs(predicted - observed).sum() < 0.06


def test_language_is_deterministic_documents_end_at_eos_and_vocab_is_stable(lang):
    a, b = lang.sample_tokens(5000, seed=3), synthetic.SyntheticLanguage(0).sample_tokens(5000, seed=3)
    assert np.array_equal(a, b) and len(a) >= 5000 and a[-1] == lang.eos_id
    assert not np.array_equal(a[:100], lang.sample_tokens(5000, seed=4)[:100])
    assert lang.trans.shape[0] == lang.emit.shape[0] and np.allclose(lang.trans.sum(1), 1)
    words = lang.decode(a[:50]).split()
    assert "." in words and all(w in lang.vocab or w == "\n" for w in words)


def test_next_token_probs_rejects_windows_not_at_a_document_start(lang):
    with pytest.raises(ValueError, match="eos"):
        lang.next_token_probs(np.array([[5, 6, 7]]))


def test_prepare_synthetic_writes_a_consistent_directory(tmp_path):
    out = str(tmp_path / "syn")
    data.prepare_synthetic(out, train_tokens=3000, val_tokens=1000, seed=0)
    meta = corpus.load_meta(out)
    train = corpus.open_split(out, "train", meta)
    assert meta["kind"] == "synthetic" and train.dtype == np.uint16 and len(train) >= 3000
    tok = corpus.load_tokenizer(out)
    ids = tok.encode("the big cow saw his dog .").ids
    assert synthetic.SyntheticLanguage(0).decode(ids) == "the big cow saw his dog ."


def test_prepare_text_round_trips_the_text(tmp_path):
    text = "".join(f"Line {i}: the quick brown fox jumps over the lazy dog, naïvely! ✓\n" for i in range(300))
    src = tmp_path / "input.txt"
    src.write_text(text, encoding="utf-8")
    out = str(tmp_path / "txt")
    meta = data.prepare_text(str(src), out, vocab_size=300)
    tok = corpus.load_tokenizer(out)
    decoded = "".join(tok.decode(corpus.open_split(out, s, meta).tolist()) for s in ("train", "val"))
    assert decoded == text
    assert meta["val_bytes"] + meta["train_bytes"] == len(text.encode("utf-8"))
    assert meta["vocab_size"] <= 300 and meta["dtype"] == "uint16"


def test_prepare_text_keeps_crlf_and_cuts_val_near_the_mark(tmp_path):
    text = "".join(f"row {i}, with a windows line end\r\n" for i in range(300))
    src = tmp_path / "crlf.txt"
    src.write_bytes(text.encode("utf-8"))
    meta = data.prepare_text(str(src), str(tmp_path / "o"), vocab_size=300)
    tok = corpus.load_tokenizer(str(tmp_path / "o"))
    out = str(tmp_path / "o")
    assert "".join(tok.decode(corpus.open_split(out, s, meta).tolist()) for s in ("train", "val")) == text
    assert meta["train_bytes"] + meta["val_bytes"] == len(text.encode("utf-8"))
    # the last line break before 90 %, when it is near; the 90 % mark itself when it is not
    assert data.split_point("a" * 895 + "\n" + "b" * 104, 0.1) == 896  # within 1 % of the text: a whole line
    assert data.split_point("a" * 400 + "\n" + "b" * 599, 0.1) == 900  # a whole line would be 60 % of it
    assert data.split_point("\n" + "a" * 999, 0.1) == 900


def test_bad_inputs_exit_with_a_message(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("   \n")
    with pytest.raises(ValueError, match="empty"):
        data.prepare_text(str(empty), str(tmp_path / "o"))
    with pytest.raises(ValueError, match="no file"):
        data.prepare_text(str(tmp_path / "missing.txt"), str(tmp_path / "o"))
    (tmp_path / "one.txt").write_text("a")
    with pytest.raises(ValueError, match="holds 1 byte.*too few to split into train and val"):
        data.prepare_text(str(tmp_path / "one.txt"), str(tmp_path / "o"))
    with pytest.raises(ValueError, match="meta.json"):
        corpus.load_meta(str(tmp_path / "nowhere"))
    out = tmp_path / "bad"
    out.mkdir()
    corpus.write_split(str(out / "train.bin"), [1, 2, 99], vocab_size=100)
    (out / "meta.json").write_text(json.dumps({"kind": "text", "vocab_size": 50, "dtype": "uint16"}))
    with pytest.raises(ValueError, match="token id 99 >= vocab_size 50"):
        corpus.open_split(str(out), "train", corpus.load_meta(str(out)))
    assert os.path.exists(out / "train.bin")  # nothing is lost
    with pytest.raises(ValueError, match="is a directory"):
        data.prepare_text(str(tmp_path), str(tmp_path / "o"))
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("café\n".encode("latin-1"))
    with pytest.raises(ValueError, match="is not UTF-8 .* at byte 3"):
        data.prepare_text(str(latin1), str(tmp_path / "o"))
    meta = {"kind": "text", "vocab_size": 100, "dtype": "uint32"}
    (out / "meta.json").write_text(json.dumps(meta))  # train.bin is 6 bytes of uint16s
    with pytest.raises(ValueError, match="not a whole number of uint32 tokens"):
        corpus.open_split(str(out), "train", corpus.load_meta(str(out)))
    with pytest.raises(ValueError, match="too few for one window of 8"):
        synthetic.document_windows(np.zeros(8, dtype=np.uint16), 0, 4, 8)
    assert len(synthetic.document_windows(np.zeros(9, dtype=np.uint16), 0, 4, 8)) == 2  # starts 0 and 1


def in_memory_prepare(text, vocab_size, val_fraction=0.1):
    """The algorithm prepare_text streams, on the whole text at once (what data.py did before it
    streamed, but for the cut, now in bytes): BPE trained on the train lines, each split encoded
    one line at a time by a tokenizer that knows nothing of line breaks."""
    from tokenizers import pre_tokenizers

    text_bytes = text.encode("utf-8")
    cut = data.split_point(text_bytes, val_fraction)
    train_text, val_text = text_bytes[:cut].decode("utf-8"), text_bytes[cut:].decode("utf-8")
    tok = data.bpe_tokenizer(train_text.splitlines(keepends=True), vocab_size)
    byte_level = Tokenizer.from_str(tok.to_str())
    byte_level.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    ids = [[i for enc in byte_level.encode_batch(part.splitlines(keepends=True)) for i in enc.ids]
           for part in (train_text, val_text)]
    return tok, cut, ids


def varied_text():
    rng = np.random.default_rng(0)
    words = "the a fox naïve café ✓ 🦊 jumps over lazy dog's end, said 42 and 1999 — «quoted» ".split(" ")
    lines = [" ".join(rng.choice(words, size=rng.integers(0, 30))) for _ in range(1500)]
    breaks = ["\n", "\r\n", "  \n", "\t\n", "\n\n", "\n \n", " \r", "\r\r\n", "\x0b", "\x0c", "\x1c",
              "\x1d", "\x1e", "\x85", "\u2028", "\u2029", " \u2029 \n"]  # every line break Python knows
    ends = rng.choice(breaks, size=len(lines))
    lines[700] = "x" * 900  # nearly a piece long: it starts in one piece and ends in the next
    return "".join(line + end for line, end in zip(lines, ends))


def test_streamed_preparation_writes_the_same_tokens_as_the_whole_text_in_memory(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "PIECE_BYTES", 997)  # many pieces, lines across their edges
    monkeypatch.setattr(data, "BLOCK_CHARS", 101)  # many blocks a piece
    text = varied_text()
    src = tmp_path / "input.txt"
    src.write_bytes(text.encode("utf-8"))
    meta = data.prepare_text(str(src), str(tmp_path / "o"), vocab_size=400)
    tok, train_bytes, (train_ids, val_ids) = in_memory_prepare(text, vocab_size=400)
    assert meta["train_bytes"] == train_bytes
    assert json.loads((tmp_path / "o" / "tokenizer.json").read_text()) == json.loads(tok.to_str())
    assert corpus.open_split(str(tmp_path / "o"), "train", meta).tolist() == train_ids
    assert corpus.open_split(str(tmp_path / "o"), "val", meta).tolist() == val_ids
    assert text.encode("utf-8")[train_bytes - 1] == ord("\n")  # val starts on a whole line, so:
    saved = corpus.load_tokenizer(str(tmp_path / "o"))  # encodes any text as its lines, one by one
    assert saved.encode(text).ids == train_ids + val_ids


def test_texts_without_newlines_stream_in_bounded_pieces(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "PIECE_BYTES", 997)
    monkeypatch.setattr(data, "BLOCK_CHARS", 101)
    old_mac = varied_text().replace("\r\n", "\r").replace("\n", "\r")  # no "\n" at all: "\r" ends every line
    src = tmp_path / "mac.txt"
    src.write_bytes(old_mac.encode("utf-8"))
    pieces = [text for _, text in data.text_pieces(str(src), 0, src.stat().st_size)]
    assert "".join(pieces) == old_mac and max(len(p.encode("utf-8")) for p in pieces) <= 2 * 997
    assert all(data.LINE_BREAK_RE.fullmatch(p[-1]) for p in pieces[:-1])  # cut after line breaks only
    meta = data.prepare_text(str(src), str(tmp_path / "o"), vocab_size=400)
    _, _, (train_ids, val_ids) = in_memory_prepare(old_mac, vocab_size=400)
    assert corpus.open_split(str(tmp_path / "o"), "train", meta).tolist() == train_ids
    assert corpus.open_split(str(tmp_path / "o"), "val", meta).tolist() == val_ids
    one_line = "naïve fox jumps " * 500  # 8,500 bytes and no line break: it must be cut, between characters
    src.write_text(one_line, encoding="utf-8")
    pieces = [text for _, text in data.text_pieces(str(src), 0, src.stat().st_size)]
    assert "".join(pieces) == one_line and max(len(p.encode("utf-8")) for p in pieces) <= 2 * 997


def test_meta_holds_each_splits_count_max_id_and_the_train_unigram_counts(tmp_path):
    src = tmp_path / "input.txt"
    src.write_text(varied_text(), encoding="utf-8")
    text_dir, synthetic_dir = str(tmp_path / "text"), str(tmp_path / "syn")
    data.prepare_text(str(src), text_dir, vocab_size=400)
    data.prepare_synthetic(synthetic_dir, train_tokens=3000, val_tokens=1000)
    for out in (text_dir, synthetic_dir):
        meta = corpus.load_meta(out)
        for split in ("train", "val"):
            tokens = np.asarray(corpus.open_split(out, split, meta))
            assert meta[f"{split}_tokens"] == len(tokens) and meta[f"{split}_max_id"] == tokens.max()
        counts = np.bincount(corpus.open_split(out, "train", meta), minlength=meta["vocab_size"])
        assert np.array_equal(corpus.unigram_counts(meta, None), counts)
        old_meta = {k: v for k, v in meta.items() if k not in ("train_max_id", "train_unigram_counts")}
        assert np.array_equal(corpus.unigram_counts(old_meta, corpus.open_split(out, "train", old_meta)), counts)
    meta["train_tokens"] += 1
    with pytest.raises(ValueError, match="meta.json says"):
        corpus.open_split(synthetic_dir, "train", meta)
    meta["train_unigram_counts"].pop()
    with pytest.raises(ValueError, match="train_unigram_counts hold 186 counts for vocab_size 187"):
        corpus.unigram_counts(meta, None)


def test_the_cut_in_bytes_is_the_cut_in_characters_and_never_splits_a_character():
    for text in ("a" * 895 + "\n" + "b" * 104, "a" * 400 + "\n" + "b" * 599, "\n" + "a" * 999, "ab\r\n" * 300):
        assert data.split_point(text.encode("utf-8"), 0.1) == data.split_point(text, 0.1)
    text = ("a" + "é" * 1000).encode("utf-8")  # 2001 bytes: the 90 % mark, 1800, is the second byte of an é
    assert data.split_point(text, 0.1) == 1799 and text[1799:].decode("utf-8") == "é" * 101


def test_a_bad_byte_in_the_val_part_stops_before_any_file_is_written(tmp_path):
    src = tmp_path / "late.txt"
    src.write_bytes(b"fine line\n" * 1000 + "café\n".encode("latin-1"))
    with pytest.raises(ValueError, match="is not UTF-8 .* at byte 10003"):
        data.prepare_text(str(src), str(tmp_path / "o"))
    assert os.listdir(tmp_path / "o") == []


def peak_rss_of_preparing(path, out_dir):
    """Run data.py --input in a child process with small pieces; its peak resident memory in bytes."""
    code = ("import resource, sys, data; data.PIECE_BYTES = 1 << 16; data.main(sys.argv[1:]); "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run([sys.executable, "-c", code, "--input", str(path), "--out_dir", str(out_dir),
                           "--vocab_size", "300"], cwd=root, capture_output=True, text=True, check=True)
    return int(done.stdout.split()[-1]) * 1024  # ru_maxrss is in KiB on Linux


def test_peak_memory_does_not_grow_with_the_size_of_the_text(tmp_path):
    rng = np.random.default_rng(0)
    words = np.array("the quick brown fox jumps over a lazy dog while naïve cats nap in the sun".split())
    line = lambda: " ".join(rng.choice(words, size=12)) + "\n"
    block = "".join(line() for _ in range(2000)).encode("utf-8")  # about 130 KB
    sizes = {}
    for mb in (0.3, 3):
        path = tmp_path / f"{mb}mb.txt"
        path.write_bytes(block * int(mb * 10**6 // len(block)))
        sizes[mb] = peak_rss_of_preparing(path, tmp_path / f"out{mb}")
    # the whole text in memory took ~60 bytes a byte of text: 160 MB more for 2.7 MB more
    assert sizes[3] - sizes[0.3] < 30 * 2**20, sizes


def test_the_tokenizer_trains_on_at_most_its_sample_spread_over_the_train_part(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "PIECE_BYTES", 1000)
    path = tmp_path / "numbered.txt"
    path.write_text("".join(f"line {i:05d} {'x' * 88}\n" for i in range(1000)))  # 100-byte lines
    with tqdm(disable=True) as progress:  # train part: 90 pieces of 10 lines; a sample of 9 of them
        blocks = data.train_texts(str(path), 90_000, 100_000, 9_000, progress)
        seen = [line for texts in blocks for text in texts for line in text.splitlines()]
    numbers = [int(line.split()[1]) for line in seen]
    assert len(numbers) == 90 and sorted({n // 100 for n in numbers}) == list(range(9))
    with tqdm(disable=True) as progress:
        texts = [text for texts in data.train_texts(str(path), 90_000, 100_000, 90_000, progress) for text in texts]
        assert "".join(texts) == path.read_text()[:90_000]
    with pytest.raises(SystemExit, match="--tokenizer_mb 0 must be above 0"):
        data.main(["--input", str(path), "--out_dir", str(tmp_path / "o"), "--tokenizer_mb", "0"])


def test_a_full_disk_in_a_library_that_raises_a_plain_exception_is_a_one_line_os_error(tmp_path):
    path = str(tmp_path / "tokenizer.json")
    script.write_text(path, "old")

    def tokenizers_save(tmp):  # what tokenizers' Tokenizer.save raises on a full disk
        with open(tmp, "w") as f:
            f.write("partial")
        raise Exception("No space left on device (os error 28)")

    with pytest.raises(OSError, match=r"could not write .*tokenizer.json \(the disk is full\); the previous file"):
        script.write_atomically(path, tokenizers_save)
    assert os.listdir(tmp_path) == ["tokenizer.json"] and open(path).read() == "old"

    for error in (KeyboardInterrupt(), Exception("boom"), ValueError("bad input")):  # not about space: as they are

        def failing(tmp):
            raise error

        with pytest.raises(type(error)) as raised:
            script.write_atomically(path, failing)
        assert raised.value is error


def test_an_interrupted_preparation_over_a_prepared_directory_leaves_no_meta_json(tmp_path, monkeypatch):
    out = str(tmp_path / "d")
    data.prepare_synthetic(out, train_tokens=2000, val_tokens=500)
    src = tmp_path / "b.txt"
    src.write_text("".join(f"line {i} of another text\n" for i in range(300)))
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes(b"fine line\n" * 300 + "caf\xe9\n".encode("latin-1"))
    with pytest.raises(ValueError, match="not UTF-8"):  # refused before any write: the old directory stays whole
        data.prepare_text(str(latin1), out, vocab_size=300)
    assert corpus.load_meta(out)["kind"] == "synthetic"

    def ctrl_c(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(data, "encode_split", ctrl_c)  # Ctrl-C while encoding: B's tokenizer.json is written
    with pytest.raises(KeyboardInterrupt):
        data.prepare_text(str(src), out, vocab_size=300)
    assert json.load(open(os.path.join(out, "tokenizer.json")))["model"]["type"] == "BPE"
    with pytest.raises(ValueError, match="no meta.json in .*data.py was interrupted"):  # not A's meta, B's tokenizer
        corpus.load_meta(out)
    monkeypatch.undo()
    assert data.prepare_text(str(src), out, vocab_size=300)["kind"] == corpus.load_meta(out)["kind"] == "text"


@pytest.mark.parametrize("content, message", [
    ("[1, 2]", "lacks kind, vocab_size, dtype"),
    ('{"vocab_size": 10, "dtype": "uint16"}', "lacks kind"),
    ('{"kind": "text", "vocab_size": "10", "dtype": "uint16"}', "vocab_size '10' \\(not a positive integer\\)"),
    ('{"kind": "text", "vocab_size": 0, "dtype": "uint16"}', "vocab_size 0 \\(not a positive"),
    ('{"kind": "text", "vocab_size": true, "dtype": "uint16"}', "vocab_size True \\(not a positive"),
    ('{"kind": "text", "vocab_size": 10.5, "dtype": "uint16"}', "vocab_size 10.5 \\(not a positive"),
    ('{"kind": "text", "vocab_size": 10, "dtype": "int8"}', "dtype 'int8' \\(not uint16 or uint32\\)"),
    ('{"kind": "text", "vocab_size": 10, "dtype": ["uint16"]}', "dtype \\['uint16'\\]"),
    ('{"kind": "poetry", "vocab_size": 10, "dtype": "uint16"}', "kind 'poetry' \\(not one of synthetic, text, task"),
    ("[" * 100_000, "cannot read .*meta.json \\(RecursionError\\)"),
])
def test_load_meta_refuses_what_data_py_never_writes(tmp_path, content, message):
    (tmp_path / "meta.json").write_text(content)
    with pytest.raises(ValueError, match=message) as error:
        corpus.load_meta(str(tmp_path))
    assert "\n" not in str(error.value) and "re-run data.py" in str(error.value)


def test_vocab_size_is_refused_where_it_would_be_ignored_or_abort(tmp_path):
    with pytest.raises(SystemExit, match="--vocab_size 300 is for --input only: the synthetic language"):
        data.main(["--out_dir", str(tmp_path / "syn"), "--vocab_size", "300"])
    src = tmp_path / "a.txt"
    src.write_text("a line\n" * 100)
    with pytest.raises(SystemExit, match="--vocab_size 100000000000 must be above 257 .* at most 1,048,576"):
        data.main(["--input", str(src), "--out_dir", str(tmp_path / "o"), "--vocab_size", str(10**11)])
    assert not (tmp_path / "syn").exists() and not (tmp_path / "o").exists()
    data.main(["--out_dir", str(tmp_path / "syn"), "--train_tokens", "1000", "--val_tokens", "100"])  # no flag: fine
    assert corpus.load_meta(str(tmp_path / "syn"))["kind"] == "synthetic"
