"""The specification of sample.py: what each sampling method keeps, and how generate decodes."""
import copy
import dataclasses
import math
import os

import pytest
import torch
import torch.nn.functional as F

import corpus
import data
import sample
from head import MinPPlusHead
from model import ModelConfig, Transformer, fingerprint
from sample import METHODS, filter_logits, generate


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # these tensors are tiny: extra OpenMP threads only wait at barriers, and on a shared 2-core
    # machine with a busy neighbour that made this file 15x slower
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def logits_of(probs):
    return torch.tensor([probs]).log()


def kept(logits):
    return torch.isfinite(logits).sum().item()


def test_top_p_keeps_the_smallest_prefix_reaching_p():
    assert kept(filter_logits(logits_of([0.4, 0.35, 0.25]), "top_p", top_p=0.7)) == 2
    assert kept(filter_logits(logits_of([0.5, 0.3, 0.1, 0.1]), "top_p", top_p=0.8)) == 2  # mass exactly p
    assert kept(filter_logits(logits_of([0.5, 0.3, 0.1, 0.2]), "top_p", top_p=0.81)) == 3
    assert kept(filter_logits(logits_of([0.5, 0.3, 0.1, 0.1]), "top_p", top_p=0.81)) == 4  # ties go together
    assert kept(filter_logits(logits_of([0.5, 0.3, 0.1, 0.1]), "top_p", top_p=1.0)) == 4
    # prefixes whose mass is exactly p, which fp32 logits turn into a hair below p even summed in float64
    assert kept(filter_logits(logits_of([0.3, 0.3, 0.25, 0.15]), "top_p", top_p=0.6)) == 2
    assert kept(filter_logits(logits_of([0.3, 0.2, 0.2, 0.15, 0.15]), "top_p", top_p=0.7)) == 3
    assert kept(filter_logits(logits_of([0.5, 0.4, 0.1]), "top_p", top_p=0.5)) == 1
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


def test_p_of_one_and_zero_cutoffs_keep_every_token():
    # a long tail of total mass < 1e-6 must survive: top_p = 1 means no truncation
    z = torch.randn(3, 6400, generator=torch.Generator().manual_seed(0)) * 4
    for method, params in (("top_p", dict(top_p=1.0)), ("typical", dict(typical_p=1.0)), ("min_p", dict(min_p=0.0)),
                           ("epsilon", dict(epsilon_cutoff=0.0)), ("eta", dict(eta_cutoff=0.0)),
                           ("top_k", dict(top_k=6400)), ("temperature", {})):
        assert torch.equal(filter_logits(z, method, **params), z), method


def test_the_tiniest_p_keeps_one_token_and_the_tiniest_temperature_is_greedy():
    z = torch.tensor([[2.0, 1.0, 0.5, 0.0], [-50.0, -49.0, -52.0, -60.0]])
    for method, params in (("top_p", dict(top_p=1e-9)), ("typical", dict(typical_p=1e-9))):
        assert torch.isfinite(filter_logits(z, method, **params)).sum(-1).tolist() == [1, 1], method
    assert torch.isfinite(filter_logits(z, "top_p", top_p=1e-9))[:, :2].tolist() == [[True, False], [False, True]]
    z = torch.tensor([[5.0, 1.0, 0.5, 0.0], [-50.0, -49.0, -52.0, -60.0]])
    assert torch.isnan(F.softmax(z / 1e-38, -1)).all()  # 5e38 is +inf in fp32; the other row is all -inf
    for last in (False, True):  # such rows get their greedy limit
        out = filter_logits(z, "min_p", min_p=0.5, temperature=1e-38, temperature_last=last)
        assert torch.isfinite(out).tolist() == [[True, False, False, False], [False, True, False, False]]
    model = Transformer(ModelConfig(vocab_size=50, dim=32, n_layers=1, n_heads=4, n_kv_heads=2, max_seq_len=24))
    with torch.no_grad():
        model.norm.weight.mul_(1000)  # logits of hundreds: z / 1e-38 overflows on every step
    assert generate(model.eval(), [[3, 14, 15]], 10, temperature=1e-38) == generate(model, [[3, 14, 15]], 10,
                                                                                    method="greedy")


def test_minpplus_calls_the_head_on_the_tempered_logits():
    torch.manual_seed(1)
    z = torch.randn(3, 100) * 2
    weights = torch.rand(32) * (torch.rand(32) > 0.5)  # some thresholds switched off
    weights[5] = 1.0
    head = MinPPlusHead.from_weights(MinPPlusHead().tau, weights)
    assert torch.equal(filter_logits(z, "minpplus", head=head, temperature=0.7), head(z / 0.7))
    assert torch.equal(filter_logits(z, "minpplus", head=head, temperature=0.7, temperature_last=True), head(z) / 0.7)


def test_head_strength_zero_is_plain_sampling_one_the_head_and_more_a_power_of_c():
    torch.manual_seed(3)
    z = torch.randn(4, 200) * 3
    weights = torch.rand(32) * (torch.rand(32) > 0.5)
    weights[0], weights[9] = 0.0, 1.0  # c = 0 below tau_9: those tokens are removed at every strength > 0
    head = MinPPlusHead.from_weights(MinPPlusHead().tau, weights)
    plain = filter_logits(z, "temperature", temperature=1.5)
    at_zero = filter_logits(z, "minpplus", head=head, head_strength=0.0, temperature=1.5)
    assert torch.equal(at_zero, plain)  # 0 * log 0 would be NaN: the identity instead
    assert torch.equal(filter_logits(z, "minpplus", head=head, temperature=1.5),
                       filter_logits(z, "minpplus", head=head, head_strength=1.0, temperature=1.5))
    q2 = F.softmax(filter_logits(z, "minpplus", head=head, head_strength=2.0), -1)
    c = head.cumulative_weights()[head.buckets(z)]
    assert torch.allclose(q2, F.softmax(z, -1) * c**2 / (F.softmax(z, -1) * c**2).sum(-1, keepdim=True), atol=1e-6)


def test_a_one_hot_head_is_min_p_at_every_positive_strength():
    z = torch.randn(5, 300, generator=torch.Generator().manual_seed(4)) * 3
    weights = torch.zeros(32)
    weights[12] = 1.0
    head = MinPPlusHead.from_weights(MinPPlusHead().tau, weights)
    min_p = F.softmax(filter_logits(z, "min_p", min_p=head.tau[12].item()), -1)
    for strength in (0.3, 1.0, 4.0):  # c is 0 or 1: any power of it keeps the same tokens, unscaled
        assert torch.allclose(F.softmax(filter_logits(z, "minpplus", head=head, head_strength=strength), -1), min_p,
                              atol=1e-6)


@pytest.mark.parametrize("strength", [-0.5, math.nan, math.inf, "1", True])
def test_a_bad_head_strength_raises_a_clear_error(strength):
    with pytest.raises(ValueError, match="head_strength"):
        filter_logits(torch.zeros(1, 5), "minpplus", head=MinPPlusHead(), head_strength=strength)


def test_greedy_temperature_and_a_random_head_give_valid_distributions():
    generator = torch.Generator().manual_seed(2)
    tau = MinPPlusHead().tau
    for trial in range(20):
        z = torch.randn(4, 300, generator=generator) * (0.5 + trial / 4)
        weights = torch.rand(len(tau), generator=generator) * (torch.rand(len(tau), generator=generator) > 0.5)
        head = MinPPlusHead.from_weights(tau, weights + (weights.sum() == 0))  # never all zero
        for method, params in (("greedy", {}), ("temperature", dict(temperature=0.3 + trial / 10)),
                               ("minpplus", dict(head=head)), ("minpplus", dict(head=head, temperature=2.0))):
            probs = F.softmax(filter_logits(z, method, **params), -1)
            assert torch.isfinite(probs).all() and torch.allclose(probs.sum(-1), torch.ones(4))
            assert (probs.gather(-1, z.argmax(-1, keepdim=True)) > 0).all()  # the top token is always possible
        assert (F.softmax(filter_logits(z, "greedy"), -1).max(-1).values == 1).all()


def parameter_ladders():
    """Each method's parameter from loose to tight."""
    tau = MinPPlusHead().tau
    one_hot = [F.one_hot(torch.tensor(j), len(tau)).float() for j in (0, 8, 16, 24, 31)]
    one_hot_heads = [MinPPlusHead.from_weights(tau, w) for w in one_hot]
    return {
        "minpplus": ("head", one_hot_heads),  # all weight on a higher threshold: a tighter min-p
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


def test_tied_tokens_are_kept_or_dropped_together_whatever_their_ids():
    probs = [0.1, 0.2, 0.2, 0.2, 0.3]  # three tokens tied at 0.2; the vocabulary order must not matter
    for flipped in (False, True):
        logits = logits_of(probs[::-1] if flipped else probs)
        assert kept(filter_logits(logits, "top_p", top_p=0.4)) == 4  # 0.3 + one 0.2 reach p: its ties stay
        assert kept(filter_logits(logits, "top_k", top_k=2)) == 4
    # typical: the tied tokens share one typicality score, so they stay together too
    out = filter_logits(logits_of([0.25, 0.25, 0.25, 0.25]), "typical", typical_p=0.3)
    assert kept(out) == 4


def test_eta_and_epsilon_compare_the_same_probabilities_at_the_cut():
    torch.manual_seed(0)
    logits = torch.randn(200, 50) * 4  # peaked rows: exp(-H) is large, so eta's cut is eta itself
    probs = F.softmax(logits, dim=-1)
    checked = 0
    for row in range(len(logits)):
        log_p = F.log_softmax(logits[row].double(), -1)
        p = probs[row].sort(descending=True).values[3].item()  # a cut exactly at a token's probability
        if math.sqrt(p) * math.exp((log_p.exp() * log_p).sum().item()) <= p:
            continue  # entropy too high: eta's cut is not eta here
        eta = torch.isfinite(filter_logits(logits[row:row + 1], "eta", eta_cutoff=p))
        epsilon = torch.isfinite(filter_logits(logits[row:row + 1], "epsilon", epsilon_cutoff=p))
        assert torch.equal(eta, epsilon) and eta.sum() >= 4
        checked += 1
    assert checked > 50


def test_parameters_of_any_real_type_and_bad_types():
    from fractions import Fraction

    logits = logits_of([0.5, 0.3, 0.2])
    for method, params in (("top_p", dict(top_p=Fraction(1, 2))), ("epsilon", dict(epsilon_cutoff=Fraction(1, 4))),
                           ("eta", dict(eta_cutoff=Fraction(1, 4))), ("top_nsigma", dict(n_sigma=Fraction(1))),
                           ("min_p", dict(min_p=Fraction(1, 2)))):
        assert 1 <= kept(filter_logits(logits, method, **params)) <= 3
    half = filter_logits(logits, "top_p", top_p=0.9, temperature=Fraction(1, 2))
    assert torch.equal(half, filter_logits(logits, "top_p", top_p=0.9, temperature=0.5))
    strength = filter_logits(logits, "minpplus", head=MinPPlusHead(), head_strength=Fraction(3, 2))
    assert torch.equal(strength, filter_logits(logits, "minpplus", head=MinPPlusHead(), head_strength=1.5))
    with pytest.raises(ValueError, match="unknown method \\['top_p'\\]"):
        filter_logits(logits, ["top_p"], top_p=0.9)
    with pytest.raises(ValueError, match="temperature_last='yes' must be True or False"):
        filter_logits(logits, "top_p", top_p=0.9, temperature_last="yes")


@pytest.mark.parametrize("method, params, message", [
    ("top_p", dict(top_p=0.0), "top_p"), ("top_p", dict(top_p=1.5), "top_p"), ("top_p", dict(top_p="0.9"), "top_p"),
    ("top_k", dict(top_k=-1), "top_k"), ("top_k", dict(top_k=0), "top_k"), ("top_k", dict(top_k=2.5), "top_k"),
    ("min_p", dict(min_p=1.5), "min_p"), ("min_p", dict(min_p=-0.1), "min_p"),
    ("typical", dict(typical_p=0.0), "typical_p"), ("epsilon", dict(epsilon_cutoff=1.0), "epsilon_cutoff"),
    ("eta", dict(eta_cutoff=-0.1), "eta_cutoff"), ("top_nsigma", dict(n_sigma=-1.0), "n_sigma"),
    ("top_p", dict(top_p=math.nan), "top_p"),
    ("temperature", dict(temperature=-1.0), "temperature"), ("temperature", dict(temperature=math.nan), "temperature"),
    ("temperature", dict(temperature=math.inf), "temperature"), ("nucleus", {}, "unknown method.*top_p"),
    ("minpplus", {}, "needs head"), ("minpplus", dict(head="out/head.json"), "MinPPlusHead"),
    ("top_p", {}, "needs top_p"),
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
    model = Transformer(cfg).eval()
    with torch.no_grad():  # larger weights than the init: greedy text varies instead of repeating one token,
        for p in model.parameters():  # so a wrong position or mask changes the output
            if p.dim() == 2:
                p.normal_(0.0, 0.3)
    return model


def generate_by_full_forward(model, prompt, max_new_tokens, generator, **params):
    """The reference: re-run the whole sequence for every new token, no cache."""
    seq = list(prompt)
    for _ in range(max_new_tokens):
        with torch.no_grad():
            logits = model(torch.tensor([seq]))[:, -1]
        seq.append(sample.draw(filter_logits(logits, **params), generator).item())
    return seq[len(prompt):]


def test_draw_samples_the_softmax_and_never_a_removed_token():
    probs = torch.tensor([0.5, 0.25, 0.15, 0.1, 0.0])
    logits = probs.log().expand(40_000, 5)  # log 0 = -inf: a removed token
    counts = torch.bincount(sample.draw(logits, torch.Generator().manual_seed(0)), minlength=5)
    assert counts[4] == 0
    expected = probs[:4] * 40_000
    chi2 = ((counts[:4] - expected) ** 2 / expected).sum()
    assert chi2 < 16.3  # the 99.9% point of chi-square with 3 degrees of freedom
    one_left = torch.full((3, 7), float("-inf"))
    one_left[torch.arange(3), torch.tensor([6, 0, 3])] = 2.0
    assert sample.draw(one_left).tolist() == [6, 0, 3]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("params", [dict(do_sample=False), dict(method="top_p", top_p=0.9),
                                    dict(method="minpplus", temperature=0.9)])
def test_cuda_graph_generation_equals_eager_generation_on_cuda(model, params):
    gpu = copy.deepcopy(model).cuda()
    if params.get("method") == "minpplus":
        params = {**params, "head": MinPPlusHead.from_weights([0.0, 0.01, 0.1], [0.2, 0.5, 0.3]).cuda()}
    prompts = [[5], [1, 2, 3, 4, 5, 6, 7, 8, 9], [30, 31, 7, 7]]

    def run(cuda_graph):
        return generate(gpu, prompts, 30, eos_id=4, cuda_graph=cuda_graph,
                        generator=torch.Generator("cuda").manual_seed(11), **params)

    graphed = run(True)
    assert graphed == run(False)
    assert graphed == run(True)  # and a second capture replays the same


@pytest.mark.parametrize("params", [dict(method="greedy"), dict(method="top_p", top_p=0.9),
                                    dict(method="min_p", min_p=0.05, temperature=0.8)])
def test_kv_cache_generation_equals_full_re_forward(model, params):
    prompt = [3, 14, 15, 9, 2, 6]
    ours = generate(model, [prompt], 20, generator=torch.Generator().manual_seed(7), **params)[0]
    reference = generate_by_full_forward(model, prompt, 20, torch.Generator().manual_seed(7), **params)
    assert ours == reference


def test_batched_greedy_generation_of_ragged_prompts_equals_one_by_one(model):
    prompts = [[5], [1, 2, 3, 4, 5, 6, 7, 8, 9], [30, 31, 7, 7], [20, 21]]
    batched = generate(model, prompts, 15, do_sample=False)
    assert batched == [generate(model, [p], 15, do_sample=False)[0] for p in prompts]


def test_eos_stops_only_the_row_that_produced_it(model):
    prompts = [[3], [1, 2, 3, 4, 5, 6, 7, 8, 9], [20, 21]]
    free = generate(model, prompts, 15, do_sample=False)
    eos = next(t for t in free[0] if t not in free[1] + free[2])  # a token only row 0 produces
    stopped = generate(model, prompts, 15, do_sample=False, eos_id=eos)
    assert stopped[0] == free[0][:free[0].index(eos) + 1] and len(stopped[0]) < 15  # ends with its EOS
    assert stopped[1:] == free[1:]  # the other rows go on, unchanged


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


def test_seeds_tensor_prompts_and_parameter_names(model):
    def sampled(seed):
        return generate(model, [[1, 2, 3]] * 2, 12, method="min_p", min_p=0.01,
                        generator=torch.Generator().manual_seed(seed))

    assert sampled(4) == sampled(4) and sampled(4) != sampled(5)
    assert sampled(4)[0] != sampled(4)[1]  # rows of one batch draw their own tokens
    assert generate(model, torch.tensor([[1, 2, 3], [4, 5, 6]]), 6, do_sample=False) == \
        generate(model, [[1, 2, 3], [4, 5, 6]], 6, do_sample=False)
    with pytest.raises(ValueError, match="unknown sampling parameter.*topp"):
        generate(model, [[1]], 4, method="top_p", topp=0.9)  # a typo is never silently ignored
    with pytest.raises(ValueError, match="unknown sampling parameter"):
        generate(model, [[1]], 4, do_sample=False, topp=0.9)
    assert len(generate(model, [[1]], 4, method="top_p", do_sample=False)[0]) == 4  # argmax needs no top_p
    with pytest.raises(ValueError, match="needs top_p"):
        generate(model, [[1]], 4, method="top_p")
    with pytest.raises(ValueError, match="at least one token"):
        generate(model, [[1], []], 4)


def test_eos_ends_the_loop_once_every_row_has_ended(model, monkeypatch):
    prompts = [[3], [12]]
    free = generate(model, prompts, 40, do_sample=False)
    eos = free[0][5]
    assert eos in free[1]  # both rows end
    calls = []
    forward = Transformer.forward
    monkeypatch.setattr(Transformer, "forward", lambda self, *a, **k: calls.append(1) or forward(self, *a, **k))
    stopped = generate(model, prompts, 40, do_sample=False, eos_id=eos)
    last_end = max(row.index(eos) + 1 for row in free)
    assert [len(row) for row in stopped] == [row.index(eos) + 1 for row in free]
    assert last_end + sample.EOS_CHECK_EVERY < 40
    assert len(calls) <= last_end + sample.EOS_CHECK_EVERY  # the prefill plus at most a few steps past the end


# ----------------------------------------------------------------------------
# command line


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A tiny untrained model on the synthetic language, saved as train.py saves it."""
    root = tmp_path_factory.mktemp("run")
    data.prepare_synthetic(str(root / "data"), train_tokens=2000, val_tokens=500)
    meta = corpus.load_meta(str(root / "data"))
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=meta["vocab_size"], dim=32, n_layers=2, n_heads=4, n_kv_heads=2, max_seq_len=32)
    model = Transformer(cfg)
    torch.save({"model": model.state_dict(), "model_config": dataclasses.asdict(cfg),
                "train_config": {"data_dir": str(root / "data")}}, root / "ckpt.pt")
    MinPPlusHead().save_json(str(root / "head.json"), temperature=0.8, vocab_size=cfg.vocab_size,
                             checkpoint=fingerprint(model))
    return root


def cli(run_dir, *flags):
    return sample.main(["--ckpt", str(run_dir / "ckpt.pt"), "--device", "cpu", "--max_new_tokens", "6", *flags])


def test_cli_prints_the_samples_and_the_speed(run_dir, capsys):
    cli(run_dir, "--method", "top_p", "--top_p", "0.9", "--num_samples", "2", "--prompt", "the old king")
    printed = capsys.readouterr().out
    assert printed.count("--- sample") == 2 and printed.count("\nthe old king") == 2
    assert "tokens/s (cpu, top_p)" in printed
    for flags in (("--seed", "1"), ("--seed", "1"), ("--seed", "2", "--greedy"), ("--seed", "3", "--no-do_sample")):
        cli(run_dir, "--method", "min_p", "--min_p", "0.01", *flags)
    a, b, greedy, greedy_again = [run.split("--- ")[1:-1] for run in capsys.readouterr().out.split("tokens/s")[:-1]]
    assert a == b and greedy == greedy_again  # same seed, same text; argmax whatever the seed


def test_cli_samples_the_head_at_its_training_temperature(run_dir, capsys, monkeypatch):
    used = []
    monkeypatch.setattr(sample, "generate", lambda *a, **k: used.append(k) or [[1]])
    cli(run_dir, "--method", "minpplus")  # finds head.json beside the checkpoint
    assert used[-1]["temperature"] == 0.8 and isinstance(used[-1]["head"], MinPPlusHead)
    assert used[-1]["head_strength"] == 1.0
    cli(run_dir, "--method", "minpplus", "--head_strength", "0.5")
    assert used[-1]["head_strength"] == 0.5
    with pytest.warns(UserWarning, match="trained at temperature 0.8"):
        cli(run_dir, "--method", "minpplus", "--temperature", "1.0")
    assert used[-1]["temperature"] == 1.0


@pytest.mark.parametrize("flags, message", [
    (("--method", "top_p"), "needs top_p"),
    (("--method", "top_p", "--top_p", "1.5"), "top_p=1.5 must be in"),
    (("--method", "minpplus", "--head_strength", "-1"), "head_strength=-1.0 must be a finite number >= 0"),
    (("--method", "minpplus", "--no-do_sample", "--head_strength", "-1"), "head_strength=-1.0 must be a finite"),
    (("--temperature", "-1"), "temperature"),
    (("--max_new_tokens", "32"), "context 32"),
    (("--num_samples", "0"), "num_samples"),
    (("--method", "minpplus", "--head", "nowhere.json"), "no MinP\\+ head at nowhere.json"),
    (("--top_p", "0.9"), "--top_p belongs to --method top_p, not --method temperature: add --method top_p"),
    (("--method", "min_p", "--min_p", "0.1", "--top_k", "5"), "--top_k belongs to --method top_k"),
    (("--head_strength", "2"), "--head_strength belongs to --method minpplus"),
])
def test_cli_errors_are_one_line(run_dir, flags, message):
    with pytest.raises(SystemExit, match=message) as error:
        cli(run_dir, *flags)
    assert "\n" not in str(error.value) and str(error.value).startswith("error: ")


@pytest.mark.skipif(torch.cuda.is_available(), reason="the message for a machine without a GPU")
def test_cli_asked_for_cuda_without_a_gpu_says_so(run_dir):
    with pytest.raises(SystemExit, match="no GPU is visible: use --device cpu"):
        cli(run_dir, "--device", "cuda")


def test_cli_bad_checkpoints_devices_prompts_and_data_dirs_are_one_line_errors(run_dir, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a checkpoint\n")
    ckpt = torch.load(run_dir / "ckpt.pt", weights_only=False)
    torch.save({"head": {}, "epoch": 3}, tmp_path / "head_ckpt.pt")
    torch.save({**ckpt, "model_config": {**ckpt["model_config"], "n_layers": 1}}, tmp_path / "edited.pt")
    torch.save({**ckpt, "train_config": {"data_dir": "moved/away"}}, tmp_path / "moved.pt")
    for ckpt_path, flags, message in (
            (tmp_path, (), "cannot read .* as a checkpoint"), (text, (), "cannot read .* as a checkpoint"),
            (tmp_path / "head_ckpt.pt", (), "not a language-model checkpoint"),
            (tmp_path / "edited.pt", (), "weights do not fit its own model_config"),
            (tmp_path / "moved.pt", (), "trained on data in 'moved/away', which is not here.*pass --data_dir"),
            (run_dir / "ckpt.pt", ("--device", "tpu9"), "unknown --device 'tpu9'"),
            (run_dir / "ckpt.pt", ("--prompt", "the Purple king zzq"), r"lacks \(Purple, zzq\)")):
        with pytest.raises(SystemExit, match=message) as error:
            sample.main(["--ckpt", str(ckpt_path), "--device", "cpu", "--max_new_tokens", "2", *flags])
        assert "\n" not in str(error.value) and str(error.value).startswith("error: ")


def test_cli_keeps_the_space_a_bpe_continuation_starts_with(tmp_path, capsys, monkeypatch):
    (tmp_path / "in.txt").write_text("I will not believe you, I will not go.\n" * 200)
    data.prepare_text(str(tmp_path / "in.txt"), str(tmp_path / "data"), vocab_size=300)
    tokenizer = corpus.load_tokenizer(str(tmp_path / "data"))
    cfg = ModelConfig(vocab_size=tokenizer.get_vocab_size(), dim=32, n_layers=1, n_heads=4, n_kv_heads=2,
                      max_seq_len=32)
    torch.save({"model": Transformer(cfg).state_dict(), "model_config": dataclasses.asdict(cfg),
                "train_config": {"data_dir": str(tmp_path / "data")}}, tmp_path / "ckpt.pt")
    continuation = tokenizer.encode(" not believe you.\n").ids
    monkeypatch.setattr(sample, "generate", lambda *a, **k: [continuation])
    sample.main(["--ckpt", str(tmp_path / "ckpt.pt"), "--device", "cpu", "--prompt", "I will", "--num_samples", "1"])
    assert "\nI will not believe you.\n" in capsys.readouterr().out


def test_cli_without_a_checkpoint_says_what_to_do(tmp_path):
    with pytest.raises(SystemExit, match="no checkpoint at .*run `python train.py` first"):
        sample.main(["--ckpt", str(tmp_path / "ckpt.pt"), "--device", "cpu"])


def test_every_method_is_covered():
    assert set(parameter_ladders()) | {"greedy", "temperature", "minpplus"} == set(METHODS)


class RunsCode:
    """Unpickling this calls os.system: what a crafted checkpoint would do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_checkpoint_that_pickles_code_is_refused_and_nothing_runs(run_dir, tmp_path):
    marker = tmp_path / "ran"
    ckpt = torch.load(run_dir / "ckpt.pt", weights_only=True)
    torch.save({**ckpt, "payload": RunsCode(marker)}, tmp_path / "evil.pt")
    with pytest.raises(SystemExit, match="could run code when loaded; refusing it") as error:
        sample.main(["--ckpt", str(tmp_path / "evil.pt"), "--device", "cpu", "--max_new_tokens", "2"])
    assert "\n" not in str(error.value) and not marker.exists()
