"""Knowledge and reasoning text of the gate probe: Factbook facts with exact entity spans, train and
eval countries disjoint, GSM8K retain text disjoint from the reasoning eval's subset."""

from __future__ import annotations

import pytest

from thinkmid.config import BenchmarkParams
from thinkmid.errors import InputError
from thinkmid.evals.reasoning import gsm8k
from thinkmid.gates.data import (
    Fact,
    clean_solution,
    country_fields,
    encode_fact,
    factbook_facts,
    gsm8k_retain_texts,
    normalise,
)


def _country(fact_id: str) -> str:
    return fact_id.rsplit("/", 1)[0]


def test_facts_come_from_disjoint_countries_and_are_deterministic():
    train, test = factbook_facts(0, 60, 60)
    assert len(train) == 60 and len(test) == 60
    assert not {_country(f.id) for f in train} & {_country(f.id) for f in test}
    assert factbook_facts(0, 60, 60) == (train, test)
    assert factbook_facts(1, 60, 60) != (train, test)
    kinds = {f.kind for f in train}
    assert {"capital", "capital_of", "population"} <= kinds
    for f in train + test:
        assert f.entity.startswith(" ") and f.entity.strip() and "  " not in f.prefix + f.entity + f.suffix


def test_country_fields_read_the_structured_factbook():
    data = {
        "Government": {
            "Country name": {"conventional short form": {"text": "Ruritania"}},
            "Capital": {"name": {"text": "Strelsau; note - the royal seat"}},
        },
        "People and Society": {
            "Nationality": {"adjective": {"text": "Ruritanian"}},
            "Population": {"total": {"text": "1,234,567 (2025 est.)"}},
        },
        "Geography": {"Elevation": {"highest point": {"text": "Mount Zenda 2,310 m"}}},
    }
    assert country_fields(data) == {
        "country": "Ruritania",
        "capital": "Strelsau",
        "adjective": "Ruritanian",
        "peak": "Mount Zenda",
        "population": "1,234,567",
    }
    assert country_fields({"Government": {}}) == {}


def test_too_many_facts_is_bad_input():
    with pytest.raises(InputError, match="asked for"):
        factbook_facts(0, 100_000, 1)


def test_entity_mask_covers_exactly_the_entity(qwen_tok):
    fact = Fact("x/capital", "capital", "The capital city of Bolivia is", " La Paz", ".")
    enc = encode_fact(qwen_tok, fact, 64)
    ent = [t for t, m in zip(enc["ids"], enc["entity_mask"]) if m]
    assert qwen_tok.decode(ent) == " La Paz"
    assert qwen_tok.decode(enc["ids"]) == "The capital city of Bolivia is La Paz."
    with pytest.raises(InputError, match="no entity token"):
        encode_fact(qwen_tok, fact, 3)


def test_retain_text_never_holds_an_evaluated_gsm8k_problem():
    cfg = BenchmarkParams(limit=40)
    evaluated = {normalise(p.question) for p in gsm8k.load(cfg, 7)}
    texts = gsm8k_retain_texts(cfg, 7, 200)
    assert len(texts) == 200 and len(set(texts)) == 200
    for t in texts:
        question = t.split("\nAnswer: ", 1)[0].removeprefix("Question: ")
        assert normalise(question) not in evaluated
        assert "<<" not in t
    assert gsm8k_retain_texts(cfg, 7, 200) == texts


def test_retain_from_gsm8k_needs_an_eval_limit():
    with pytest.raises(InputError, match="limit"):
        gsm8k_retain_texts(BenchmarkParams(limit=None), 0, 4)


def test_clean_solution_drops_calculator_annotations():
    assert clean_solution("She sells 16 - 3 = <<16-3=13>>13 eggs.\n#### 13") == "She sells 16 - 3 = 13 eggs.\n#### 13"
