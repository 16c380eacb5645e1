#!/usr/bin/env bash
# The paper lifecycle on stand-in models under `dvc repro`, each stage timed, on one GPU box.
#
#   bash benchmarks/paper_lifecycle.sh /tmp/paper-run out/ [--servers inprocess] [--rehearsal]
#
# Copies this checkout to WORKDIR (once; a second call in the same WORKDIR resumes the DAG where DVC
# left it), writes the stand-in models and params (scripts/paper_standins.py), runs the DAG under
# `dvc repro` a stage at a time (benchmarks/repro_budget.py) with a timestamp on every line of its log,
# samples GPU memory and each stage's stack, and leaves in OUTDIR: repro.log, gpu_mem.csv,
# stage_times.json (wall seconds per stage, from the log), params.yaml, dvc.lock, mlflow.db, reports.tgz
# and stacks.tgz (`python scripts/stack_summary.py` reads it, unpacked).
# `python scripts/lifecycle_work.py --measured OUTDIR ...` turns that into benchmarks/LIFECYCLE.md.
# Extra arguments go to `paper_standins.py params`. REPRO_TIMEOUT (seconds) is the call's budget: no
# stage starts that its time in ESTIMATES (a stage_times.json) cannot fit; FIRST names the stages to
# run as early as the DAG allows.
set -uo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
work=$1 out=$2
shift 2
mkdir -p "$work" "$out"
out=$(cd "$out" && pwd)
if [ ! -f "$work/dvc.yaml" ]; then
  # the checkout without build outputs or carried wheels; a fresh DVC state
  (cd "$src" && tar cf - --exclude=./.whl --exclude=./.dev --exclude=./.venv --exclude=./models --exclude=./data \
      --exclude=./reports --exclude=./checkpoints --exclude=./mlruns --exclude=./mlflow.db --exclude=./standins \
      --exclude=./dvc.lock --exclude=./.dvc/tmp --exclude=./.dvc/cache .) | (cd "$work" && tar xf -)
  cd "$work"
  if [ ! -d .git ]; then
    if command -v git >/dev/null; then git init -q && git add -A >/dev/null && git -c user.name=run -c user.email=run@local commit -qm run
    else dvc config --local core.no_scm true; fi
  fi
  rehearsal=""; for a in "$@"; do [ "$a" = --rehearsal ] && rehearsal=--rehearsal; done
  python3 scripts/paper_standins.py models $rehearsal || exit
  python3 scripts/paper_standins.py params "$@" || exit
fi
cd "$work"
# a repro cut by REPRO_TIMEOUT can leave DVC's lock behind; this script owns WORKDIR, so a resume clears it
rm -f .dvc/tmp/lock .dvc/tmp/rwlock
echo "$(date +%s.0) === paper_lifecycle.sh call started" >>"$out/repro.log"
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=timestamp,memory.used,utilization.gpu --format=csv,noheader -l 2 >>"$out/gpu_mem.csv" &
  smi=$!
fi
# one stage at a time inside the call's budget (no stage cut half-way), FIRST's stages first (default: the
# one the third run did not finish, then the report's upstream); every stage process samples its own stack
# (benchmarks/stack_sampler) into $out/stacks
# The third run's stacks show every stage process compiling torch's and the wheels' sources again (~5 s
# each: no bytecode is written on that box); one bytecode cache in WORKDIR serves all stage processes
unset PYTHONDONTWRITEBYTECODE
export PYTHONPYCACHEPREFIX="${PYTHONPYCACHEPREFIX:-$PWD/.pycache}"
export THINKMID_STACKS="$out/stacks" PYTHONPATH="$PWD/benchmarks/stack_sampler${PYTHONPATH:+:$PYTHONPATH}"
python3 benchmarks/repro_budget.py --log "$out/repro.log" --budget "${REPRO_TIMEOUT:-0}" \
  --estimates "${ESTIMATES:-benchmarks/runs/2026-12-02-h200-paper-standins-run3/stage_times.json}" \
  --first ${FIRST:-abstract_thought report}
rc=$?
[ -n "${smi:-}" ] && kill "$smi" 2>/dev/null
python3 - "$out/repro.log" >"$out/stage_times.json" <<'EOF'
import json, re, sys
# Each run of a stage is the log from its "Running stage" line to the next one (or a new call's marker).
# Its wall time is that span; null when the run failed, or was cut by the call's end (no lock update).
# A later run of the same stage (a resumed call) replaces an earlier one.
marks = []  # (name or None for a call marker, time, line index)
lines = open(sys.argv[1], encoding="utf-8", errors="replace").read().splitlines()
for i, line in enumerate(lines):
    t, _, rest = line.partition(" ")
    try:
        t = float(t)
    except ValueError:
        continue
    m = re.match(r"Running stage '([^']+)'", rest)
    if m or rest.startswith("=== "):
        marks.append((m.group(1) if m else None, t, i))
end = next((float(x.partition(" ")[0]) for x in reversed(lines) if x.partition(" ")[0].replace(".", "").isdigit()), 0.0)
times = {}
for k, (name, t, i) in enumerate(marks):
    if name is None:
        continue
    nxt = marks[k + 1] if k + 1 < len(marks) else (None, end, len(lines))
    seg = "\n".join(lines[i : nxt[2]])
    stage, _, arm = name.partition("@")
    failed = re.search(rf"failed to run: python -m stages\.{stage}{' --arm ' + arm if arm else ''}(?!\w)", seg)
    finished = re.search(r"Updating lock file|didn't change", seg)
    times[name] = None if failed or not finished else round(nxt[1] - t, 1)
print(json.dumps(times, indent=1))
EOF
cp params.yaml "$out/" 2>/dev/null; cp dvc.lock "$out/" 2>/dev/null
cp mlflow.db "$out/" 2>/dev/null  # per-step timestamps: lifecycle_extra reads step times of the stages without step files
# one file (nested dirs do not travel back); per-sample JSONL left out: the metrics and timings are what the
# projection reads, and the samples of random stand-ins are large and say nothing
(cd "$out" && tar czf stacks.tgz stacks 2>/dev/null)
tar czf "$out/reports.tgz" --exclude="*.safetensors" --exclude="*.jsonl" --exclude="reports/reward_gate/samples" reports 2>/dev/null
echo "dvc repro exit $rc; outputs in $out"
exit "$rc"
