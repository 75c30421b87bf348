"""The real-text verdict (textreport.py): its metrics, its sums and MinP+ auto's choice on known answers."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import evaluate
import metrics
import textreport
from head import MinPPlusHead
from sample import filter_logits


def test_position_metrics_on_a_hand_made_distribution():
    q = torch.tensor([[0.5, 0.3, 0.2, 0.0]]).log().expand(2, 4)
    out = textreport.position_metrics(q, torch.tensor([0, 3]))
    entropy = -(0.5 * math.log(0.5) + 0.3 * math.log(0.3) + 0.2 * math.log(0.2))
    assert out["ce"][0].item() == pytest.approx(-math.log(0.5)) and math.isinf(out["ce"][1].item())
    assert out["lost"].tolist() == [0.0, 1.0]  # the real next token 3 was removed
    assert out["entropy"].tolist() == pytest.approx([entropy, entropy])
    sums = metrics.window_sums({k: v[None] for k, v in out.items()})
    means = metrics.means(sums.sum(0))
    assert means["lost"] == 0.5 and means["ce_inf_share"] == 0.5 and math.isinf(means["ce_all"])


class Fixed(torch.nn.Module):
    """A 'model' with one logit table per position of the window, whatever the tokens."""

    def __init__(self, table):
        super().__init__()
        self.table = torch.nn.Parameter(table, requires_grad=False)

    def forward(self, x):
        return self.table[None, :x.size(1)].expand(x.size(0), -1, -1)


def test_report_sums_equal_direct_cross_entropy_and_removed_counts():
    generator = torch.Generator().manual_seed(0)
    L, V = 12, 30
    model = Fixed(torch.randn(L, V, generator=generator) * 2)
    windows = torch.randint(0, V, (10, L + 1), generator=generator).numpy()
    grid = [dict(method="temperature", temperature=T, param=None) for T in (1.0, 1.5)]
    grid.append(dict(method="min_p", temperature=1.0, param=0.1))
    sums = textreport.report_sums(model, windows, grid, lambda s: evaluate.sampler_params(s, {}), batch_size=3)
    means = metrics.means(sums.sum(1))
    y = torch.from_numpy(windows[:, 1:])
    logits = model.table.expand(10, L, V)
    for i, T in enumerate((1.0, 1.5)):
        assert means["ce_all"][i] == pytest.approx(F.cross_entropy((logits / T).reshape(-1, V), y.reshape(-1)).item())
        assert means["lost"][i] == 0
    p = logits.softmax(-1)
    removed = p.gather(-1, y[..., None])[..., 0] < 0.1 * p.amax(-1)
    assert means["lost"][2] == pytest.approx(removed.double().mean().item())
    assert np.isinf(means["ce_all"][2]) == bool(removed.any())
    # per window: a bootstrap over windows re-weights exactly these sums
    q = filter_logits(logits.reshape(-1, V), "min_p", min_p=0.1).view(10, L, V)
    assert np.allclose(sums[2], metrics.window_sums(textreport.position_metrics(q, y)))


@pytest.mark.parametrize("made_at", [0.5, 2.0])
def test_minpplus_auto_picks_the_temperature_the_logits_were_made_at(made_at):
    generator = torch.Generator().manual_seed(3)
    z = torch.randn(12_000, 40, generator=generator) * 2.5
    y = torch.multinomial(z.softmax(-1), 1, generator=generator)[:, 0]  # the truth is softmax(z)
    temperatures = [0.25, 0.5, 1.0, 2.0, 4.0]
    stats = MinPPlusHead().bucket_stats(z * made_at, y, temperatures=temperatures)
    heads, chosen, rows = textreport.heads_and_choice(stats, temperatures, epochs=60)
    assert chosen == made_at and sorted(heads) == temperatures
    assert [r["temperature"] for r in rows] == temperatures
    best = min(rows, key=lambda r: r["fit_ce_plain"])  # plain p_T too is best at the truth's temperature
    assert best["temperature"] == made_at
    assert all(r["fit_ce_head"] <= r["fit_ce_plain"] + 1e-4 for r in rows)  # a head never does worse on its own text


def test_continuation_nll_is_the_plain_model_s_and_skips_what_follows_eos():
    generator = torch.Generator().manual_seed(1)
    model = Fixed(torch.randn(8, 5, generator=generator))
    prompts = np.array([[1, 2, 3]])
    new = np.array([[4, 0, -1]])  # one token after the prompt, another, then an ended row's -1
    log_p = model.table.log_softmax(-1)
    expected = -(log_p[2, 4] + log_p[3, 0]).item() / 2  # position 2 predicts the first new token
    assert textreport.continuation_nll(model, prompts, new) == pytest.approx(expected)
