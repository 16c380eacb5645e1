"""A poor man's sampling profiler for every stage process of a benchmark run (no ptrace, no packages).

benchmarks/paper_lifecycle.sh puts this directory first on PYTHONPATH and sets THINKMID_STACKS to a
folder; each `python -m stages.<name>` process then samples its main thread's stack every
THINKMID_STACKS_INTERVAL seconds (default 0.25) and writes the counts as collapsed stacks
("frame;frame;... count", the flame-graph format) to THINKMID_STACKS/<stage>[@arm]-<pid>.txt, every
30 s and at exit, with the seconds since interpreter start on the first line.
`python scripts/stack_summary.py THINKMID_STACKS` says where each stage's time went.
Without THINKMID_STACKS this file does nothing. Another sitecustomize further down the path still runs.
"""

import os
import sys


def _chain() -> None:
    # Python imports only the first sitecustomize on the path; run the one this file shadows
    import importlib.util

    here = os.path.dirname(os.path.abspath(__file__))
    for d in sys.path:
        p = os.path.join(d or ".", "sitecustomize.py")
        if os.path.abspath(d or ".") != here and os.path.isfile(p):
            spec = importlib.util.spec_from_file_location("_shadowed_sitecustomize", p)
            spec.loader.exec_module(importlib.util.module_from_spec(spec))
            return


def _start(out: str) -> None:
    import atexit
    import collections
    import threading
    import time

    t0 = time.time()
    interval = float(os.environ.get("THINKMID_STACKS_INTERVAL", "0.25"))
    main = threading.main_thread().ident
    counts: collections.Counter = collections.Counter()
    state = {"last": time.time()}

    def name():
        # sys.argv is ['-m', ...] at startup; runpy puts the module's path in argv[0] before it runs
        mod = sys.argv[0] if sys.argv else ""
        if f"{os.sep}stages{os.sep}" not in mod:
            return None
        stage = os.path.splitext(os.path.basename(mod))[0]
        arm = sys.argv[sys.argv.index("--arm") + 1] if "--arm" in sys.argv[:-1] else ""
        return f"{stage}@{arm}" if arm else stage

    def flush():
        n = name()
        if n is None or not counts:
            return
        path = os.path.join(out, f"{n}-{os.getpid()}.txt")
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            f.write(f"# wall_s {time.time() - t0:.2f} interval_s {interval}\n")
            f.writelines(f"{k} {v}\n" for k, v in counts.most_common())
        os.replace(path + ".tmp", path)

    def frames(f):
        out = []
        while f is not None:
            c = f.f_code
            out.append(f"{c.co_name} ({c.co_filename.rsplit('site-packages/', 1)[-1]}:{f.f_lineno})")
            f = f.f_back
        return ";".join(reversed(out))

    def loop():
        while True:
            time.sleep(interval)
            f = sys._current_frames().get(main)
            if f is None:
                return
            counts[frames(f)] += 1
            if time.time() - state["last"] > 30:
                state["last"] = time.time()
                flush()

    threading.Thread(target=loop, name="stack-sampler", daemon=True).start()
    atexit.register(flush)


if os.environ.get("THINKMID_STACKS"):
    os.makedirs(os.environ["THINKMID_STACKS"], exist_ok=True)
    _start(os.environ["THINKMID_STACKS"])
_chain()
