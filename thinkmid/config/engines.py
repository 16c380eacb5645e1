"""Params of the policy engine, its local servers and the judges (pairwise, reference, in-process)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from thinkmid.config.section import Section


class ServerParams(Section):
    """A local OpenAI-compatible server on 127.0.0.1 for one role (thinkmid/engines/servers.py).

    The stage attaches to a healthy server already serving `model` on `port`, else starts one with
    `launch` (SGLang or `transformers serve`), and stops only what it started. `launch: none` means
    attach only. Each role has its own default port: policy engine 30000, pairwise judge 30001,
    reference judge 30002, teacher 30003.
    """

    launch: Literal["none", "sglang", "transformers"] = "none"
    model: str | None = None  # hub id or local dir the server serves; None: the role's default model
    port: int | None = Field(None, ge=1024, le=65535)  # None: the role's default port
    startup_timeout_s: float = Field(600.0, gt=0)
    extra_args: list[str] = []

    @field_validator("extra_args")
    @classmethod
    def _loopback_only(cls, v: list[str]) -> list[str]:
        if any(a == "--host" or a.startswith("--host=") for a in v):
            raise ValueError("--host is not allowed: local servers bind 127.0.0.1 only")
        if any(a in ("--model-path", "--model") or a.startswith(("--model-path=", "--model=")) for a in v):
            raise ValueError("the served model is `server.model`, not an extra argument")
        if any(a == "--port" or a.startswith("--port=") for a in v):
            raise ValueError("the port is `server.port`, not an extra argument")
        return v


class EndpointParams(Section):
    base_url: str | None = None  # None: the role's local server, http://127.0.0.1:<port>/v1
    model: str = "default"  # the `model` field sent with each request to a server this lab did not start
    api_key_env: str = "THINKMID_API_KEY"  # the key itself is only ever read from the environment
    timeout_s: float = Field(60.0, gt=0)
    max_retries: int = Field(3, ge=0)
    backoff_s: float = Field(0.5, ge=0)
    server: ServerParams = ServerParams()

    @model_validator(mode="after")
    def _one_address(self):
        if self.base_url is not None and self.server.launch != "none":
            raise ValueError(
                f"base_url ({self.base_url}) names an external server but server launch is "
                f"{self.server.launch!r} (a local one, at http://127.0.0.1:<port>/v1): set one of the two"
            )
        return self


class EngineParams(Section):
    backend: Literal["hf", "openai"] = "hf"
    batch_size: int = Field(32, ge=1)
    endpoint: EndpointParams = EndpointParams()
    reload_every: int = Field(10, ge=1)  # server engine: push the trained weights every N updates

    @model_validator(mode="after")
    def _own_server(self):
        srv = self.endpoint.server
        if srv.model is not None:
            raise ValueError(
                "engine.endpoint.server.model: the policy server serves each stage's own model "
                "(base, phase3, each arm); leave it unset"
            )
        if self.backend == "openai" and srv.launch == "none":
            raise ValueError(
                "engine.endpoint.server.launch: 'none' with engine.backend 'openai' would sample every arm "
                "(base and phase3, each SFT/RLMT arm) and every trained policy from one external model; set it to "
                "sglang or transformers (a healthy server already serving the stage's model on the port is attached)"
            )
        return self


class InprocessJudgeParams(Section):
    """`inprocess` judge backend (thinkmid/judges/inprocess.py): the judge model on the GPU beside the
    policy, verdict read at a forced JSON opening, shared prompt blocks computed once."""

    temperature: float = Field(0.7, ge=0)  # the seed's judge decoding
    top_p: float = Field(0.6, gt=0, le=1)  # nucleus over the full vocabulary, then drawn among verdict tokens
    share: Literal["all", "head", "none"] = "all"  # cut before every candidate / the first only / never
    max_batch_tokens: int = Field(131072, ge=256)  # packed tokens per forward
    prompt: str | None = None  # prompts/<name>.txt; None: pairwise_quality / reference_match
    dtype: Literal["float32", "bfloat16", "float16"] = "bfloat16"  # when loaded from model_path
    seed: int = 0
    fp8: bool = False  # fp8 linear layers (CUDA sm89+); only once verdicts match bf16 on a check set


class JudgeParams(Section):
    backend: Literal["lm", "likelihood", "endpoint", "lexical", "inprocess"] = "lm"
    # `lm`/`likelihood`/`inprocess`: judge with the base model, a model dir, or hub_id at revision
    # (loaded like base.source hub: the hub or its cache, HF_HUB_OFFLINE=1 for the cache only);
    # `endpoint`: a local server serves endpoint.server.model, else model_path / hub_id
    model: Literal["base", "path", "hub"] = "base"
    model_path: str | None = None
    hub_id: str | None = None
    revision: str = "main"
    calibrate: bool = True  # `lm`: subtract the option bias measured on a content-free pair
    lexical_threshold: float = Field(0.3, ge=0, le=1)
    lexical_metric: Literal["f1", "rouge_l"] = "f1"
    # Decoding of an endpoint judge's verdict (the seed: T 0.7, top_p 0.6, 64 tokens).
    temperature: float = Field(0.0, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    max_tokens: int = Field(32, ge=1)
    batch_size: int = Field(8, ge=1)
    endpoint: EndpointParams = EndpointParams()
    max_invalid_rate: float = Field(0.5, ge=0, le=1)
    inprocess: InprocessJudgeParams = InprocessJudgeParams()

    @model_validator(mode="after")
    def _model_source(self):
        if self.model == "hub" and not self.hub_id:
            raise ValueError("model is 'hub' but hub_id is not set (e.g. Qwen/Qwen3-4B-Instruct-2507)")
        return self
