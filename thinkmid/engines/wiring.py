"""What each stage samples from and who judges it: its parts, in the order it uses them.

A stage lists its parts with `wiring(params, arm)` (a `policy` engine per model it samples from, a
`judge`, a `reference_judge`, a `teacher`) and builds each with `build(part, params, ...)`, which
brings up the part's server first when it has one (thinkmid/engines/servers.py: attached when a
healthy one already serves that model on the role's port, else started on 127.0.0.1, stopped after
only when started here). tests/stages/test_profile_wiring.py builds every part of every stage of
every profile through a recording launcher and checks which servers start, with which model, on
which port, and that the engines and judges talk to them.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

KINDS = ("policy", "judge", "reference_judge", "teacher")


@dataclass(frozen=True)
class Part:
    kind: str  # one of KINDS
    model: str | None = None  # policy: the model dir sampled from; others: their params name the model
    trains: bool = False  # policy: the stage trains this model and syncs the engine after updates
    label: str = ""  # e.g. the arm

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown part kind {self.kind!r}; expected one of {KINDS}")
        if self.kind == "policy" and not self.model:
            raise ValueError("a policy part names the model dir it samples from")


def policy(model_dir: str, trains: bool = False, label: str = "") -> Part:
    return Part("policy", str(model_dir), trains, label)


@contextlib.contextmanager
def build(part: Part, params, model=None, tokenizer=None, progress: bool = True):
    """The part's engine / judge / teacher for the block (its server up first, if it has one).

    `model`, `tokenizer`: the policy model for `policy` (sampled in process by `hf`), the model an
    `lm`/`likelihood` pairwise judge uses, the teacher model for an `lm` teacher (loaded from its
    path when not given)."""
    if part.kind == "policy":
        from thinkmid.engines.factory import engine_for

        with engine_for(params.engine, model, tokenizer, part.model, progress=progress, trains=part.trains) as eng:
            yield eng
    elif part.kind == "judge":
        from thinkmid.judges.factory import pairwise_judge_for

        with pairwise_judge_for(params, model, tokenizer) as judge:
            yield judge
    elif part.kind == "reference_judge":
        from thinkmid.judges.factory import reference_judge_for

        with reference_judge_for(params) as judge:
            yield judge
    else:
        with teacher_for(params, model, tokenizer) as teacher:
            yield teacher


def teacher_model(params) -> str:
    tp = params.teacher_thoughts
    if tp.backend == "endpoint":
        return tp.endpoint.server.model or tp.model_path or "models/base"
    return tp.model_path or "models/base"


@contextlib.contextmanager
def teacher_for(params, model=None, tokenizer=None):
    """`endpoint`: a chat teacher on the teacher's server (port 30003 by default). `lm`: the teacher
    model (teacher_thoughts.model_path, else models/base) through the generation engine."""
    from thinkmid.data.teacher import ChatTeacher, EngineTeacher

    tp = params.teacher_thoughts
    path = teacher_model(params)
    if tp.backend == "endpoint":
        from thinkmid.engines.openai import HTTPClient
        from thinkmid.engines.servers import serve, spec_for

        ep = tp.endpoint
        with serve(spec_for("teacher", ep, path)) as handle:
            url = handle.base_url if handle is not None else ep.base_url
            name = handle.served_model if handle is not None else ep.model
            client = HTTPClient(
                url, ep.api_key_env, ep.timeout_s, ep.max_retries, ep.backoff_s, params.engine.batch_size
            )
            teacher = ChatTeacher(client, name, tp.thought_max_tokens, tp.temperature, tp.top_p, tp.rewrite_max_tokens)
            teacher.server = handle
            try:
                yield teacher
            finally:
                client.close()
        return
    if model is None:
        from thinkmid.engines.factory import pick_device
        from thinkmid.models.load import load_model

        model, tokenizer = load_model(path, dtype=params.base.dtype)
        model.to(pick_device())
    with build(policy(path, label="teacher"), params, model, tokenizer) as eng:
        yield EngineTeacher(
            eng, tokenizer, tp.thought_max_tokens, tp.temperature, params.seed, tp.top_p, tp.rewrite_max_tokens
        )
