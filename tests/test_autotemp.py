"""--temperature auto: the head fitted at every temperature of a grid from one set of forward
passes, the temperature with the least CE on the fitting text kept, recorded and sampled at."""
import dataclasses
import json

import numpy as np
import pytest
import torch

import corpus
import sample
import train
import train_head
from head import MinPPlusHead
from model import ModelConfig, Transformer


def random_logits(n, V, seed=0, scale=3.0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, V, generator=generator) * scale, torch.randint(0, V, (n,), generator=generator)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_all_temperature_statistics_equal_one_pass_per_temperature(dtype):
    logits, targets = random_logits(300, 200)
    logits = logits.to(dtype)
    head = MinPPlusHead()
    temperatures = [0.7, 1.0, 1.3, 2.5]
    together = head.bucket_stats(logits, targets, chunk_size=64, temperatures=temperatures)
    assert len(together) == len(temperatures)
    for T, got in zip(temperatures, together):
        alone = head.bucket_stats(logits if T == 1 else logits.float() / T, targets)  # as sampling divides
        for a, b in zip(got, alone):
            assert torch.equal(a, b), T
    assert all(torch.equal(a, b) for a, b in zip(together[1], head.bucket_stats(logits, targets)))
    with pytest.raises(ValueError, match="temperatures=.* must be finite numbers > 0"):
        head.bucket_stats(logits, targets, temperatures=[1.0, 0.0])


def test_collect_stats_at_every_temperature_equal_a_run_per_temperature(syn_dir):
    meta = corpus.load_meta(syn_dir)
    tokens = corpus.open_split(syn_dir, "val", meta)
    torch.manual_seed(0)
    model = Transformer(ModelConfig(vocab_size=meta["vocab_size"], dim=32, n_layers=2, n_heads=4, n_kv_heads=2,
                                    max_seq_len=32)).eval().requires_grad_(False)
    head = MinPPlusHead()
    cfg = train.TrainConfig(batch_size=4, block_size=32)
    temperatures = [0.8, 1.0, 1.7]
    together = train_head.collect_stats(model, head, tokens, 600, cfg, "cpu", temperatures=temperatures)
    for T, got in zip(temperatures, together):
        alone = train_head.collect_stats(model, head, tokens, 600, dataclasses.replace(cfg, temperature=T), "cpu")
        assert all(torch.equal(a, b) for a, b in zip(got, alone)), T


class Bigram(torch.nn.Module):
    """A 'model' whose logits for the next token depend on the current one only: table[x] * T0."""

    def __init__(self, table, made_at):
        super().__init__()
        self.table, self.made_at = table, made_at

    def forward(self, x):
        return self.table[x] * self.made_at


def bigram_text(table, n, seed):
    """n tokens of the Markov chain whose next-token distribution is softmax(table[current])."""
    rng = np.random.default_rng(seed)
    p = torch.softmax(table.double(), -1).numpy()
    out = np.empty(n, dtype=np.int64)
    out[0] = 0
    for i in range(1, n):
        out[i] = rng.choice(len(p), p=p[out[i - 1]])
    return out


@pytest.mark.parametrize("made_at", [0.5, 2.0])
def test_auto_picks_the_temperature_the_logits_were_made_at(made_at):
    # logits = T0 * z with next tokens drawn from softmax(z): at T = T0 the model is the truth, and
    # no head at another temperature can beat it on text drawn from that truth
    V = 48
    table = torch.randn(V, V, generator=torch.Generator().manual_seed(1)) * 2.5
    tokens = bigram_text(table, 24_000, seed=2)
    cfg = train.TrainConfig(temperature="auto", head_t_grid="0.25,0.5,1,2,4", batch_size=16, block_size=32,
                            head_tokens=16_000, head_val_tokens=6_000)
    T, fit_stats, eval_stats, ce_t1, search = train_head.head_statistics(
        Bigram(table, made_at), MinPPlusHead(), tokens[:16_500], tokens[16_500:], cfg, {}, "cpu")
    assert [r["temperature"] for r in search] == [0.25, 0.5, 1.0, 2.0, 4.0]
    assert T == made_at
    assert min(search, key=lambda r: r["fit_ce"])["temperature"] == made_at
    assert min(search, key=lambda r: r["head_ce"])["temperature"] == made_at  # held out too
    assert ce_t1 == pytest.approx(next(r["base_ce"] for r in search if r["temperature"] == 1.0))
    assert torch.equal(fit_stats[1], train_head.collect_stats(
        Bigram(table, made_at), MinPPlusHead(), tokens[:16_500], 16_000,
        dataclasses.replace(cfg, temperature=made_at), "cpu")[1])


def head_run(out_dir, syn_dir, ckpt, *extra):
    return train.main(["--head", "minpplus", "--out_dir", str(out_dir), "--init_from", str(ckpt), "--device", "cpu",
                       "--head_tokens", "3000", "--head_val_tokens", "1500", "--batch_size", "8",
                       "--truth_windows", "4", "--head_epochs", "20", *extra])


def read_rows(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


@pytest.fixture(scope="module")
def lm(syn_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("lm")
    train.main(["--data_dir", syn_dir, "--out_dir", str(out), "--dim", "32", "--n_layers", "2", "--n_heads", "4",
                "--n_kv_heads", "2", "--max_seq_len", "32", "--batch_size", "8", "--max_steps", "30",
                "--eval_interval", "30", "--eval_batches", "2", "--truth_windows", "4", "--device", "cpu",
                "--lr", "1e-2", "--warmup_steps", "5"])
    return out / "ckpt.pt"


def test_auto_head_json_records_the_chosen_temperature_and_sampling_uses_it(tmp_path, syn_dir, lm, capsys):
    grid = "0.8,1.3,2"
    head_run(tmp_path / "auto", syn_dir, lm, "--temperature", "auto", "--head_t_grid", grid)
    record = json.loads((tmp_path / "auto" / "head.json").read_text())
    search = record["temperature_search"]
    assert [r["temperature"] for r in search] == [0.8, 1.0, 1.3, 2.0]  # 1 joins every grid
    chosen = min(search, key=lambda r: r["fit_ce"])["temperature"]
    assert record["temperature"] == chosen
    head, meta = MinPPlusHead.load_json(str(tmp_path / "auto" / "head.json"), vocab_size=record["vocab_size"])
    assert meta["temperature"] == chosen and torch.allclose(head.weights(), torch.tensor(record["weights"]))
    model = train_head.load_checkpoint(str(lm), "cpu")[0]
    assert sample.load_head(str(tmp_path / "auto" / "head.json"), model, None)[1] == chosen  # sampled at it
    assert sample.load_head(str(tmp_path / "auto" / "head.json"), model, 1.5)[1] == 1.5  # unless told
    rows = read_rows(tmp_path / "auto" / "head_metrics.jsonl")
    assert all(r["temperature"] == chosen for r in rows)
    # the kept head is the one a fixed --temperature run at the chosen T fits, and the search's rows
    # are what fixed runs at each temperature report
    for T in (chosen, 2.0):
        head_run(tmp_path / str(T), syn_dir, lm, "--temperature", str(T))
        fixed = read_rows(tmp_path / str(T) / "head_metrics.jsonl")[-1]
        row = next(r for r in search if r["temperature"] == T)
        assert row["head_ce"] == pytest.approx(fixed["head_ce"], rel=1e-5)
        assert row["base_ce"] == pytest.approx(fixed["base_ce"], rel=1e-6)
        assert fixed["temperature"] == T and fixed["ce_t1"] == pytest.approx(rows[-1]["ce_t1"], rel=1e-6)
    fixed_record = json.loads((tmp_path / str(chosen) / "head.json").read_text())
    assert np.allclose(fixed_record["weights"], record["weights"], rtol=1e-5, atol=1e-7)
    assert "temperature_search" not in fixed_record
    # ce_t1 is the plain LM at T = 1 on the same held-out positions: a T = 1 run's base CE
    head_run(tmp_path / "one", syn_dir, lm, "--temperature", "1")
    assert read_rows(tmp_path / "one" / "head_metrics.jsonl")[-1]["base_ce"] == pytest.approx(rows[-1]["ce_t1"])


def test_auto_flags_are_checked_before_any_work(tmp_path, syn_dir, lm, capsys):
    for flags, message in ((["--head_t_grid", "1,2"], "--head_t_grid only applies to --temperature auto"),
                           (["--temperature", "auto", "--head_t_grid", "1,x"], "write temperatures separated by"),
                           (["--temperature", "auto", "--head_t_grid", "0,1"], "--head_t_grid holds 0")):
        with pytest.raises(SystemExit, match=message):
            head_run(tmp_path, syn_dir, lm, *flags)
        assert not (tmp_path / "head_ckpt.pt").exists()
    with pytest.raises(SystemExit):
        head_run(tmp_path, syn_dir, lm, "--temperature", "hot")
    assert "--temperature: 'hot' is neither a number nor auto" in capsys.readouterr().err
