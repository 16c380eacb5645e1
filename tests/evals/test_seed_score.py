"""The record's answer checking (seed_score.py) on hand-made completions: each expected value follows
the seed's definitions (scripts/eval_reasoning_sglang.py:37-101 at f5a982a), not ours."""

import pytest

from thinkmid.evals.reasoning import seed_score as ss
from thinkmid.evals.reasoning.common import Problem
from thinkmid.evals.reasoning.run import score_sample


def test_answer_then_invented_problem_scores_the_invented_box():
    # The model answers 18, then makes up a new problem and boxes 7: the seed reads the LAST box
    # anywhere, so the record's score is wrong; math-verify on the visible answer (cut at the new
    # "Problem:") reads 18 and is right.
    text = (
        "She has 9 + 9 = 18 apples. So the final answer is \\boxed{18}.\n\n"
        "Problem: Tom has 3 pens and buys 4 more. How many pens?\nSolution: 3 + 4 = 7. \\boxed{7}."
    )
    p = Problem("gsm8k", "g", "How many apples?", "18")
    s = score_sample(p, text)
    assert (s["correct"], s["extracted"]) == (False, "7")
    assert (s["correct_math_verify"], s["extracted_math_verify"]) == (True, "18")
    m = Problem("math500", "m", "Compute.", "\\frac{1}{2}")
    s = score_sample(m, "\\boxed{\\frac{1}{2}}\n\nProblem:\nFind x.\n\nSolution:\n\\boxed{3}")
    assert (s["correct"], s["extracted"], s["correct_math_verify"]) == (False, "3", True)


@pytest.mark.parametrize(
    "text, pred",
    [
        ("so 1,234 apples", "1234"),  # commas dropped before the number search
        ("\\boxed{12} but then 99", "12"),  # a box wins over a later number
        ("\\boxed{x = 40.0}", "40"),  # last number in the box, ".0" dropped
        ("total 2.50 dollars", "2.50"),  # only a trailing ".0" goes
        ("\\boxed{} then 5", "5"),  # an empty box is no box
        ("-3 degrees", "-3"),
        ("no digits here", None),
    ],
)
def test_number(text, pred):
    assert ss.number(text) == pred


def test_boxed_sees_one_level_of_nesting_only():
    assert ss.boxed("\\boxed{1} and \\boxed{\\frac{1}{2}}") == "\\frac{1}{2}"
    # two levels deep: the seed's pattern cannot match that box, so the earlier one is the last
    assert ss.boxed("\\boxed{3} and \\boxed{\\frac{1}{\\sqrt{2}}}") == "3"
    assert ss.boxed("\\boxed {  7 }") == "7" and ss.boxed("none") is None


@pytest.mark.parametrize(
    "text, letter",
    [
        ("so the answer is \\boxed{C}", "C"),
        ("\\boxed{\\text{(B)}}", "B"),
        ("The answer is B.", "B"),
        ("I pick (D) here", None),  # "(D" is not preceded by whitespace
        ("A photon, then B) wins", "B"),  # the last qualifying letter
        ("A", "A"),  # the start of the text counts
        ("Answer: D", "D"),
        ("nothing", None),
    ],
)
def test_letter(text, letter):
    assert ss.letter(text) == letter


def test_normalize_and_equal():
    assert ss.normalize(" \\boxed{\\frac{1}{2}} ") == "\\frac12"
    assert ss.equal("\\left( 3, 4 \\right)", "(3,4)")
    assert ss.equal("\\text{ Yes }", "yes")
    assert ss.equal("$1,000$", "1000")
    assert not ss.equal("0.5", "\\frac{1}{2}")  # string equality: no maths
    assert not ss.equal("\\dfrac{1}{2}", "\\frac{1}{2}")
    assert not ss.equal(None, "1")


def test_gold():
    assert ss.gold("gsm8k", "3 + 4 = <<3+4=7>>7\n#### 1,007") == "1007"
    assert ss.gold("gpqa_diamond", "The correct option is \\boxed{B}") == "B"
    assert ss.gold("math500", "  \\frac{3}{4} ") == "\\frac{3}{4}"


def test_score_by_benchmark():
    assert ss.score("gsm8k", "72", "Half is 24, so 48 + 24 = 72. \\boxed{72}") == (True, "72")
    assert ss.score("math500", "\\frac{1}{2}", "we get \\boxed{\\frac{1}{2}}") == (True, "\\frac{1}{2}")
    assert ss.score("math500", "5", "no box, the value is 5") == (True, "5")  # unboxed: last number
    assert ss.score("gpqa_diamond", "C", "Thus C.") == (True, "C")
