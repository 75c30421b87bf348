import pytest
import torch
import torch.nn.functional as F

from model import PRESETS, KVCache, ModelConfig, RMSNorm, Transformer, apply_rope, rope_tables


def tiny_model(**overrides):
    torch.manual_seed(0)
    settings = dict(vocab_size=61, dim=32, n_layers=2, n_heads=4, n_kv_heads=2, max_seq_len=40)
    return Transformer(ModelConfig(**{**settings, **overrides})).eval()


def test_logits_shape_and_loss_is_cross_entropy():
    model = tiny_model()
    x, y = torch.randint(0, 61, (3, 17)), torch.randint(0, 61, (3, 17))
    assert model(x).shape == (3, 17, 61)
    logits, loss = model(x, y)
    assert torch.allclose(loss, F.cross_entropy(logits.view(-1, 61), y.view(-1)))


def test_causal_later_tokens_never_change_earlier_logits():
    model = tiny_model()
    x = torch.randint(0, 61, (2, 20))
    changed = x.clone()
    changed[:, 12:] = torch.randint(0, 61, (2, 8))
    a, b = model(x), model(changed)
    assert torch.equal(a[:, :12], b[:, :12])
    assert not torch.allclose(a[:, 12:], b[:, 12:])


@pytest.mark.parametrize("prefill", [1, 7])
def test_kv_cache_decoding_equals_full_forward(prefill):
    model = tiny_model()
    x = torch.randint(0, 61, (2, 25))
    cache = KVCache(model.config, 2, 40, "cpu", torch.float32)
    pieces = [model(x[:, :prefill], cache=cache)]
    pieces += [model(x[:, t:t + 1], cache=cache) for t in range(prefill, 20)]
    pieces.append(model(x[:, 20:], cache=cache))  # a multi-token chunk after the cache is filled
    assert torch.allclose(torch.cat(pieces, 1), model(x), atol=1e-5)


def test_left_padded_rows_equal_unpadded_forward():
    model = tiny_model()
    short, long = torch.randint(0, 61, (1, 6)), torch.randint(0, 61, (1, 10))
    batch = torch.cat([torch.cat([torch.zeros(1, 4, dtype=torch.long), short], 1), long])
    cache = KVCache(model.config, 2, 40, "cpu", torch.float32, pad=torch.tensor([4, 0]))
    logits = model(batch, cache=cache)
    assert torch.allclose(logits[0, 4:], model(short)[0], atol=1e-5)
    assert torch.allclose(logits[1], model(long)[0], atol=1e-5)
    step = torch.randint(0, 61, (2, 1))  # one more decoding step stays consistent per row
    nxt = model(step, cache=cache)
    assert torch.allclose(nxt[0, 0], model(torch.cat([short, step[:1]], 1))[0, -1], atol=1e-5)
    assert torch.allclose(nxt[1, 0], model(torch.cat([long, step[1:]], 1))[0, -1], atol=1e-5)


@pytest.mark.parametrize("pad", [None, [5, 0, 2]])
def test_fixed_shape_decoding_steps_equal_full_forward(pad):
    """After begin_decoding each step writes at the device-side slot and attends over the
    whole buffer under a mask: the logits must still be those of a plain forward, per row."""
    model = tiny_model()
    pad = torch.tensor(pad) if pad is not None else None
    rows = [torch.randint(0, 61, (1, 20)) for _ in range(3)]
    prompt_len, total = 8, 20
    lengths = [prompt_len - (int(pad[r]) if pad is not None else 0) for r in range(3)]
    prompt = torch.zeros(3, prompt_len, dtype=torch.long)
    for r, n in enumerate(lengths):
        prompt[r, prompt_len - n:] = rows[r][0, :n]
    cache = KVCache(model.config, 3, 30, "cpu", torch.float32, pad=pad)
    model(prompt, cache=cache)
    cache.begin_decoding()
    for t in range(total - prompt_len):
        token = torch.stack([rows[r][0, lengths[r] + t] for r in range(3)])[:, None]
        logits = model(token, cache=cache)[:, 0]
        for r in range(3):
            expected = model(rows[r][:, :lengths[r] + t + 1])[0, -1]
            assert torch.allclose(logits[r], expected, atol=1e-5)
    assert int(cache.slot) == prompt_len + total - prompt_len
    with pytest.raises(ValueError, match="one token per row"):
        model(torch.zeros(3, 2, dtype=torch.long), cache=cache)
    with pytest.raises(ValueError, match="exceeds max_seq_len"):
        KVCache(model.config, 1, 41, "cpu", torch.float32)


def test_rotary_scores_depend_only_on_relative_position():
    head_dim = 16
    cos, sin = rope_tables(head_dim, 64, 10000.0)
    q, k = torch.randn(1, 1, 1, head_dim), torch.randn(1, 1, 1, head_dim)

    def score(m, n):
        qm = apply_rope(q, cos[m:m + 1], sin[m:m + 1])
        kn = apply_rope(k, cos[n:n + 1], sin[n:n + 1])
        return (qm * kn).sum()

    assert torch.allclose(score(3, 1), score(40, 38), atol=1e-5)
    assert torch.allclose(score(10, 0), score(60, 50), atol=1e-5)
    assert not torch.allclose(score(3, 1), score(3, 2), atol=1e-3)
    # the rotation preserves length
    assert torch.allclose(apply_rope(q, cos[5:6], sin[5:6]).norm(), q.norm(), atol=1e-5)


def test_grouped_query_attention_equals_multi_head_with_shared_kv():
    gqa = tiny_model(n_kv_heads=2)
    mha = tiny_model(n_kv_heads=4)
    state = gqa.state_dict()
    hd = gqa.config.head_dim
    for key, value in list(state.items()):
        if key.endswith(("wk.weight", "wv.weight")):  # query heads 0,1 share kv head 0; 2,3 share 1
            state[key] = value.view(2, hd, -1).repeat_interleave(2, dim=0).reshape(4 * hd, -1)
    mha.load_state_dict(state)
    x = torch.randint(0, 61, (2, 15))
    assert torch.allclose(gqa(x), mha(x), atol=1e-5)


def test_output_embedding_is_tied_and_norm_gains_get_no_decay():
    model = tiny_model()
    assert model.output.weight is model.tok_emb.weight
    decay, no_decay = model.optim_groups(0.1)
    assert all(p.dim() >= 2 for p in decay["params"]) and all(p.dim() == 1 for p in no_decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_preset_sizes():
    counts = {name: Transformer(ModelConfig(**PRESETS[name])).num_params() for name in ("minimind-26m", "gpt2-124m")}
    assert 24e6 < counts["minimind-26m"] < 27e6
    assert 120e6 < counts["gpt2-124m"] < 128e6


def test_rms_norm_divides_by_the_root_mean_square_then_scales():
    norm = RMSNorm(6, eps=1e-5)
    with torch.no_grad():
        norm.weight.copy_(torch.arange(1.0, 7.0))
    x = torch.randn(3, 6) * 5
    expected = x / torch.sqrt((x ** 2).mean(-1, keepdim=True) + 1e-5) * norm.weight
    torch.testing.assert_close(norm(x), expected)
    big = (x * 1000).half()  # its squares overflow fp16 (> 65504): the mean is taken in fp32
    expected = big.float() / torch.sqrt((big.float() ** 2).mean(-1, keepdim=True) + 1e-5) * norm.weight
    torch.testing.assert_close(norm(big).float(), expected, rtol=2e-3, atol=2e-3)


def test_bad_configs_and_too_long_input_raise():
    with pytest.raises(ValueError, match="n_kv_heads"):
        ModelConfig(n_heads=4, n_kv_heads=3)
    with pytest.raises(ValueError, match="divisible"):
        ModelConfig(dim=30, n_heads=4)
    with pytest.raises(ValueError, match="n_kv_heads=0 must be at least 1"):
        ModelConfig(n_kv_heads=0)
    with pytest.raises(ValueError, match="hidden_dim=-5 must be at least 1"):
        ModelConfig(hidden_dim=-5)
    with pytest.raises(ValueError, match="dropout"):
        ModelConfig(dropout=1.0)
    with pytest.raises(ValueError, match="max_seq_len"):
        tiny_model()(torch.zeros(1, 41, dtype=torch.long))
    model = tiny_model()
    cache = KVCache(model.config, 1, 10, "cpu", torch.float32)
    model(torch.zeros(1, 8, dtype=torch.long), cache=cache)
    with pytest.raises(ValueError, match="11 tokens exceed the cache's 10 slots"):
        model(torch.zeros(1, 3, dtype=torch.long), cache=cache)
