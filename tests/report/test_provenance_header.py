"""RESULTS.md opens with where it was produced (thinkmid/provenance.py)."""

import os

from thinkmid.report import load_inputs, render_results


def test_results_page_opens_with_provenance(reports, monkeypatch):
    # The header lists every THINKMID_* switch in force: clear the caller's (e.g. THINKMID_THREADS=1)
    # so that exactly the one set here is listed, whatever environment the suite runs in.
    for k in [k for k in os.environ if k.startswith("THINKMID_")]:
        monkeypatch.delenv(k)
    monkeypatch.setenv("THINKMID_FUSED_CE", "0")
    md = render_results(load_inputs(reports), "micro")
    assert md.startswith("# thinkmid results\n\nProduced by:\n\n- Commit: `")
    head = md.split("\n## ", 1)[0]  # before the first section
    assert "- Profile: `micro`" in head and "`THINKMID_FUSED_CE=0`" in head and "- Device: " in head
    assert head.index("Produced by:") < head.index("Every table below is regenerated")
