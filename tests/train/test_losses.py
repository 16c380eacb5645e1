import math

import pytest
import torch

from thinkmid.train.losses import causal_lm_loss, causal_lm_nll_sum, dpo_loss, group_advantages, rlmt_loss


def test_dpo_hand_computed():
    pc, pr = torch.tensor([-10.0, -5.0]), torch.tensor([-12.0, -4.0])
    rc, rr = torch.tensor([-11.0, -5.0]), torch.tensor([-11.0, -5.0])
    loss, m = dpo_loss(pc, pr, rc, rr, beta=0.5)
    # margins: 0.5*(1 - -1) = 1 and 0.5*(0 - 1) = -0.5; -logsigmoid(x) = log(1 + e^-x)
    expected = (math.log(1 + math.exp(-1.0)) + math.log(1 + math.exp(0.5))) / 2
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    assert m == pytest.approx(
        {"reward_margin": 0.25, "reward_accuracy": 0.5, "chosen_reward": 0.25, "rejected_reward": 0.0}
    )


def test_dpo_gradient_direction():
    pc = torch.tensor([-3.0], requires_grad=True)
    pr = torch.tensor([-3.0], requires_grad=True)
    loss, _ = dpo_loss(pc, pr, torch.tensor([-3.0]), torch.tensor([-3.0]), beta=0.1)
    loss.backward()
    assert pc.grad.item() < 0 < pr.grad.item()  # descent raises chosen, lowers rejected


def test_causal_lm_loss_matches_hf(tiny_model):
    ids = torch.tensor([[5, 6, 7, 8, 9], [10, 11, 12, 0, 0]])
    labels = ids.clone()
    labels[1, 3:] = -100
    out = tiny_model(input_ids=ids, attention_mask=(labels != -100).long(), labels=labels)
    ours = causal_lm_loss(out.logits, labels)
    torch.testing.assert_close(ours, out.loss, atol=1e-5, rtol=1e-5)
    total, count = causal_lm_nll_sum(out.logits, labels)
    assert count == 4 + 2
    torch.testing.assert_close(total / count, ours)


def test_nll_sum_with_mask():
    logits = torch.randn(1, 4, 7, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([[1, 2, 3, 4]])
    mask = torch.tensor([[1, 0, 1, 0]])  # only token 2 (position 2) is a target after the shift
    total, count = causal_lm_nll_sum(logits, labels, mask)
    assert count == 1
    expected = -torch.log_softmax(logits[0, 1], -1)[3]
    torch.testing.assert_close(total, expected)


def test_group_advantages():
    r = torch.tensor([[0.0, 1.0, 0.0, 1.0], [0.1, 0.1, 0.1, 0.1], [1.0, 1.0, 1.0, 1.0]])
    a = group_advantages(r, "grpo")
    s = 0.5  # the population std of [0, 1, 0, 1] (the seed's; the unbiased one would be sqrt(1/3))
    torch.testing.assert_close(a[0], torch.tensor([-0.5, 0.5, -0.5, 0.5]) / (s + 1e-6))
    assert torch.equal(a[1:], torch.zeros(2, 4))
    d = group_advantages(r, "drgrpo")
    torch.testing.assert_close(d[0], torch.tensor([-0.5, 0.5, -0.5, 0.5]))
    assert torch.equal(d[1:], torch.zeros(2, 4))
    with pytest.raises(ValueError):
        group_advantages(r[0], "grpo")


def _rl_inputs():
    new = torch.tensor([[-1.0, -2.0, -0.5], [-1.5, -0.3, 0.0]], requires_grad=True)
    old = torch.tensor([[-1.2, -2.0, -0.5], [-1.0, -0.3, 0.0]])
    ref = torch.tensor([[-1.0, -1.5, -0.5], [-1.5, -0.5, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    adv = torch.tensor([1.0, -1.0])
    return new, old, ref, mask, adv


def k3(d):
    return math.exp(d) - d - 1


def test_rlmt_loss_grpo_hand_computed():
    new, old, ref, mask, adv = _rl_inputs()
    loss, m = rlmt_loss(new, old, ref, mask, adv, clip_eps=0.2, kl_coef=0.02, mode="grpo")
    # seq0, A=+1: ratios e^0.2 (clipped to 1.2), 1, 1; seq1, A=-1: ratio e^-0.5 -> min(-0.607, -0.8), 1
    pg = (-(1.2 + 1 + 1) / 3 + (0.8 + 1) / 2) / 2
    kl = ((k3(0) + k3(0.5) + k3(0)) / 3 + (k3(0) + k3(-0.2)) / 2) / 2
    assert m["pg_loss"] == pytest.approx(pg, abs=1e-6)
    assert m["kl"] == pytest.approx(kl, abs=1e-6)
    assert loss.item() == pytest.approx(pg + 0.02 * kl, abs=1e-6)
    assert m["clip_frac"] == pytest.approx(2 / 5)
    assert m["ratio_mean"] == pytest.approx((math.exp(0.2) + 3 + math.exp(-0.5)) / 5, abs=1e-6)


def test_rlmt_loss_drgrpo_hand_computed():
    new, old, ref, mask, adv = _rl_inputs()
    loss, m = rlmt_loss(new, old, ref, mask, adv, kl_coef=0.02, mode="drgrpo", token_budget=4)
    pg = (-(1.2 + 1 + 1) / 4 + (0.8 + 1) / 4) / 2
    kl = ((k3(0.5)) / 4 + k3(-0.2) / 4) / 2
    assert m["pg_loss"] == pytest.approx(pg, abs=1e-6)
    assert loss.item() == pytest.approx(pg + 0.02 * kl, abs=1e-6)
    with pytest.raises(ValueError):
        rlmt_loss(new, old, ref, mask, adv, mode="drgrpo")


@pytest.mark.parametrize("mode", ["grpo", "drgrpo"])
def test_zero_advantage_group_has_zero_policy_gradient(mode):
    g = torch.Generator().manual_seed(1)
    rewards = torch.tensor([[1.0, 1.0, 1.0], [0.0, 1.0, 0.0]])
    adv = group_advantages(rewards, mode).reshape(-1)
    new = (torch.randn(6, 5, generator=g) - 2).requires_grad_()
    old = new.detach() + 0.1 * torch.randn(6, 5, generator=g)
    ref = new.detach() + 0.1 * torch.randn(6, 5, generator=g)
    mask = torch.ones(6, 5)
    loss, _ = rlmt_loss(new, old, ref, mask, adv, kl_coef=0.0, mode=mode, token_budget=5)
    loss.backward()
    assert torch.equal(new.grad[:3], torch.zeros(3, 5))
    assert new.grad[3:].abs().sum() > 0


def test_masked_tokens_get_no_gradient():
    new, old, ref, mask, adv = _rl_inputs()
    new_big = new.detach().clone()
    new_big[1, 2] = 50.0  # garbage on a padded position must not leak (exp would overflow)
    new_big.requires_grad_()
    loss, _ = rlmt_loss(new_big, old, ref, mask, adv)
    loss.backward()
    assert torch.isfinite(loss) and new_big.grad[1, 2] == 0
