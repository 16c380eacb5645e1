"""The lifecycle's arms, defined once: arm -> the model it starts from, for each per-arm stage group.

dvc.yaml's `foreach` reads these mappings (`${arms.sft}`, `${arms.rlmt}`, `${arms.gate}`) and each stage
takes its `--arm` choices from them, so adding or dropping an arm is a params edit. A model path must be
one the lifecycle makes: models/base, models/phase3, models/sft_<sft arm> or models/<rlmt arm>_rlmt
(an SFT arm's output is models/sft_<arm>, an RLMT arm's models/<arm>_rlmt; dvc.yaml's outs say so).
"""

from __future__ import annotations

from pydantic import model_validator

from thinkmid.config.section import Section

START_MODELS = ("models/base", "models/phase3")


def sft_model(arm: str) -> str:
    return f"models/sft_{arm}"


def rlmt_model(arm: str) -> str:
    return f"models/{arm}_rlmt"


def is_raw(arm: str) -> bool:
    """SFT arms named raw_* train on the raw chunks (the seed's raw_base control); the rest on thought chunks."""
    return arm.startswith("raw_")


class ArmsParams(Section):
    # raw_base: base on raw chunks; think_base / think_phase3: base / phase3 on thought chunks
    sft: dict[str, str] = {"raw_base": "models/base", "think_base": "models/base", "think_phase3": "models/phase3"}
    rlmt: dict[str, str] = {"think_base": sft_model("think_base"), "think_phase3": sft_model("think_phase3")}
    # reward_gate, thought_probe and reasoning_eval@<arm>: the SFT arms with thoughts and their RLMT arms
    gate: dict[str, str] = {
        "think_base": sft_model("think_base"),
        "think_phase3": sft_model("think_phase3"),
        "think_base_rlmt": rlmt_model("think_base"),
        "think_phase3_rlmt": rlmt_model("think_phase3"),
    }

    def models(self) -> list[str]:
        """Every model path the lifecycle makes with these arms."""
        return [*START_MODELS, *(sft_model(a) for a in self.sft), *(rlmt_model(a) for a in self.rlmt)]

    @model_validator(mode="after")
    def _known_models(self):
        check("arms.sft", self.sft, list(START_MODELS))
        check("arms.rlmt", self.rlmt, [sft_model(a) for a in self.sft])
        check("arms.gate", self.gate, self.models())
        return self


def check(where: str, arms: dict[str, str], known: list[str]) -> None:
    """Each arm's model is one of `known`, else one ValueError naming the arm's key and the choices."""
    if not arms:
        raise ValueError(f"{where}: no arms; name at least one (arm -> the model it starts from)")
    for arm, model in arms.items():
        if model.rstrip("/") not in known:
            raise ValueError(f"{where}.{arm}: unknown model path {model!r}; expected one of {known}")


# The embedded default's arms (the schema defaults), for tests and for the report's display order.
DEFAULT_ARMS = ArmsParams()
ARMS_SFT = tuple(DEFAULT_ARMS.sft)
ARMS_RLMT = tuple(DEFAULT_ARMS.rlmt)
ARMS_GATE = tuple(DEFAULT_ARMS.gate)
