"""Gate training on the tiny Qwen3: losses, deterministic batches, only the gates move, the forget
objective falls, a killed run resumes to the same gates, a changed config never resumes."""

from __future__ import annotations

import math

import pytest
import torch

from thinkmid.config import KnowledgeGatesParams
from thinkmid.errors import InputError
from thinkmid.gates.gating import GateSet
from thinkmid.gates.train import distill_kl, entity_ce, forget_loss, step_indices, steps_per_epoch, train_gates

PAD = 151643


def _data(n_facts=6, n_retain=5):
    g = torch.Generator().manual_seed(0)
    facts = []
    for i in range(n_facts):
        ids = torch.randint(0, 5000, (6 + i % 3,), generator=g).tolist()
        facts.append({"ids": ids, "entity_mask": [0] * (len(ids) - 2) + [1, 1]})
    retain = [torch.randint(0, 5000, (8 + i,), generator=g).tolist() for i in range(n_retain)]
    return facts, retain


def test_each_epoch_sees_every_fact_once_and_retain_rows_cycle():
    n, fb, rpf = 7, 3, 2
    per = steps_per_epoch(n, fb)
    seen, retain = [], []
    for step in range(per):
        f, r = step_indices(step, n, 5, fb, rpf, seed=1)
        seen += f
        retain += r
        assert len(r) == rpf * len(f)
    assert sorted(seen) == list(range(n))
    assert sorted(retain[:5]) == list(range(5)) and sorted(retain[5:10]) == list(range(5))
    assert step_indices(2, n, 5, fb, rpf, seed=1) == step_indices(2, n, 5, fb, rpf, seed=1)
    assert step_indices(per, n, 5, fb, rpf, seed=1)[0] != seen[:fb] or n <= fb  # a new order next epoch


def test_losses():
    logits = torch.randn(2, 4, 11)
    ids = torch.randint(0, 11, (2, 4))
    mask = torch.tensor([[0, 0, 1, 1], [0, 1, 0, 0]])
    ce = entity_ce(logits, ids, mask)
    logp = torch.log_softmax(logits, -1)
    want0 = -(logp[0, 1, ids[0, 2]] + logp[0, 2, ids[0, 3]]) / 2
    torch.testing.assert_close(ce[0], want0)
    torch.testing.assert_close(ce[1], -logp[1, 0, ids[1, 1]])
    assert float(forget_loss(torch.tensor([100.0]), 4.0)) < 1e-6  # past beta: nothing left to push
    assert float(forget_loss(torch.tensor([0.0]), 4.0)) == pytest.approx(math.log1p(math.exp(4.0)))
    ones = torch.ones(2, 4)
    assert float(distill_kl(logits, logits, ones, 2.0)) == pytest.approx(0.0, abs=1e-6)
    other = logits + torch.randn(2, 4, 11)
    kl = float(distill_kl(other, logits, ones, 2.0))
    t, s = torch.log_softmax(logits / 2, -1), torch.log_softmax(other / 2, -1)
    assert kl == pytest.approx(float((t.exp() * (t - s)).sum(-1).mean() * 4), rel=1e-5)


CFG = dict(forget_batch_size=2, retain_per_forget=2, epochs=2, checkpoint_every=2, lr=0.05)


def _train(model, tmp_path, cfg, stop_at=None, name="ck", init_std=0.1):
    facts, retain = _data()
    gates = GateSet.for_model(model, init_std=init_std, seed=4).attach(model)

    def on_step(m):
        if stop_at is not None and m["step"] == stop_at:
            raise KeyboardInterrupt  # a kill mid-run, after the checkpoint of step `stop_at`

    hist = train_gates(model, gates, facts, retain, cfg, 0, PAD, str(tmp_path / name), "base", on_step)
    return gates, hist


def test_only_the_gates_train_and_the_forget_objective_falls(tmp_path, tiny_model):
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    cfg = KnowledgeGatesParams(**{**CFG, "epochs": 6, "lambda_r": 0.0})
    gates, hist = _train(tiny_model, tmp_path, cfg)
    assert len(hist) == 6 * 3
    for k, v in tiny_model.state_dict().items():
        assert torch.equal(v, before[k]), k
    first, last = hist[0], hist[-1]
    assert last["forget_loss"] < first["forget_loss"] and last["entity_ce"] > first["entity_ce"]
    assert gates.logits.detach().std() > 0.1  # moved beyond the init


def _retain_kl(model, gates, rows):
    from thinkmid.gates.train import pad

    b = pad(rows, PAD)
    with torch.no_grad():
        with gates.ungated():
            teacher = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
        student = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
    return float(distill_kl(student, teacher, b["attention_mask"], 2.0))


def test_retain_term_pulls_the_gated_model_back_to_the_ungated_one(tmp_path, tiny_model):
    for layer in tiny_model.model.layers:  # a random tiny model barely uses its MLPs: make them matter
        layer.mlp.down_proj.weight.data *= 30
    facts, retain = _data()
    gates = GateSet.for_model(tiny_model, init_std=2.0, seed=4).attach(tiny_model)
    before = _retain_kl(tiny_model, gates, retain)
    cfg = KnowledgeGatesParams(**{**CFG, "epochs": 8, "lr": 0.2, "lambda_f": 0.0, "unmasked_retain_weight": 0.5})
    hist = train_gates(tiny_model, gates, facts, retain, cfg, 0, PAD, str(tmp_path / "ck"), "base")
    assert before > 1e-3 and hist[0]["nke_kl"] > 0
    assert _retain_kl(tiny_model, gates, retain) < 0.5 * before


def test_a_killed_run_resumes_to_the_same_gates(tmp_path, qwen_tok):
    from tests.conftest import make_tiny_qwen3

    cfg = KnowledgeGatesParams(**CFG)
    straight, hist = _train(make_tiny_qwen3(), tmp_path, cfg, name="a")
    with pytest.raises(KeyboardInterrupt):
        _train(make_tiny_qwen3(), tmp_path, cfg, stop_at=3, name="b")  # checkpoint after step 2 exists
    resumed, hist_b = _train(make_tiny_qwen3(), tmp_path, cfg, name="b")
    torch.testing.assert_close(resumed.logits, straight.logits)
    assert [h["loss"] for h in hist_b] == pytest.approx([h["loss"] for h in hist])
    changed = KnowledgeGatesParams(**{**CFG, "lr": 0.01})
    with pytest.raises(InputError, match="other params"):
        _train(make_tiny_qwen3(), tmp_path, changed, name="b")


def test_micro_batches_give_the_whole_batchs_gradient_and_metrics(tiny_model):
    from thinkmid.gates.train import gate_loss_backward, pad

    for layer in tiny_model.model.layers:  # MLPs that matter, so every term has a gradient
        layer.mlp.down_proj.weight.data *= 30
    for p in tiny_model.parameters():
        p.requires_grad_(False)
    facts, retain = _data(n_facts=5, n_retain=7)
    fb = pad([f["ids"] for f in facts], PAD, [f["entity_mask"] for f in facts])
    rb = pad(retain, PAD)  # rows of different lengths: the KL's share is by each micro-batch's positions
    gates = GateSet.for_model(tiny_model, init_std=1.0, seed=4).attach(tiny_model)
    runs = []
    for micro in (None, 2, 3):  # 3 leaves a short last micro-batch in both batches
        cfg = KnowledgeGatesParams(**CFG, unmasked_retain_weight=0.3, micro_batch_size=micro)
        gates.logits.grad = None
        m = gate_loss_backward(tiny_model, gates, fb, rb, cfg)
        runs.append((gates.logits.grad.clone(), m))
    whole, m0 = runs[0]
    assert whole.abs().sum() > 0 and min(m0["forget_loss"], m0["retain_kl"], m0["nke_kl"]) > 0
    for grad, m in runs[1:]:
        torch.testing.assert_close(grad, whole, rtol=1e-4, atol=1e-7)
        assert m == pytest.approx(m0, rel=1e-4)
