"""Every stage in dvc.yaml declares what its module really uses (issue 16, item 3), so DVC reruns a stage
whenever an input that can change its outputs changes.

deps: every repo module the stage imports, transitively (tests/depgraph.py), sits in a declared dep
(the file, or a directory holding it). params: every params key the stage reads is declared, itself or
a section above it; a templated entry like `thoughts.arms.${key}` covers `thoughts.arms` (the stage
reads its own arm's entry). A gap fails naming the stage and the missing path or key.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from depgraph import ROOT, import_files, param_reads  # noqa: E402

# Modules that cannot change any output: exception types only.
NO_OUTPUT = {"thinkmid/errors.py"}


PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())


def lookup(key: str, node=PARAMS):
    """The value at dotted `key` in params.yaml, or KeyError."""
    for k in key.split("."):
        if not isinstance(node, dict) or k not in node:
            raise KeyError(key)
        node = node[k]
    return node


def stages() -> dict[str, dict]:
    """Stage name -> {module, deps, params, arms, foreach} from dvc.yaml (foreach read from params.yaml)."""
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    out = {}
    for name, st in dvc.items():
        body, fe = st.get("do", st), st.get("foreach", {None: None})
        if isinstance(fe, str):  # ${a.b}: a mapping in params.yaml
            fe = lookup(re.fullmatch(r"\$\{(.+)\}", fe.strip()).group(1))
        module = re.search(r"python -m (stages\.\w+)", body["cmd"]).group(1)
        out[name] = {"module": module, "deps": body.get("deps", []), "params": body.get("params", []), "foreach": fe}
        out[name]["arms"] = list(fe)
    return out


def resolve(text: str, key, item) -> str:
    """A dvc.yaml entry with ${key} and ${item} / ${item.<field>} filled in for one foreach arm."""
    text = text.replace("${key}", str(key)).replace("${item}", str(item))
    return re.sub(r"\$\{item\.(\w+)\}", lambda m: str(item[m.group(1)]), text)


STAGES = stages()


def dep_gaps(files: list[str], deps: list[str]) -> list[str]:
    plain = [str(d).rstrip("/") for d in deps if "${" not in str(d)]
    return [f for f in files if f not in NO_OUTPUT and not any(f == d or f.startswith(d + "/") for d in plain)]


def param_gaps(reads: set[str], declared: list) -> list[str]:
    keys = []
    for d in declared:
        if isinstance(d, dict):  # {file: [keys]}: another params file
            continue
        keys.append(str(d).split(".${")[0])  # templated: its arm's entry of the mapping above it
    return sorted(r for r in reads if not any(r == k or r.startswith(k + ".") for k in keys))


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_declares_every_module_it_imports(name):
    st = STAGES[name]
    gaps = dep_gaps(import_files(st["module"]), st["deps"])
    assert not gaps, f"dvc.yaml stage {name!r} ({st['module']}) imports {gaps} but declares no dep covering them"


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_declares_every_param_it_reads(name):
    st = STAGES[name]
    gaps = param_gaps(param_reads(st["module"], st["arms"]), st["params"])
    assert not gaps, f"dvc.yaml stage {name!r} ({st['module']}) reads params {gaps} but does not declare them"


@pytest.mark.parametrize("name", sorted(STAGES))
def test_every_declared_param_is_in_params_yaml(name):
    """DVC stops a stage whose declared param is missing from params.yaml (a schema default is not
    enough), so every declared key, per arm, must be written there."""
    st = STAGES[name]
    missing = []
    for key, item in st["foreach"].items():
        for p in st["params"]:
            if isinstance(p, str):
                try:
                    lookup(resolve(p, key, item))
                except KeyError:
                    missing.append(resolve(p, key, item))
    assert not missing, f"dvc.yaml stage {name!r} declares params {sorted(set(missing))} that params.yaml lacks"


def test_a_removed_dep_and_param_are_reported():
    """The check can fail: drop a dep and a param of a real stage and each gap is named."""
    st = STAGES["sft"]
    files = import_files(st["module"])
    assert "thinkmid/train/recipe.py" in files and "thinkmid/config/params.py" in files
    deps = [d for d in st["deps"] if d != "thinkmid/train"]
    assert "thinkmid/train/recipe.py" in dep_gaps(files, deps)
    reads = param_reads(st["module"], st["arms"])
    assert {"sft.lr", "seed"} <= reads
    assert "sft.lr" in param_gaps(reads, [p for p in st["params"] if p != "sft"])
    assert param_gaps({"thoughts.arms"}, ["thoughts.arms.${key}"]) == []


def test_reads_follow_params_into_the_library():
    """A section passed to a library function counts by what that function reads (here the judge
    factory's reference judge, reached through the stage's wiring parts)."""
    reads = param_reads("stages.reward_gate")
    assert {"reference_judge.backend", "prefixes.min_before", "rlmt.top_p"} <= reads
    assert not any(r.startswith(("judge.", "teacher_thoughts")) for r in reads)  # parts it does not build


def test_stages_over_all_gate_arms_depend_on_each_arm_model():
    """reward_gate and thought_probe read every arm of params.yaml's arms.gate; DVC cannot expand a
    mapping into deps, so they list the models by hand: each must be there."""
    models = lookup("arms.gate").values()
    for name in ("reward_gate", "thought_probe"):
        missing = [m for m in models if m not in STAGES[name]["deps"]]
        assert not missing, f"dvc.yaml stage {name!r} reads arms.gate but does not depend on {missing}"
