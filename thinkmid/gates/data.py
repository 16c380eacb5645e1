"""Training and evaluation text of the gate probe.

Knowledge text carries entity spans: the forget loss reads only the entity tokens, the optional NKE
retain term only the others. Embedded: facts written from the Factbook's structured fields (country
names, capitals, adjectives, highest points, population figures) in our own sentences; the countries
are split in two by a seeded shuffle, so the facts the gates train on and the facts entity accuracy
is measured on never share a country. Paper: PopQA questions with the answer as the entity, split by
subject the same way.

Reasoning text (the retain loss): embedded, worked solutions of the shipped GSM8K test file; the
reasoning eval's GSM8K subset is computed with its own function, seed and limit and removed, and so
is any row whose normalised question equals one in that subset, so no problem that any eval scores
is trained on. Paper: NuminaMath-CoT with every problem equal to a GSM8K test question removed.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass

from thinkmid.data.sources import factbook_dir, html_to_text
from thinkmid.errors import InputError
from thinkmid.evals.reasoning import gsm8k
from thinkmid.evals.reasoning.common import package_data, subsample


@dataclass(frozen=True)
class Fact:
    id: str
    kind: str
    prefix: str
    entity: str  # with its leading space; the tokens the forget loss and entity accuracy read
    suffix: str = "."


# kind -> (sentence before the entity, entity field, sentence after it)
TEMPLATES = {
    "capital": ("The capital city of {country} is", "capital", "."),
    "capital_of": ("{capital} is the capital city of", "country", "."),
    "adjective": ("Something or someone from {country} is described as", "adjective", "."),
    "highest_point": ("The highest point in {country} is", "peak", "."),
    "population": ("The population of {country} is about", "population", " people."),
}


def _field(data: dict, *path: str) -> str | None:
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return html_to_text(data) if isinstance(data, str) else None


def _name(text: str | None) -> str | None:
    """A short proper name: the part before any note, list or parenthesis."""
    if not text:
        return None
    text = re.split(r"[;(,\n]| note", text, maxsplit=1)[0].strip()
    return text if text and len(text.split()) <= 4 and text.lower() != "none" and re.search(r"[A-Za-z]", text) else None


def country_fields(data: dict) -> dict[str, str]:
    country = _name(_field(data, "Government", "Country name", "conventional short form", "text"))
    if not country:
        return {}
    out = {"country": country}
    capital = _name(_field(data, "Government", "Capital", "name", "text"))
    if capital:
        out["capital"] = capital
    adjective = _name((_field(data, "People and Society", "Nationality", "adjective", "text") or "").split(" or ")[0])
    if adjective and adjective != country:
        out["adjective"] = adjective
    peak = _field(data, "Geography", "Elevation", "highest point", "text")
    m = re.match(r"^([^\d;(]+?)\s+-?[\d,.]+\s*m?\b", peak or "")
    if m and _name(m.group(1)):
        out["peak"] = _name(m.group(1))
    pop = re.match(
        r"^(\d{1,3}(?:,\d{3})+|\d+)\b", _field(data, "People and Society", "Population", "total", "text") or ""
    )
    if pop:
        out["population"] = pop.group(1)
    return out


def country_facts(cid: str, fields: dict[str, str]) -> list[Fact]:
    facts = []
    for kind, (before, entity, after) in TEMPLATES.items():
        if entity in fields and all(f"{{{k}}}" not in before or k in fields for k in ("country", "capital")):
            facts.append(Fact(f"{cid}/{kind}", kind, before.format(**fields), " " + fields[entity], after))
    return facts


def factbook_facts(seed: int, n_train: int, n_eval: int) -> tuple[list[Fact], list[Fact]]:
    """(train facts, eval facts) from disjoint sets of countries."""
    countries = []
    for path in sorted(factbook_dir().glob("*/*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise InputError(f"{path}: unreadable factbook JSON ({e})") from None
        fields = country_fields(data)
        if len(fields) > 1:
            countries.append((f"factbook/{path.parent.name}/{path.stem}", fields))
    random.Random(f"{seed}:knowledge_gates:countries").shuffle(countries)
    half = len(countries) // 2
    train = [f for cid, fields in countries[:half] for f in country_facts(cid, fields)]
    test = [f for cid, fields in countries[half:] for f in country_facts(cid, fields)]
    if len(train) < n_train or len(test) < n_eval:
        raise InputError(
            f"knowledge_gates: the Factbook gives {len(train)} train and {len(test)} eval facts; "
            f"asked for {n_train} and {n_eval}"
        )
    return train[:n_train], test[:n_eval]


def popqa_facts(
    dataset: str, seed: int, n_train: int, n_eval: int, revision: str = "main"
) -> tuple[list[Fact], list[Fact]]:
    """PopQA question -> answer: the answer (obj) is the entity; subjects split in two by a seeded hash."""
    rows = _hub(dataset, "test", "knowledge_source", revision=revision)
    train, test = [], []
    order = list(range(len(rows)))
    random.Random(f"{seed}:knowledge_gates:popqa").shuffle(order)
    for i in order:
        r = rows[i]
        fact = Fact(
            f"popqa/{r.get('id', i)}",
            str(r.get("prop", "popqa")),
            f"Question: {r['question']}\nAnswer:",
            " " + str(r["obj"]).strip(),
            "",
        )
        side = random.Random(f"{seed}:subject:{r['subj']}").random() < 0.5
        (train if side else test).append(fact)
        if len(train) >= n_train and len(test) >= n_eval:
            break
    return train[:n_train], test[:n_eval]


def _hub(dataset: str, split: str, key: str, streaming: bool = False, revision: str = "main"):
    try:
        import datasets

        return datasets.load_dataset(dataset, split=split, streaming=streaming, revision=revision)
    except Exception as e:  # noqa: BLE001 - offline/missing surfaces as many exception types
        raise InputError(
            f"knowledge_gates.{key}: could not load {dataset}@{revision} split {split} from the Hugging Face Hub "
            f"({type(e).__name__}: {str(e)[:200]}); connect to the Hub or use the embedded sources "
            f"(knowledge_source: factbook, reasoning_source: gsm8k)"
        ) from None


def normalise(question: str) -> str:
    return " ".join(re.findall(r"\w+", question.lower()))


def clean_solution(answer: str) -> str:
    """A GSM8K solution without its calculator annotations (<<2*3=6>>)."""
    return re.sub(r"<<[^>]*>>", "", answer).strip()


def gsm8k_rows() -> list[dict]:
    path = package_data(gsm8k.DATA)
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def gsm8k_retain_texts(eval_cfg, seed: int, n: int) -> list[str]:
    """`n` GSM8K worked solutions outside the reasoning eval's subset (`eval_cfg` =
    params.reasoning_eval.gsm8k, the same seed), as `Question: ...\\nAnswer: ...` text."""
    rows = gsm8k_rows()
    if eval_cfg.limit is None or eval_cfg.limit >= len(rows):
        raise InputError(
            "knowledge_gates.reasoning_source: gsm8k trains on GSM8K rows the reasoning eval does "
            "not score, but reasoning_eval.gsm8k.limit selects all of them; set a limit or use "
            "reasoning_source: numina"
        )
    held = set(subsample(len(rows), eval_cfg.limit, seed, gsm8k.NAME))
    held_q = {normalise(rows[i]["question"]) for i in held}
    free = [i for i in range(len(rows)) if i not in held and normalise(rows[i]["question"]) not in held_q]
    pick = sorted(random.Random(f"{seed}:knowledge_gates:retain").sample(free, min(n, len(free))))
    return [f"Question: {rows[i]['question'].strip()}\nAnswer: {clean_solution(rows[i]['answer'])}" for i in pick]


def numina_retain_texts(dataset: str, n: int, revision: str = "main") -> list[str]:
    """The first `n` NuminaMath-CoT rows whose problem is not a GSM8K test question."""
    banned = {normalise(r["question"]) for r in gsm8k_rows()}
    out = []
    for r in _hub(dataset, "train", "reasoning_source", streaming=True, revision=revision):
        if normalise(r["problem"]) in banned:
            continue
        out.append(f"Question: {r['problem'].strip()}\nAnswer: {r['solution'].strip()}")
        if len(out) >= n:
            break
    return out


def encode_fact(tokenizer, fact: Fact, seq_len: int) -> dict:
    """Token ids of prefix + entity + suffix (each encoded on its own, so the span is exact) and the
    0/1 entity mask over them."""
    pre = tokenizer.encode(fact.prefix, add_special_tokens=False)
    ent = tokenizer.encode(fact.entity, add_special_tokens=False)
    suf = tokenizer.encode(fact.suffix, add_special_tokens=False) if fact.suffix else []
    ids = (pre + ent + suf)[:seq_len]
    mask = ([0] * len(pre) + [1] * len(ent) + [0] * len(suf))[:seq_len]
    if not pre or not any(mask):
        raise InputError(f"fact {fact.id}: no entity token within knowledge_gates.seq_len={seq_len}")
    return {"ids": ids, "entity_mask": mask}


def encode_text(tokenizer, text: str, seq_len: int) -> list[int]:
    return tokenizer.encode(text, add_special_tokens=False)[:seq_len]


def load_sources(cfg, reasoning_eval_cfg, seed: int) -> tuple[list[Fact], list[Fact], list[str]]:
    """(train facts, eval facts, retain texts) as `cfg` (params.knowledge_gates) asks."""
    if cfg.knowledge_source == "factbook":
        train, test = factbook_facts(seed, cfg.train_facts, cfg.eval_facts)
    else:
        train, test = popqa_facts(cfg.popqa_dataset, seed, cfg.train_facts, cfg.eval_facts, cfg.popqa_revision)
    if cfg.reasoning_source == "gsm8k":
        retain = gsm8k_retain_texts(reasoning_eval_cfg, seed, cfg.reasoning_rows)
    else:
        retain = numina_retain_texts(cfg.numina_dataset, cfg.reasoning_rows, cfg.numina_revision)
    if not retain:
        raise InputError("knowledge_gates: no reasoning text left for the retain loss")
    return train, test, retain
