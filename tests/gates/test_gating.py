"""Gates on the tiny Qwen3 and a tiny Llama (the embedded SmolLM2's architecture): hooks, rescale
modes, hard masks against hand-edited weights, thresholds, the safetensors files."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from thinkmid.errors import InputError
from thinkmid.gates.gating import (
    GateSet,
    find_mlps,
    knowledge_mask,
    load_gate_logits,
    load_knowledge_mask,
    save_gate_files,
    thresholds_for,
)


def tiny_llama(seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=300,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
    )
    return LlamaForCausalLM(cfg).eval()


@pytest.fixture(params=["qwen3", "llama"])
def model(request, tiny_model):
    return tiny_model if request.param == "qwen3" else tiny_llama()


IDS = torch.tensor([[5, 17, 42, 99, 7, 3], [8, 8, 120, 4, 250, 1]])


def logits(model):
    with torch.no_grad():
        return model(input_ids=IDS).logits


def test_finds_every_mlp_in_order(model):
    mlps = find_mlps(model)
    assert len(mlps) == model.config.num_hidden_layers
    assert mlps[0] is model.model.layers[0].mlp
    gates = GateSet.for_model(model)
    assert tuple(gates.logits.shape) == (model.config.num_hidden_layers, model.config.intermediate_size)


def test_no_mlp_is_bad_input():
    with pytest.raises(InputError, match="no MLP"):
        find_mlps(torch.nn.Linear(3, 3))


@pytest.mark.parametrize("mode", ["mean", "energy"])
def test_uniform_gates_and_open_masks_leave_the_model_unchanged(model, mode):
    ref = logits(model)
    gates = GateSet.for_model(model, scale_mode=mode, init_std=0.0).attach(model)
    gates.logits.data.fill_(-1.3)  # every gate equal: g / mean(g) = g / rms(g) = 1
    torch.testing.assert_close(logits(model), ref, rtol=1e-5, atol=1e-5)
    gates.close_below(0.0)  # nothing below 0: all open
    torch.testing.assert_close(logits(model), ref, rtol=1e-5, atol=1e-5)
    gates.logits.data.normal_()
    gates.mode = "soft"
    assert not torch.allclose(logits(model), ref, atol=1e-4)  # random gates do change it
    with gates.ungated():
        torch.testing.assert_close(logits(model), ref)
    gates.detach()
    torch.testing.assert_close(logits(model), ref)


@pytest.mark.parametrize("mode", ["mean", "energy"])
def test_closed_gates_equal_zeroed_down_proj_columns(model, mode):
    """Closing neuron j of layer i is zeroing column j of that down_proj; the open ones are scaled by
    1/mean(mask) (= 1/open fraction) or 1/sqrt(mean(mask^2)) (= 1/sqrt(open fraction))."""
    import copy

    edited = copy.deepcopy(model)
    gates = GateSet.for_model(model, scale_mode=mode, seed=3).attach(model)
    frac = gates.close_below(0.5)
    assert 0.2 < frac < 0.8
    for i, mlp in enumerate(find_mlps(edited)):
        keep = gates.mask[i]
        scale = keep.mean() if mode == "mean" else keep.pow(2).mean().sqrt()
        mlp.down_proj.weight.data *= keep / scale
    torch.testing.assert_close(logits(model), logits(edited), rtol=1e-4, atol=1e-5)


def test_soft_gates_scale_the_activation_output():
    """The hook multiplies act_fn(gate_proj(x)) * up_proj(x) per neuron, as the card's formula."""
    m = tiny_llama()
    mlp = m.model.layers[1].mlp
    x = torch.randn(2, 5, 32)
    gates = GateSet.for_model(m, scale_mode="mean", seed=1).attach(m)
    g = torch.sigmoid(gates.logits[1].detach())
    want = mlp.down_proj.weight @ ((mlp.act_fn(mlp.gate_proj(x)) * mlp.up_proj(x)) * g / g.mean())[..., None]
    torch.testing.assert_close(mlp(x), want.squeeze(-1), rtol=1e-5, atol=1e-6)


def test_gradients_reach_every_layer(tiny_model):
    gates = GateSet.for_model(tiny_model).attach(tiny_model)
    tiny_model(input_ids=IDS).logits.float().logsumexp(-1).mean().backward()
    assert gates.logits.grad is not None and bool((gates.logits.grad.abs().sum(1) > 0).all())


def test_attach_refuses_a_model_of_another_shape(tiny_model):
    gates = GateSet(3, 10)
    with pytest.raises(InputError, match="do not fit"):
        gates.attach(tiny_model)


def test_thresholds_close_the_asked_fractions():
    values = torch.rand(7, 100, generator=torch.Generator().manual_seed(0)).double()
    fracs = [0.05, 0.25, 0.5, 0.75, 0.95]
    for f, t in zip(fracs, thresholds_for(values, fracs)):
        assert int((values < t).sum()) == round(f * 700)
    lo, hi = thresholds_for(values, [0.0, 1.0])
    assert int((values < lo).sum()) == 0 and int((values < hi).sum()) == 700


def test_close_below_reports_the_closed_fraction(tiny_model):
    gates = GateSet.for_model(tiny_model, seed=2).attach(tiny_model)
    t = thresholds_for(gates.values(), [0.25])[0]
    assert gates.close_below(t) == pytest.approx(0.25, abs=1 / gates.logits.numel())
    assert gates.mode == "mask" and gates.close_below(None) == 0.0 and gates.mode == "off"


def test_files_are_safetensors_and_round_trip(tmp_path, tiny_model):
    gates = GateSet.for_model(tiny_model, seed=5)
    fracs = [0.05, 0.5, 0.95]
    stats = save_gate_files(tmp_path / "g", gates, 0.5, fracs, {"arm": "base"})
    names = sorted(p.name for p in (tmp_path / "g").iterdir())
    assert names == [
        "gate_logits.safetensors",
        "gate_stats.safetensors",
        "knowledge_neurons.safetensors",
        "thresholds.safetensors",
    ]
    logits_, meta = load_gate_logits(tmp_path / "g")
    torch.testing.assert_close(logits_, gates.logits.detach())
    assert meta["arm"] == "base" and meta["scale_mode"] == "energy"
    mask = load_knowledge_mask(tmp_path / "g")
    assert torch.equal(mask, knowledge_mask(gates.values(), 0.5))
    kn = load_file(str(tmp_path / "g/knowledge_neurons.safetensors"))
    assert torch.equal(mask.nonzero(), torch.stack([kn["layer"], kn["neuron"]], 1))
    assert stats["knowledge_neurons"] == int(mask.sum()) and stats["total_gates"] == gates.logits.numel()
    thr = load_file(str(tmp_path / "g/thresholds.safetensors"))
    assert thr["achieved_off_fractions"].tolist() == pytest.approx(fracs, abs=1 / gates.logits.numel())
    assert sum(stats["layer_knowledge_neurons"]) == stats["knowledge_neurons"]
    with pytest.raises(InputError, match="not found"):
        load_gate_logits(tmp_path / "missing")
