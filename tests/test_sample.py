import math

import pytest
import torch
import torch.nn.functional as F

from head import MinPPlusHead
from model import ModelConfig, Transformer
from sample import METHODS, filter_logits, generate


def logits_of(probs):
    return torch.tensor([probs]).log()


def kept(logits):
    return torch.isfinite(logits).sum().item()


def test_top_p_keeps_the_smallest_prefix_reaching_p():
    assert kept(filter_logits(logits_of([0.4, 0.35, 0.25]), "top_p", top_p=0.7)) == 2
    assert kept(filter_logits(logits_of([0.5, 0.3, 0.1, 0.1]), "top_p", top_p=0.8)) == 2  # mass exactly p
    assert kept(filter_logits(logits_of([0.5, 0.3, 0.1, 0.1]), "top_p", top_p=0.81)) == 3
    assert kept(filter_logits(logits_of([0.5, 0.3, 0.1, 0.1]), "top_p", top_p=1.0)) == 4
    out = filter_logits(logits_of([0.25, 0.4, 0.35]), "top_p", top_p=0.7)  # order in the vocabulary is irrelevant
    assert torch.isfinite(out[0]).tolist() == [False, True, True]


def test_min_p_top_k_and_greedy():
    assert kept(filter_logits(logits_of([0.7, 0.2, 0.1]), "min_p", min_p=0.3)) == 1
    assert kept(filter_logits(logits_of([0.7, 0.2, 0.1]), "min_p", min_p=0.2)) == 2
    assert kept(filter_logits(logits_of([0.1, 0.5, 0.2, 0.2]), "top_k", top_k=2)) == 3  # ties at the k-th stay
    out = filter_logits(logits_of([0.1, 0.5, 0.3, 0.1]), "greedy")
    assert torch.isfinite(out[0]).tolist() == [False, True, False, False]


def test_typical_epsilon_eta_and_top_nsigma_on_hand_computed_cases():
    probs = [0.5, 0.2, 0.15, 0.1, 0.05]
    entropy = -sum(p * math.log(p) for p in probs)  # 1.333: |-log p - H| ranks 0.2, 0.15, 0.5, 0.1, 0.05
    assert sorted(range(5), key=lambda i: abs(-math.log(probs[i]) - entropy)) == [1, 2, 0, 3, 4]
    out = filter_logits(logits_of(probs), "typical", typical_p=0.4)  # 0.2 + 0.15 = 0.35 < 0.4 -> add 0.5
    assert torch.isfinite(out[0]).tolist() == [True, True, True, False, False]
    out = filter_logits(logits_of(probs), "typical", typical_p=0.3)  # 0.35 >= 0.3: the top token is atypical
    assert torch.isfinite(out[0]).tolist() == [False, True, True, False, False]
    assert kept(filter_logits(logits_of(probs), "epsilon", epsilon_cutoff=0.12)) == 3
    eta_cut = min(0.3, math.sqrt(0.3) * math.exp(-entropy))  # 0.144
    assert kept(filter_logits(logits_of(probs), "eta", eta_cutoff=0.3)) == sum(p >= eta_cut for p in probs)
    z = torch.tensor([[3.0, 2.0, 0.0, -1.0, -4.0]])
    # sample std sqrt(30 / 4) = 2.739: n_sigma 1 keeps z >= 0.261, n_sigma 1.2 keeps z >= -0.286
    assert torch.isfinite(filter_logits(z, "top_nsigma", n_sigma=1.0)[0]).tolist() == [True, True, False, False, False]
    assert torch.isfinite(filter_logits(z, "top_nsigma", n_sigma=1.2)[0]).tolist() == [True, True, True, False, False]
    removed = torch.tensor([[3.0, 2.0, 0.0, -1.0, float("-inf")]])  # -inf entries stay out of the std
    assert kept(filter_logits(removed, "top_nsigma", n_sigma=1.0)) == 2  # std 1.826: keeps z >= 1.17


def test_temperature_first_and_last_differ_as_expected():
    z = logits_of([0.6, 0.3, 0.1])
    # ratios to the top token: raw 0.5 and 0.167; at T = 2 (first) their square roots 0.707 and 0.408
    assert kept(filter_logits(z, "min_p", min_p=0.3, temperature=2.0)) == 3
    assert kept(filter_logits(z, "min_p", min_p=0.3, temperature=2.0, temperature_last=True)) == 2
    assert kept(filter_logits(z, "min_p", min_p=0.6, temperature=2.0)) == 2
    assert kept(filter_logits(z, "min_p", min_p=0.6, temperature=2.0, temperature_last=True)) == 1
    last = filter_logits(z, "min_p", min_p=0.3, temperature=2.0, temperature_last=True)
    assert torch.allclose(last[0, :2], z[0, :2] / 2)  # what is kept is then divided by T
    assert torch.allclose(filter_logits(z, "temperature", temperature=2.0), z / 2)
    assert kept(filter_logits(z, "temperature", temperature=0.0)) == 1  # temperature 0 is greedy


def test_minpplus_with_one_hot_weight_equals_min_p():
    torch.manual_seed(0)
    z = torch.randn(6, 300) * 3
    head = MinPPlusHead()
    for j in (4, 17, 30):
        weights = torch.zeros(len(head.tau))
        weights[j] = 1.0
        one_hot = MinPPlusHead.from_weights(head.tau, weights)
        m = head.tau[j].item()
        ours = F.softmax(filter_logits(z, "minpplus", head=one_hot), -1)
        reference = F.softmax(filter_logits(z, "min_p", min_p=m), -1)
        assert torch.allclose(ours, reference, atol=1e-6)


def parameter_ladders():
    """Each method's parameter from loose to tight."""
    return {
        "top_k": ("top_k", [200, 50, 10, 3, 1]),
        "top_p": ("top_p", [1.0, 0.95, 0.8, 0.5, 0.1]),
        "min_p": ("min_p", [0.0, 0.01, 0.1, 0.5, 1.0]),
        "typical": ("typical_p", [1.0, 0.9, 0.6, 0.3, 0.05]),
        "epsilon": ("epsilon_cutoff", [0.0, 1e-4, 1e-3, 1e-2, 0.2]),
        "eta": ("eta_cutoff", [0.0, 1e-4, 1e-3, 1e-2, 0.2]),
        "top_nsigma": ("n_sigma", [10.0, 3.0, 1.0, 0.5, 0.0]),
    }


@pytest.mark.parametrize("method", list(parameter_ladders()))
def test_every_method_gives_a_valid_distribution_whose_support_shrinks_as_it_tightens(method):
    name, ladder = parameter_ladders()[method]
    generator = torch.Generator().manual_seed(1)
    for trial in range(20):
        z = torch.randn(4, 200, generator=generator) * (0.5 + trial / 4)
        previous = None
        for value in ladder:
            out = filter_logits(z, method, **{name: value})
            probs = F.softmax(out, -1)
            assert torch.isfinite(probs).all() and torch.allclose(probs.sum(-1), torch.ones(4))
            support = torch.isfinite(out)
            assert (support.sum(-1) >= 1).all()
            if method != "typical":  # typical may drop the top token when it is far more likely than typical
                assert support.gather(-1, z.argmax(-1, keepdim=True)).all()
            if previous is not None:
                assert not (support & ~previous).any(), f"{method} support grew at {name}={value}"
            previous = support
            assert torch.allclose(out[support], z[support])  # kept tokens keep their logits


@pytest.mark.parametrize("method, params, message", [
    ("top_p", dict(top_p=0.0), "top_p"), ("top_p", dict(top_p=1.5), "top_p"),
    ("top_k", dict(top_k=-1), "top_k"), ("top_k", dict(top_k=0), "top_k"),
    ("min_p", dict(min_p=1.5), "min_p"), ("min_p", dict(min_p=-0.1), "min_p"),
    ("temperature", dict(temperature=-1.0), "temperature"), ("nucleus", {}, "unknown method"),
    ("minpplus", {}, "head"), ("top_p", {}, "needs top_p"),
])
def test_bad_parameters_raise_a_clear_error(method, params, message):
    with pytest.raises(ValueError, match=message):
        filter_logits(torch.zeros(1, 5), method, **params)


# ----------------------------------------------------------------------------
# generation


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=37, dim=32, n_layers=2, n_heads=4, n_kv_heads=2, max_seq_len=48)
    return Transformer(cfg).eval()


def generate_by_full_forward(model, prompt, max_new_tokens, generator, **params):
    """The reference: re-run the whole sequence for every new token, no cache."""
    seq = list(prompt)
    for _ in range(max_new_tokens):
        with torch.no_grad():
            logits = model(torch.tensor([seq]))[:, -1]
        probs = F.softmax(filter_logits(logits, **params), -1)
        seq.append(torch.multinomial(probs, 1, generator=generator).item())
    return seq[len(prompt):]


@pytest.mark.parametrize("params", [dict(method="greedy"), dict(method="top_p", top_p=0.9),
                                    dict(method="min_p", min_p=0.05, temperature=0.8)])
def test_kv_cache_generation_equals_full_re_forward(model, params):
    prompt = [3, 14, 15, 9, 2, 6]
    ours = generate(model, [prompt], 20, generator=torch.Generator().manual_seed(7), **params)[0]
    reference = generate_by_full_forward(model, prompt, 20, torch.Generator().manual_seed(7), **params)
    assert ours == reference


def test_batched_greedy_generation_of_ragged_prompts_equals_one_by_one(model):
    prompts = [[5], [1, 2, 3, 4, 5, 6, 7, 8, 9], [30, 31, 7, 7]]
    batched = generate(model, prompts, 15, do_sample=False)
    assert batched == [generate(model, [p], 15, do_sample=False)[0] for p in prompts]


def test_eos_stops_only_the_row_that_produced_it(model):
    prompts = [[5], [1, 2, 3, 4, 5, 6, 7, 8, 9], [30, 31, 7, 7]]
    free = generate(model, prompts, 15, do_sample=False)
    eos = free[0][3]  # row 0's fourth greedy token becomes the EOS
    stopped = generate(model, prompts, 15, do_sample=False, eos_id=eos)
    for row_free, row_stopped in zip(free, stopped):
        cut = row_free.index(eos) + 1 if eos in row_free else len(row_free)
        assert row_stopped == row_free[:cut]
    assert len(stopped[0]) == free[0].index(eos) + 1


def test_zero_new_tokens_seeds_do_sample_false_and_cropping(model):
    assert generate(model, [[1, 2], [3]], 0) == [[], []]
    a = generate(model, [[1, 2, 3]], 12, method="top_k", top_k=5, generator=torch.Generator().manual_seed(3))
    b = generate(model, [[1, 2, 3]], 12, method="top_k", top_k=5, generator=torch.Generator().manual_seed(3))
    assert a == b
    greedy = generate(model, [[1, 2, 3]], 12, do_sample=False)
    assert generate(model, [[1, 2, 3]], 12, method="top_p", top_p=0.5, do_sample=False) == greedy
    long_prompt = list(range(1, 37)) * 2  # 72 tokens, context 48: keeps the last 48 - 10
    with pytest.warns(UserWarning, match="cropped"):
        cropped = generate(model, [long_prompt], 10, do_sample=False)
    assert cropped == generate(model, [long_prompt[-38:]], 10, do_sample=False)
    with pytest.raises(ValueError, match="context"):
        generate(model, [[1]], 48)


def test_every_method_is_covered():
    assert set(parameter_ladders()) | {"greedy", "temperature", "minpplus"} == set(METHODS)
