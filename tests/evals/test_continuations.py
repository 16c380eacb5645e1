"""Phase 3 continuation maths on hand-made verdicts: the record's one-order headline, the stricter
both-orders figure, and the raw suffix NLL against a direct per-batch computation."""

import pytest
import torch

from thinkmid.evals import continuations as ec


def test_one_order_headline_is_wins_over_valid_verdicts():
    # 128 prefixes; in its coin's order phase3 wins 81 and loses 47: the record's 81/128 = 63.28%
    swaps = ec.order_swaps(128, seed=0)
    assert 30 < sum(swaps) < 98 and swaps == ec.order_swaps(128, seed=0) != ec.order_swaps(128, seed=1)
    verdicts = [("A" if s else "B") if i < 81 else ("B" if s else "A") for i, s in enumerate(swaps)]
    single = ec.single_order(verdicts, swaps)
    m = ec.headline(single, ["tie"] * 128)
    assert (m["wins"], m["losses"], m["comparisons"], m["invalid"]) == (81, 47, 128, 0)
    assert f"{100 * m['win_rate']:.2f}%" == "63.28%"
    # an invalid verdict leaves the denominator: 81 / 127
    verdicts[-1] = None
    m = ec.headline(ec.single_order(verdicts, swaps), ["tie"] * 128)
    assert (m["wins"], m["comparisons"], m["invalid"]) == (81, 127, 1) and m["win_rate"] == 81 / 127


def test_phase3_as_option_a_flips_the_reading():
    assert ec.single_order(["A", "A", "B", None], [True, False, True, False]) == ["win", "loss", "loss", "invalid"]


def test_identical_continuations_leave_the_headline():
    m = ec.headline(ec.single_order(["same", "A", "B"], [True, True, True]), [ec.both_orders("same", "same")] * 3)
    assert (m["wins"], m["losses"], m["identical"], m["comparisons"], m["both_orders_ties"]) == (1, 1, 1, 2, 3)


def test_both_orders_is_stricter():
    assert ec.both_orders("B", "A") == "win" and ec.both_orders("A", "B") == "loss"
    assert ec.both_orders("A", "A") == "tie" and ec.both_orders(None, "A") == "invalid"
    # position bias: the judge always says "A"; one order per prefix still gives phase3 about half the
    # wins, both orders give it none
    swaps = [True, False, True, False]
    m = ec.headline(ec.single_order(["A"] * 4, swaps), [ec.both_orders("A", "A")] * 4)
    assert m["win_rate"] == 0.5 and m["both_orders_win_rate"] == 0.0 and m["both_orders_ties"] == 4


def test_suffix_nll_is_the_mean_of_batch_token_means(tiny_model):
    rows = [
        {"prefix_ids": [11, 12, 13], "suffix_ids": [14, 15]},
        {"prefix_ids": [21], "suffix_ids": [22, 23, 24]},
        {"prefix_ids": [31, 32], "suffix_ids": [33]},
    ]

    def batch_mean(batch):
        total, count = 0.0, 0
        for r in batch:
            ids = torch.tensor([r["prefix_ids"] + r["suffix_ids"]])
            logp = torch.log_softmax(tiny_model(input_ids=ids).logits.float()[0], -1)
            p = len(r["prefix_ids"])
            for t in range(p, ids.shape[1]):
                total -= float(logp[t - 1, ids[0, t]])
                count += 1
        return total / count

    with torch.no_grad():
        want = (batch_mean(rows[:2]) + batch_mean(rows[2:])) / 2
    assert ec.suffix_nll(tiny_model, rows, batch_size=2) == pytest.approx(want, rel=1e-5)
    assert ec.suffix_nll(tiny_model, [], 8) == 0.0
