"""Task loading from the installed benchmark wheel, the seed's prompts, and the second (math-verify)
score on hand-written text. Benchmark questions are never written into the repo."""

import pytest

from thinkmid.config import BenchmarkParams
from thinkmid.errors import InputError
from thinkmid.evals.reasoning import TASKS, gpqa, gsm8k, math500, olympiadbench
from thinkmid.evals.reasoning.common import Problem, answer_region, last_boxed, subsample
from thinkmid.evals.reasoning.run import prompt_text


def test_gsm8k_loads_all_and_subsamples_deterministically():
    full = gsm8k.load(BenchmarkParams(), seed=0)
    assert len(full) == 1319 and len({p.id for p in full}) == 1319
    assert all(p.gold.lstrip("-").replace(".", "").isdigit() for p in full)
    a, b = gsm8k.load(BenchmarkParams(limit=8), 0), gsm8k.load(BenchmarkParams(limit=8), 0)
    c = gsm8k.load(BenchmarkParams(limit=8), 1)
    assert len(a) == 8 and a == b and [p.id for p in a] != [p.id for p in c]
    assert set(p.id for p in a) <= set(p.id for p in full)
    assert len(gsm8k.load(BenchmarkParams(first_rows=10), 0)) == 10


def test_prompts_have_the_seed_format():
    g = Problem("gsm8k", "g", "How many?", "3")
    text = gsm8k.prompt(g)
    # two worked examples, each ending in a boxed answer, then the problem; no <think>
    assert (
        text.count("Problem: ") == 3 and text.count("\\boxed{") == 2 and text.endswith("Problem: How many?\nSolution:")
    )
    assert "<think>" not in text
    m = math500.prompt(Problem("math500", "m", "Find x.", "1"))
    assert "\\boxed{}" in m and m.endswith("Problem:\nFind x.\n\nSolution:")
    q = gpqa.prompt(Problem("gpqa_diamond", "q", "Which? (A) a (B) b (C) c (D) d", "B"))
    assert "letter" in q and "\\boxed{}" in q and q.endswith("Question:\nWhich? (A) a (B) b (C) c (D) d\n\nSolution:")
    assert prompt_text(g, opened=True) == text + " <think>"


def test_subsample_edges():
    assert subsample(5, None, 0, "x") == [0, 1, 2, 3, 4] == subsample(5, 9, 0, "x")
    s = subsample(100, 10, 3, "x")
    assert s == sorted(s) and len(set(s)) == 10 and s != subsample(100, 10, 3, "y")


G = Problem("gsm8k", "g0", "How many?", "1234")


@pytest.mark.parametrize(
    "text, opened, ok, extracted",
    [
        ("Add them up. 1000 + 234 = 1234</think> She has 1,234 apples.", True, True, "1234"),
        ("We get 12.</think> The answer is \\boxed{1,234}.", True, True, "1234"),
        ("so 1234.0</think> That makes $1234.00 in total", True, True, "1234.00"),
        ("1234 is tempting</think> but it is 1200.", True, False, "1200"),
        ("1000 + 234 = 1234 and more thinking", True, True, "1234"),  # never closed: the thought is scored
        ("</think> 7\n\nQuestion: a new made-up problem with 1234 apples", True, False, "7"),  # cut at next problem
        ("It is 1234.\nProblem: another one, 5 apples", False, True, "1234"),
        ("<think>maybe 5</think> It is 1234.", False, True, "1234"),  # a thought the model opened itself
        ("</think> no idea at all", True, False, None),
        ("", False, False, None),
    ],
)
def test_gsm8k_math_verify_score(text, opened, ok, extracted):
    assert gsm8k.verify(G, text, opened) == (ok, extracted)


def test_gsm8k_gold_marker():
    assert gsm8k.gold_from_solution("2+2=<<2+2=4>>4\n#### 1,000") == "1000"
    with pytest.raises(ValueError):
        gsm8k.gold_from_solution("no marker")


def test_answer_region_and_boxed():
    assert answer_region("t1</think> v1 <think> t2</think> v2", opened=True).split() == ["v1", "v2"]
    assert answer_region("t1</think> v1 <think> unclosed 99", opened=True).split() == ["v1"]
    assert answer_region("only thinking 5", opened=True).split() == ["only", "thinking", "5"]
    assert answer_region("plain 5\nProblem: next").split() == ["plain", "5"]
    assert last_boxed("\\boxed{1} then \\boxed{\\frac{1}{2}}") == "\\frac{1}{2}"
    assert last_boxed("\\boxed{\\frac{1}{2}") is None and last_boxed("none") is None


def test_gpqa_csv_loads_shuffles_deterministically():
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
    assert text.endswith("Solution:") and all(f"({L}) " in text for L in "ABCD")


def test_gpqa_hub_rows_keep_their_fixed_order():
    row = {"problem": "Which gas? (A) O2 (B) Ne (C) Fe (D) Na", "solution": "\\boxed{B}"}
    p = gpqa.problem_from_hub_row(0, row)
    assert p.gold == "B" and p.choices == () and gpqa.prompt(p).count("(B) Ne") == 1
    with pytest.raises(InputError, match="no option letter"):
        gpqa.problem_from_hub_row(3, {"problem": "x", "solution": "none given"})


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
def test_gpqa_second_score(text, ok, extracted):
    assert gpqa.verify(Q, text, opened=True) == (ok, extracted)


M = Problem("math500", "m0", "Compute.", "\\frac{1}{2}")


@pytest.mark.parametrize(
    "text, ok",
    [
        ("So the result is \\boxed{\\frac12}.", True),
        ("\\boxed{0.5}", True),
        ("\\boxed{\\frac{1}{3}}", False),
        ("The final answer is $\\frac{1}{2}$.", True),  # no box: math-verify finds it
        ("no answer", False),
    ],
)
def test_latex_second_score(text, ok):
    assert math500.verify(M, text)[0] is ok


def test_olympiad_rows_as_the_seed_selected_them():
    keep = olympiadbench.problem_from_row(4, {"id": 17, "question": "Find x.", "final_answer": ["$\\frac{3}{4}$", "x"]})
    assert keep.gold == "$\\frac{3}{4}$" and keep.id == "olympiadbench-17"  # the first answer only
    for bad in (
        {"error": "bad", "final_answer": ["1"]},
        {"is_multiple_answer": True, "final_answer": ["1", "2"]},
        {"final_answer": []},
        {"final_answer": None},
    ):
        assert olympiadbench.problem_from_row(0, {"question": "q", **bad}) is None
    assert olympiadbench.verify(keep, "\\boxed{0.75}")[0]


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
        out.append((gsm8k.verify(G, "</think> 1234", True)[0], math500.verify(M, "\\boxed{0.5}")[0]))

    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert out == [(True, True)]
