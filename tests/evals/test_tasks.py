"""Task loading from the installed benchmark wheel, extraction and scoring on hand-written text.
Benchmark questions are never written into the repo; synthetic problems are built inline."""

import pytest

from thinkmid.config import BenchmarkParams
from thinkmid.errors import InputError
from thinkmid.evals.reasoning import TASKS, gpqa, gsm8k, math500, olympiadbench
from thinkmid.evals.reasoning.common import Problem, answer_region, last_boxed, subsample


def test_gsm8k_loads_all_and_subsamples_deterministically():
    full = gsm8k.load(BenchmarkParams(), seed=0)
    assert len(full) == 1319 and len({p.id for p in full}) == 1319
    assert all(p.gold.lstrip("-").replace(".", "").isdigit() for p in full)
    a, b = gsm8k.load(BenchmarkParams(limit=8), 0), gsm8k.load(BenchmarkParams(limit=8), 0)
    c = gsm8k.load(BenchmarkParams(limit=8), 1)
    assert len(a) == 8 and a == b and [p.id for p in a] != [p.id for p in c]
    assert set(p.id for p in a) <= set(p.id for p in full)
    assert gsm8k.prompt(a[0]).endswith("Answer: <think>") and a[0].question in gsm8k.prompt(a[0])


def test_subsample_edges():
    assert subsample(5, None, 0, "x") == [0, 1, 2, 3, 4] == subsample(5, 9, 0, "x")
    s = subsample(100, 10, 3, "x")
    assert s == sorted(s) and len(set(s)) == 10 and s != subsample(100, 10, 3, "y")


G = Problem("gsm8k", "g0", "How many?", "1234")


@pytest.mark.parametrize(
    "text, ok, extracted",
    [
        ("Add them up. 1000 + 234 = 1234</think> She has 1,234 apples.", True, "1234"),
        ("We get 12.</think> The answer is \\boxed{1,234}.", True, "1234"),
        ("so 1234.0</think> That makes $1234.00 in total", True, "1234.00"),
        ("1234 is tempting</think> but it is 1200.", False, "1200"),
        ("1000 + 234 = 1234 and more thinking", True, "1234"),  # never closed: the thought is scored
        ("</think> 7\n\nQuestion: a new made-up problem with 1234 apples", False, "7"),  # cut at next problem
        ("</think> no idea at all", False, None),
        ("", False, None),
    ],
)
def test_gsm8k_scoring(text, ok, extracted):
    assert gsm8k.score(G, text) == (ok, extracted)


def test_gsm8k_gold_marker():
    assert gsm8k.gold_from_solution("2+2=<<2+2=4>>4\n#### 1,000") == "1000"
    with pytest.raises(ValueError):
        gsm8k.gold_from_solution("no marker")


def test_answer_region_and_boxed():
    assert answer_region("t1</think> v1 <think> t2</think> v2").split() == ["v1", "v2"]
    assert answer_region("t1</think> v1 <think> unclosed 99").split() == ["v1"]
    assert answer_region("only thinking 5").split() == ["only", "thinking", "5"]
    assert last_boxed("\\boxed{1} then \\boxed{\\frac{1}{2}}") == "\\frac{1}{2}"
    assert last_boxed("\\boxed{\\frac{1}{2}") is None and last_boxed("none") is None


def test_gpqa_loads_shuffles_deterministically():
    full = gpqa.load(BenchmarkParams(), seed=0)
    assert len(full) == 198 and all(len(p.choices) == 4 and p.gold in "ABCD" for p in full)
    again = gpqa.load(BenchmarkParams(), seed=0)
    assert [(p.choices, p.gold) for p in full] == [(p.choices, p.gold) for p in again]
    other = gpqa.load(BenchmarkParams(), seed=1)
    assert [p.gold for p in full] != [p.gold for p in other]  # the seed changes the option order
    assert len({p.gold for p in full}) == 4  # the correct option is not always in one slot
    sub = gpqa.load(BenchmarkParams(limit=5), seed=0)
    by_id = {p.id: p for p in full}
    assert len(sub) == 5 and all(by_id[p.id] == p for p in sub)  # subsetting does not reshuffle
    text = gpqa.prompt(sub[0])
    assert text.endswith("Answer: <think>") and all(f"{L}) " in text for L in "ABCD")


def test_gpqa_shuffle_keeps_correct_option():
    choices, letter = gpqa.shuffled("right", ["w1", "w2", "w3"], seed=7)
    assert sorted(choices) == ["right", "w1", "w2", "w3"] and choices["ABCD".index(letter)] == "right"
    assert gpqa.shuffled("right", ["w1", "w2", "w3"], seed=7) == (choices, letter)


Q = Problem("gpqa_diamond", "q0", "Which?", "C", ("w", "x", "right", "z"))


@pytest.mark.parametrize(
    "text, ok, extracted",
    [
        ("compare options</think> Answer: C", True, "C"),
        ("</think> The answer is (C).", True, "C"),
        ("</think> \\boxed{C}", True, "C"),
        ("</think> Answer: **B**", False, "B"),
        ("</think> A photon is absorbed, so D", False, "D"),
        ("I like (A) more than (C)</think> so (C)", True, "C"),
        ("</think> A ball rolls down a hill.", False, None),
        ("</think> I cannot tell.", False, None),
    ],
)
def test_gpqa_letter_scoring(text, ok, extracted):
    assert gpqa.score(Q, text) == (ok, extracted)


M = Problem("math500", "m0", "Compute.", "\\frac{1}{2}")


@pytest.mark.parametrize(
    "text, ok",
    [
        ("</think> So the result is \\boxed{\\frac12}.", True),
        ("</think> \\boxed{0.5}", True),
        ("</think> \\boxed{\\frac{1}{3}}", False),
        ("</think> The final answer is $\\frac{1}{2}$.", True),  # no box: math-verify finds it
        ("</think> no answer", False),
    ],
)
def test_latex_scoring(text, ok):
    assert math500.score(M, text)[0] is ok


def test_olympiad_gold_and_tuple_answers():
    assert olympiadbench.gold_from_row(["$\\frac{3}{4}$"]) == "\\frac{3}{4}"
    gold = olympiadbench.gold_from_row(["$2$", "$5$"])
    p = Problem("olympiadbench", "o0", "Find both.", gold)
    assert olympiadbench.score(p, "</think> \\boxed{2, 5}")[0]
    assert not olympiadbench.score(p, "</think> \\boxed{2, 6}")[0]


@pytest.mark.parametrize("task, param", [(math500, "math500"), (olympiadbench, "olympiadbench")])
def test_hub_benchmarks_offline_raise_clear_input_error(task, param, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    try:
        task.load(BenchmarkParams(limit=2), seed=0)
    except InputError as e:
        msg = str(e)
        assert task.DATASET in msg and f"reasoning_eval.{param}.enabled: false" in msg
    else:
        pytest.skip(f"{task.DATASET} is in the local cache, so it loads offline")


def test_registry_matches_config_sections():
    from thinkmid.config import ReasoningEvalParams

    assert set(TASKS) <= set(ReasoningEvalParams.model_fields)
    assert all(TASKS[name].NAME == name for name in TASKS)


def test_scoring_works_off_the_main_thread():
    # math-verify's signal-based timeout raises in threads; scoring must not silently turn False.
    import threading

    out = []
    def work():
        out.append((gsm8k.score(G, "</think> 1234")[0], math500.score(M, "</think> \\boxed{0.5}")[0]))

    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert out == [(True, True)]
