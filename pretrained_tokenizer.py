"""The text side of a pretrained model: its tokenizer, special tokens and chat template.

convert.py writes two files beside the converted ckpt.pt: tokenizer.json (a `tokenizers` file:
a Hugging Face folder's own, or one rebuilt here from a GGUF file's metadata) and
tokenizer_meta.json (the model's vocabulary size, BOS/EOS and end-of-turn ids, whether a text
starts with BOS, the chat template). sample.py, data.py and evaluate.py read them back with
`load(directory)`; `render_chat` fills the chat template in a sandbox, since a template that
comes with a downloaded model is untrusted code.
"""
import json
import os

META_FILE = "tokenizer_meta.json"

# The pre-tokenizers llama.cpp names in tokenizer.ggml.pre, as the regular expressions of the
# models' own tokenizer.json files: BPE merges are learned inside these pieces, so a tokenizer
# that cut the text elsewhere would produce other (valid but unfamiliar) tokens.
LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
                r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
               r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
PRE_TOKENIZERS = ("default", "gpt2", "smollm", "llama-bpe", "llama3", "qwen2")
CONTROL, USER_DEFINED = 3, 4  # llama.cpp's token types: special markers, and tokens added whole


def pre_tokenizer(name):
    """(normalizer or None, pre-tokenizer, ignore_merges) for llama.cpp's pre-tokenizer name."""
    from tokenizers import Regex, normalizers, pre_tokenizers

    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)  # GPT-2's own expression
    if name in ("default", "gpt2"):
        return None, byte_level, False
    if name == "smollm":  # SmolLM's tokenizer cuts every digit apart before the GPT-2 expression
        return None, pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level]), False
    split = LLAMA3_SPLIT if name in ("llama-bpe", "llama3") else QWEN2_SPLIT
    sequence = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(split), "isolated"),
                                        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    # Llama 3 takes a piece that is itself a token whole, before any merge; Qwen2 normalises to NFC first
    return (normalizers.NFC() if name == "qwen2" else None), sequence, name != "qwen2"


def from_gguf_metadata(meta, path):
    """A byte-level BPE `tokenizers.Tokenizer` from a GGUF file's tokenizer.ggml.* values (a dict)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models

    kind = meta.get("tokenizer.ggml.model")
    if kind != "gpt2":
        raise ValueError(f"{path}: tokenizer.ggml.model is {kind!r}; only byte-level BPE ('gpt2') tokenizers are "
                         f"rebuilt from GGUF: convert the model's Hugging Face folder instead")
    pre = meta.get("tokenizer.ggml.pre", "default")
    if pre not in PRE_TOKENIZERS:
        raise ValueError(f"{path}: tokenizer.ggml.pre {pre!r} is not one of {', '.join(PRE_TOKENIZERS)}: "
                         f"convert the model's Hugging Face folder instead")
    tokens, types = meta["tokenizer.ggml.tokens"], meta.get("tokenizer.ggml.token_type") or []
    merges = [tuple(m.split(" ", 1)) for m in meta.get("tokenizer.ggml.merges", [])]
    normalizer, pre_tok, ignore_merges = pre_tokenizer(pre)
    tok = Tokenizer(models.BPE({t: i for i, t in enumerate(tokens)}, merges, ignore_merges=ignore_merges))
    if normalizer is not None:
        tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tok
    tok.decoder = decoders.ByteLevel()
    # markers such as <|im_start|> must stay whole wherever they occur in a text: the control tokens, and
    # BOS, EOS and end of turn even where a file leaves the token types out
    marked = {meta.get(f"tokenizer.ggml.{name}_token_id") for name in ("bos", "eos", "eot", "eom")}
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for i, (t, kind)
                            in enumerate(zip(tokens, types or [None] * len(tokens))) if kind == CONTROL or i in marked])
    tok.add_tokens([AddedToken(t, special=False, normalized=False)
                    for t, kind in zip(tokens, types) if kind == USER_DEFINED])
    return tok


def gguf_special_tokens(meta, vocab_size):
    """tokenizer_meta.json's values from a GGUF file's metadata."""
    get = meta.get
    eos = get("tokenizer.ggml.eos_token_id")
    stops = [i for i in (eos, get("tokenizer.ggml.eot_token_id"), get("tokenizer.ggml.eom_token_id")) if i is not None]
    return special_tokens(vocab_size, get("tokenizer.ggml.bos_token_id"), eos, stops,
                          bool(get("tokenizer.ggml.add_bos_token", False)), get("tokenizer.chat_template"))


def special_tokens(vocab_size, bos_id, eos_id, stop_ids, add_bos, chat_template):
    ids = [int(i) for i in dict.fromkeys(stop_ids) if i is not None]  # in order, once each
    return {"vocab_size": int(vocab_size), "bos_id": bos_id, "eos_id": eos_id, "stop_ids": ids,
            "add_bos": bool(add_bos and bos_id is not None), "chat_template": chat_template}


def read_json(path, what):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise ValueError(f"cannot read {path} ({type(e).__name__}): {what}") from None


def folder_special_tokens(folder, config, tokenizer, vocab_size):
    """tokenizer_meta.json's values for a Hugging Face folder: ids from config.json and
    generation_config.json, the chat template from tokenizer_config.json (or chat_template.jinja)."""
    fix = "the folder is damaged: download it again"
    generation = read_json(os.path.join(folder, "generation_config.json"), fix)
    tok_config = read_json(os.path.join(folder, "tokenizer_config.json"), fix)
    as_list = lambda v: v if isinstance(v, list) else [v]
    eos_ids = as_list(config.get("eos_token_id")) + as_list(generation.get("eos_token_id"))
    eos_ids = [i for i in eos_ids if isinstance(i, int)]
    bos_id = config.get("bos_token_id", generation.get("bos_token_id"))
    bos_id = bos_id if isinstance(bos_id, int) else None
    template = tok_config.get("chat_template")
    if isinstance(template, list):  # several named templates: the default one
        template = next((t.get("template") for t in template if t.get("name") == "default"), None)
    jinja = os.path.join(folder, "chat_template.jinja")
    if template is None and os.path.exists(jinja):
        with open(jinja, encoding="utf-8") as f:
            template = f.read()
    # a Llama tokenizer.json adds BOS in its post-processor; the scripts encode without it and add it themselves
    probe = tokenizer.encode("a").ids
    add_bos = bos_id is not None and bool(probe) and probe[0] == bos_id
    return special_tokens(vocab_size, bos_id, eos_ids[0] if eos_ids else None, eos_ids, add_bos,
                          template if isinstance(template, str) else None)


def load(directory):
    """(tokenizer, meta) of a converted model in directory; meta holds tokenizer_meta.json's values
    and kind "pretrained"."""
    from tokenizers import Tokenizer

    path = os.path.join(directory, META_FILE)
    if not os.path.exists(path):
        raise ValueError(f"no {META_FILE} in {directory}: convert the model with `python convert.py SRC "
                         f"--out_dir {directory}`")
    meta = read_json(path, f"convert the model again into {directory}")
    if not isinstance(meta, dict) or not isinstance(meta.get("vocab_size"), int):
        raise ValueError(f"{path} lacks vocab_size: convert the model again into {directory}")
    tok_path = os.path.join(directory, "tokenizer.json")
    try:
        tokenizer = Tokenizer.from_file(tok_path)
    except Exception as e:  # tokenizers raises a plain Exception for a missing or damaged file
        raise ValueError(f"cannot read {tok_path} ({str(e).splitlines()[0][:100]}): convert the model again "
                         f"into {directory}") from None
    return tokenizer, {**meta, "kind": "pretrained", "stop_ids": list(meta.get("stop_ids") or [])}


def for_text(directory):
    """(tokenizer, the model's vocab_size) for data.py --tokenizer DIR."""
    tokenizer, meta = load(directory)
    return tokenizer, meta["vocab_size"]


def encode(tokenizer, meta, text):
    """text's ids as the model expects them: BOS first when the model wants one, and the tokenizer's
    own post-processing off (a Llama tokenizer.json would add a second BOS)."""
    ids = tokenizer.encode(text, add_special_tokens=False).ids if text else []
    bos = meta.get("bos_id")
    if bos is not None and (meta.get("add_bos") or not ids) and ids[:1] != [bos]:
        ids = [bos] + ids  # an empty prompt starts a document at BOS as well
    return ids


def render_chat(meta, user_text, tokenizer):
    """The model's chat template filled with one user message and the assistant's cue, rendered in
    jinja2's immutable sandbox: a template is code from whoever made the file, and one that reaches
    for Python's internals (or mutates what it is given) is refused with a one-line error."""
    import datetime

    from jinja2 import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    template = meta.get("chat_template")
    if not template:
        raise ValueError("this model has no chat template: use --prompt instead of --chat")

    def raise_exception(message):
        raise TemplateError(message)

    token = lambda i: tokenizer.id_to_token(i) if i is not None else ""
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)  # as Hugging Face renders them
    env.globals.update(raise_exception=raise_exception,
                       strftime_now=lambda fmt: datetime.datetime.now().strftime(str(fmt)))
    try:
        return env.from_string(template).render(messages=[{"role": "user", "content": user_text}],
                                                add_generation_prompt=True, bos_token=token(meta.get("bos_id")),
                                                eos_token=token(meta.get("eos_id")))
    except (TemplateError, TypeError, ValueError, AttributeError, KeyError, IndexError, RecursionError) as e:
        detail = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
        raise ValueError(f"the model's chat template failed ({type(e).__name__}: {detail}): use --prompt "
                         f"instead of --chat, or fix chat_template in tokenizer_meta.json") from None
