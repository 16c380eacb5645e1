import pytest

from thinkmid.config import ChunkParams
from thinkmid.data.chunks import SPLIT_ORDER, assign_splits, make_chunks, split_sizes, split_stats
from thinkmid.data.sources import factbook_documents
from thinkmid.errors import InputError


@pytest.fixture(scope="module")
def fb_rows(qwen_tok):
    rows, dropped = make_chunks(factbook_documents(12), qwen_tok, 24, 8, 40)
    return rows


def test_windows_have_exact_lengths_and_text(qwen_tok, fb_rows):
    assert len(fb_rows) > 100
    for r in fb_rows[:200]:
        assert len(r["prefix_ids"]) == 24 and len(r["suffix_ids"]) == 8
        assert r["text"] == r["prefix"] + r["suffix"]
        assert r["text"] == qwen_tok.decode(r["prefix_ids"] + r["suffix_ids"])
        assert r["prefix"] == qwen_tok.decode(r["prefix_ids"])
        assert r["suffix"] == qwen_tok.decode(r["suffix_ids"])
        assert r["id"].startswith(r["source_id"] + "#")
    assert len({r["id"] for r in fb_rows}) == len(fb_rows)


def test_windows_do_not_overlap_and_cover_document(qwen_tok):
    text = " ".join(f"Sentence number {i} talks about rivers and hills." for i in range(40))
    rows, dropped = make_chunks([{"id": "d", "text": text}], qwen_tok, 10, 6, 16)
    ids = qwen_tok.encode(text, add_special_tokens=False)
    joined = [t for r in rows for t in r["prefix_ids"] + r["suffix_ids"]]
    assert len(rows) == len(ids) // 16 and joined == ids[: len(rows) * 16]
    assert dropped == {}


def test_drop_reasons(qwen_tok):
    docs = [
        {"id": "short", "text": "Too short to be a source."},
        {"id": "empty", "text": "   \n"},
        {"id": "table", "text": "1,234 | 5,678 | 9.10 | " * 30},
        {"id": "marked", "text": "Some text <think>already</think> here. " * 10},
        {"id": "ok", "text": "A real document with words in it. " * 20},
    ]
    rows, dropped = make_chunks(docs, qwen_tok, 16, 8, 32)
    assert dropped == {"too_short": 1, "empty": 1, "non_text": 1, "has_think_marker": 1}
    assert rows and {r["source_id"] for r in rows} == {"ok"}


def _fake_rows(n_docs, per_doc):
    return [
        {"id": f"d{d}#{k}", "source_id": f"d{d}", "prefix_ids": [1] * 3, "suffix_ids": [2] * 2}
        for d in range(n_docs)
        for k in range(per_doc)
    ]


SIZES = {"phase3_train": 4, "continuation_eval": 2, "sft_train": 8, "sft_val": 2, "rl": 2, "gate": 2}


@pytest.mark.parametrize("n_docs,per_doc", [(40, 3), (6, 10), (2, 20), (1, 20)])
def test_splits_are_deterministic_disjoint_and_sized(n_docs, per_doc):
    rows = _fake_rows(n_docs, per_doc)
    a = assign_splits(rows, SIZES, seed=3)
    assert a == assign_splits(list(reversed(rows)), SIZES, seed=3)  # input order does not matter
    assert list(a) == list(SPLIT_ORDER)
    assert {k: len(v) for k, v in a.items()} == SIZES
    ids = [r["id"] for v in a.values() for r in v]
    assert len(ids) == len(set(ids))
    if n_docs >= len(SIZES):  # enough documents: no document feeds two splits
        owners = {}
        for name, rs in a.items():
            for r in rs:
                assert owners.setdefault(r["source_id"], name) == name
    assert a != assign_splits(rows, SIZES, seed=4) or n_docs == 1


def test_splits_spread_over_documents():
    a = assign_splits(_fake_rows(100, 5), SIZES, seed=0)
    assert len({r["source_id"] for r in a["sft_train"]}) == SIZES["sft_train"]


def test_too_few_rows_names_split_and_params():
    rows = _fake_rows(3, 5)  # 15 rows; phase3 4 + cont 2 + sft 8 = 14, sft_val needs 2
    with pytest.raises(InputError) as e:
        assign_splits(rows, SIZES, seed=0)
    msg = str(e.value)
    assert "chunks.sft_val" in msg and "15 rows" in msg and "only 1" in msg
    assert "chunks.max_sources" in msg and "chunks.min_source_tokens" in msg


def test_split_sizes_and_stats():
    sizes = split_sizes(ChunkParams())
    assert list(sizes) == list(SPLIT_ORDER) and sizes["sft_train"] == 64
    a = assign_splits(_fake_rows(40, 3), SIZES, seed=0)
    assert split_stats(a)["sft_train"] == {"rows": 8, "tokens": 40}


def test_first_only_keeps_one_window_at_the_document_start(qwen_tok):
    text = " ".join(f"Sentence number {i} talks about rivers and hills." for i in range(40))
    rows, _ = make_chunks([{"id": "d", "text": text}], qwen_tok, 10, 6, 16, first_only=True)
    ids = qwen_tok.encode(text, add_special_tokens=False)
    assert len(rows) == 1 and rows[0]["prefix_ids"] == ids[:10] and rows[0]["suffix_ids"] == ids[10:16]
