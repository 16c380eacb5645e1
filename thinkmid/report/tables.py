"""One function per results table: artifacts in (already checked by inputs.py), markdown out.

Row order always comes from the fixed arm/benchmark/condition tuples, then sorted extras, never from
JSON dict order, so reruns on unchanged inputs are byte-identical.
"""

from __future__ import annotations

from pathlib import Path

from thinkmid.report.fmt import count, d6, delta_ci, f1, f2, f4, f6, flag, md_table, pct, spec_table, text
from thinkmid.report.inputs import (
    GATE_ARMS,
    GO_NO_GO_KEYS,
    PROBE_CONDITIONS,
    RLMT_ARMS,
    SFT_ARMS,
    input_paths,
)

# Reasoning tables and gate pairs group each lineage before/after RLMT, as the record does.
LINEAGE_ARMS = ("think_base", "think_base_rlmt", "think_phase3", "think_phase3_rlmt")
_SHOWN = input_paths(Path("reports"))  # relative paths only, so the text never depends on where it ran


def not_run(*names: str) -> str:
    return (
        "Not run: " + ", ".join(f"`{_SHOWN.get(n, n)}`" for n in names) + " not found."
    )  # an arm beyond the defaults: its name


def ordered(keys, known) -> list:
    """Known keys in their fixed order, then any others sorted."""
    keys = set(keys)
    return [k for k in known if k in keys] + sorted(keys - set(known))


def kv_table(rows: list[tuple[str, str]]) -> str:
    return md_table(["Metric", "Value"], [list(r) for r in rows], ["l", "r"])


# --- Phase 3 -----------------------------------------------------------------------------------------


def phase3_headline(m: dict | None) -> str:
    if m is None:
        return not_run("eval_continuations")
    line = (
        f"Phase 3 model against the base model, continuations of held-out prefixes judged once each in a "
        f"random A/B order (the record's measure): wins **{count(m['wins'])}/{count(m['comparisons'])} = "
        f"{pct(m['win_rate'])}** (95% interval {pct(m['win_rate_lo'])} to {pct(m['win_rate_hi'])}). Raw suffix "
        f"NLL, base -> phase3: **{f2(m['base_suffix_nll'])} -> {f2(m['phase3_suffix_nll'])}**. Judged in both "
        f"orders (a win must win both; stricter): {count(m['both_orders_wins'])}/{count(m['prefixes'])} = "
        f"{pct(m['both_orders_win_rate'])}."
    )
    cols = [
        ("Wins", "wins", count),
        ("Losses", "losses", count),
        ("Invalid", "invalid", count),
        ("Comparisons", "comparisons", count),
        ("Win Rate", "win_rate", f6),
        ("Win Rate Lo", "win_rate_lo", f6),
        ("Win Rate Hi", "win_rate_hi", f6),
        ("Base Suffix NLL", "base_suffix_nll", f6),
        ("Phase3 Suffix NLL", "phase3_suffix_nll", f6),
        ("Both-Orders Wins", "both_orders_wins", count),
        ("Both-Orders Losses", "both_orders_losses", count),
        ("Both-Orders Ties", "both_orders_ties", count),
        ("Both-Orders Win Rate", "both_orders_win_rate", f6),
        ("Prefixes", "prefixes", count),
    ]
    return line + "\n\n" + spec_table(cols, [m])


def phase3_training(m: dict | None) -> str:
    if m is None:
        return not_run("self_improve")
    return kv_table(
        [
            ("Steps", count(m["steps"])),
            ("DPO Loss", f6(m["dpo_loss"])),
            ("Reward Margin", f6(m["reward_margin"])),
            ("Reward Accuracy", f4(m["reward_accuracy"])),
            ("Chosen Is Rollout Rate", f4(m["chosen_is_rollout_rate"])),
            ("Original Suffix Mean Score", f6(m["original_suffix_mean_score"])),
            ("Rollout Mean Score", f6(m["rollout_mean_score"])),
            ("Skipped Prefixes", count(m["skipped_prefixes"])),
            ("Invalid Judgments", count(m["invalid_judgments"])),
            ("Wall Time s", f2(m["wall_time_s"])),
        ]
    )


# --- data and teacher audit --------------------------------------------------------------------------


def data_audit(chunks: dict | None, teacher: dict | None) -> str:
    parts = ["### Chunks", ""]
    if chunks is None:
        parts.append(not_run("prepare_chunks"))
    else:
        splits = ordered(chunks["splits"], ())
        rows = [[s, count(chunks["splits"][s]["rows"]), count(chunks["splits"][s]["tokens"])] for s in splits]
        rows.append(
            [
                "total",
                count(sum(chunks["splits"][s]["rows"] for s in splits)),
                count(sum(chunks["splits"][s]["tokens"] for s in splits)),
            ]
        )
        parts.append(md_table(["Split", "Rows", "Tokens"], rows))
        if chunks["dropped"]:
            dropped = [[r, count(chunks["dropped"][r])] for r in sorted(chunks["dropped"])]
            parts += ["", md_table(["Dropped Because", "Sources"], dropped)]
    parts += ["", "### Teacher thoughts", ""]
    if teacher is None:
        parts.append(not_run("teacher_thoughts"))
    else:
        parts.append(
            kv_table(
                [
                    ("Rows In", count(teacher["rows_in"])),
                    ("Rows Kept", count(teacher["rows_kept"])),
                    ("Rows Dropped", count(teacher["rows_dropped"])),
                    ("Thoughts per Row (mean)", f2(teacher["thoughts_per_row_mean"])),
                    ("Median Thought Words", f1(teacher["median_thought_words"])),
                    ("Thought Token Share", f4(teacher["thought_token_share"])),
                ]
            )
        )
        reasons = teacher["drop_reasons"] or {}
        if reasons:
            parts += ["", md_table(["Drop Reason", "Rows"], [[r, count(reasons[r])] for r in sorted(reasons)])]
    return "\n".join(parts)


# --- SFT and RLMT ------------------------------------------------------------------------------------


def _nll(rec: dict) -> str:
    return f"{f6(rec['thought_token_nll_before'])} -> {f6(rec['thought_token_nll_after'])}"


def sft_table(sft: dict[str, dict]) -> str:
    arms = ordered(sft, SFT_ARMS)
    # Checkpoint is our model directory; Primary Metric names the metric whose value is Selected
    # (the record's rows carry no number in that column: Selected equals Val Loss in each).
    recs = [
        dict(
            sft[a],
            _nll=_nll(sft[a]),
            _ckpt=sft[a].get("checkpoint") or f"models/sft_{a}",
            _primary=sft[a].get("primary_metric", "val_loss"),
        )
        for a in arms
    ]
    cols = [
        ("Checkpoint", "_ckpt", text),
        ("Primary Metric", "_primary", text),
        ("Val Loss", "val_loss", f6),
        ("Raw Val Loss", "raw_val_loss", f6),
        ("Selected", "selected_metric", f6),
        ("Repetition 4-gram Rate", "repetition_4gram_rate", f6),
        ("Tokens Seen", "tokens_seen", count),
        ("Throughput tok/s", "throughput_tok_s", f2),
        ("Min Available Mem GiB", "min_available_mem_gib", f2),
        ("Thought-token NLL before -> after", "_nll", str),
        ("Steps", "steps", count),
        ("Wall Time s", "wall_time_s", f2),
    ]
    return spec_table(cols, recs, ("Arm", [f"{a} SFT" for a in arms]))


def rlmt_table(rlmt: dict[str, dict]) -> str:
    arms = ordered(rlmt, RLMT_ARMS)
    cols = [
        ("Completed Steps", "completed_steps", count),
        ("Stopped Reason", "stopped_reason", text),
        ("Avg Reward", "avg_reward", f6),
        ("Final Reward", "final_reward", f6),
        ("Avg Mixed Groups", "avg_mixed_groups", f4),
        ("Avg Near-Zero Groups", "avg_near_zero_groups", f4),
        ("Avg All-Zero Groups", "avg_all_zero_groups", f4),
        ("Avg All-One Groups", "avg_all_one_groups", f4),
        ("Invalid Judge", "invalid_judge_rate", f4),
        ("Avg Length Drift", "avg_length_drift", f6),
        ("Avg Artifact Rate", "avg_artifact_rate", f6),
        ("Wall Time s", "wall_time_s", f2),
        ("Final Checkpoint", "_ckpt", text),
    ]
    recs = [dict(rlmt[a], _ckpt=rlmt[a].get("final_checkpoint") or f"models/{a}_rlmt") for a in arms]
    return spec_table(cols, recs, ("Arm", [f"{a} RLMT" for a in arms]))


# --- reward gate -------------------------------------------------------------------------------------


def gate_table(gate: dict) -> str:
    arms = ordered(gate["arms"], GATE_ARMS)
    cols = [
        ("Reward Mean", "reward_mean", f6),
        ("Reward Std", "reward_std", f6),
        ("Invalid Rate", "invalid_rate", f4),
        ("Mixed Groups", "mixed_groups", f6),
        ("Near-Zero Groups", "near_zero_groups", f6),
        ("Any-Success Groups", "any_success_groups", f6),
        ("All-Success Groups", "all_success_groups", f4),
        ("Avg Total New Tokens", "avg_total_new_tokens", f4),
        ("Avg Predicted Suffix Words", "avg_predicted_suffix_words", f4),
        ("Closed Think Rate", "closed_think_rate", f4),
    ]
    return spec_table(cols, [gate["arms"][a] for a in arms], ("Arm", arms))


SEED_GATE_COLUMNS = [
    ("Mean Group Reward", "mean_group_reward", f6),
    ("Mean Group Std", "mean_group_std", f6),
    ("Mean Group Range", "mean_group_range", f6),
    ("Reward Min", "reward_min", f4),
    ("Reward Max", "reward_max", f4),
    ("Autonomous Closed Think Rate", "autonomous_closed_think_rate", f4),
    ("Avg Thought Words When Closed", "avg_thought_words_when_closed", f4),
]


def gate_seed_fields(gate: dict) -> str:
    """The seed's other per-arm gate fields (mean_group_std feeds phase3_more_reward_separable)."""
    arms = ordered(gate["arms"], GATE_ARMS)
    if not all(k in gate["arms"][a] for a in arms for _, k, _ in SEED_GATE_COLUMNS):
        return "Not recorded in `reports/reward_gate/summary.json`."
    return spec_table(SEED_GATE_COLUMNS, [gate["arms"][a] for a in arms], ("Arm", arms))


def gate_pair_order() -> list[str]:
    """`<right>_minus_<left>` for every pair of gate arms, left before right in LINEAGE_ARMS."""
    return [f"{r}_minus_{l}" for i, l in enumerate(LINEAGE_ARMS) for r in LINEAGE_ARMS[i + 1 :]]


def gate_comparisons(gate: dict) -> str:
    names = ordered(gate["comparisons"], gate_pair_order())
    cols = [
        ("Mean Reward Delta", "mean_reward_delta", f6),
        ("Right Better Prefix Rate", "right_better_prefix_rate", f6),
        ("Left Better Prefix Rate", "left_better_prefix_rate", f6),
        ("Tie Prefix Rate", "tie_prefix_rate", f6),
        ("Shared Prefixes", "shared_prefixes", count),
        ("Mean Reward Delta 95% CI (paired, over prefixes)", "_ci", str),
    ]
    recs = [
        dict(c, _ci=delta_ci(c.get("mean_reward_delta_ci95_low"), c.get("mean_reward_delta_ci95_high")))
        for c in (gate["comparisons"][n] for n in names)
    ]
    return spec_table(cols, recs, ("Comparison", names))


def go_no_go(gate: dict) -> str:
    """Each check's boolean, then what it decides on with a 95% cluster bootstrap interval over prefixes."""
    from thinkmid.evals.reward_gate import evidence_text

    g, ivs = gate["go_no_go"], gate.get("go_no_go_intervals") or {}
    rows = [
        [k, flag(g[k]), "; ".join(evidence_text(e) for e in ivs.get(k, [])) or "n/a"] for k in ordered(g, GO_NO_GO_KEYS)
    ]
    return md_table(["Check", "Result", "Decided on (95% interval)"], rows, ["l", "l", "l"])


# --- thought-use probe -------------------------------------------------------------------------------


def probe_table(probe: dict | None) -> str:
    if probe is None:
        return not_run("thought_probe")
    rows = []
    for arm in ordered(probe["arms"], GATE_ARMS):
        a = probe["arms"][arm]
        for cond in ordered(a["conditions"], PROBE_CONDITIONS):
            c = a["conditions"][cond]
            rows.append(
                [
                    arm,
                    cond,
                    f6(c["reward_mean"]),
                    f6(c.get("reward_std")),
                    f6(c.get("prefix_mean_reward")),
                    f6(c.get("any_success_prefix_rate")),
                    f6(c.get("all_success_prefix_rate")),
                    count(c["n"]),
                ]
            )
    return md_table(
        [
            "Arm",
            "Thought",
            "Reward Mean",
            "Reward Std",
            "Prefix Mean Reward",
            "Any-Success Prefix Rate",
            "All-Success Prefix Rate",
            "n",
        ],
        rows,
        ["l", "l"] + ["r"] * 6,
    )


def probe_deltas(probe: dict | None) -> str:
    if probe is None:
        return not_run("thought_probe")
    rows = []
    for arm in ordered(probe["arms"], GATE_ARMS):
        deltas = probe["arms"][arm]["causal_deltas"]
        names = ordered(deltas, [f"normal_minus_{c}" for c in PROBE_CONDITIONS])
        for name in names:
            d = deltas[name]
            rows.append(
                [
                    arm,
                    name,
                    d6(d["mean_delta"]),
                    f6(d["normal_better_prefix_rate"]),
                    f6(d["condition_better_prefix_rate"]),
                    f6(d["tie_prefix_rate"]),
                    count(d["shared_prefixes"]),
                    delta_ci(d.get("mean_delta_ci95_low"), d.get("mean_delta_ci95_high")),
                ]
            )
    return md_table(
        [
            "Arm",
            "Delta",
            "Mean Delta",
            "Normal Better Prefix Rate",
            "Condition Better Prefix Rate",
            "Tie Prefix Rate",
            "Shared Prefixes",
            "Mean Delta 95% CI (paired, over prefixes)",
        ],
        rows,
        ["l", "l"] + ["r"] * 6,
    )
