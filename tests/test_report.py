"""The README's result tables are the ones lfm.report generates from results/ (no hand-copied numbers)."""

import pytest

from lfm import report


def test_readme_tables_match_the_result_files():
    if not report.tables():
        pytest.skip("no results/evaluate.json in the new format yet")
    stale = report.check_readme()
    assert not stale, f"README tables {stale} differ from results/: run `python -m lfm.report --write`"


def test_protocol_table_puts_targets_next_to_the_previous_checkpoint():
    def res(ratio, name):
        means = [{"role": "train", "protocol": "realistic", "graph": "trained", "ratio_refl": ratio,
                  "max_ratio_refl": ratio, "model_det": 0.2, "model_refl": 0.2, "ratio_det": ratio, "sets": 2,
                  "worst_set": "a"}]
        return {"means": means, "checkpoint": f"lfm/checkpoints/{name}.pt", "rows": []}

    t = report.protocol_table(res(0.25, "new"), res(0.4, "old"))
    line = next(ln for ln in t.splitlines() if ln.startswith("| in-distribution mean"))
    assert line == "| in-distribution mean | <= 0.3 x flat | 0.400 | 0.250 | yes |"
    assert "| leave-category-out mean | <= 0.6 x flat | – | – | not run |" in t
    with pytest.raises(ValueError, match="report:means"):
        report._replace("no markers here", "means", "x")
