"""params.yaml's arms (thinkmid/config/arms.py): defined once, each model one the lifecycle makes."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from thinkmid.config import ARMS_GATE, ARMS_RLMT, ARMS_SFT, parse_params
from thinkmid.errors import InputError

ROOT = Path(__file__).resolve().parents[1]


def test_the_default_arms_are_the_embedded_profiles():
    arms = yaml.safe_load((ROOT / "profiles" / "embedded.yaml").read_text())["arms"]
    assert (tuple(arms["sft"]), tuple(arms["rlmt"]), tuple(arms["gate"])) == (ARMS_SFT, ARMS_RLMT, ARMS_GATE)


@pytest.mark.parametrize(
    "text, match",
    [
        (
            "arms:\n  sft:\n    think_base: models/bse\n",
            r"params.yaml:3: arms.sft.think_base: unknown model path 'models/bse'",
        ),
        (  # an RLMT arm must start from an SFT arm's output
            "arms:\n  rlmt:\n    think_base: models/base\n",
            r"params.yaml:3: arms.rlmt.think_base: unknown model path 'models/base'; expected one of \['models/sft_",
        ),
        (  # dropping an SFT arm its RLMT arm starts from is caught
            "arms:\n  sft: {raw_base: models/base, think_base: models/base}\n",
            r"arms.rlmt.think_phase3: unknown model path 'models/sft_think_phase3'",
        ),
        ("knowledge_gates:\n  arms: {x: models/x}\n", r"params.yaml:2: knowledge_gates.arms.x: unknown model path"),
    ],
)
def test_an_unknown_model_path_is_one_clear_error(text, match):
    with pytest.raises(InputError, match=match):
        parse_params(text, "params.yaml")


def test_a_new_arm_over_known_models_validates():
    p = parse_params(
        "arms:\n  sft: {raw_base: models/base, think_base: models/base, think_phase3: models/phase3, "
        "think_base2: models/base}\n"
    )
    assert list(p.arms.sft) == ["raw_base", "think_base", "think_phase3", "think_base2"]
