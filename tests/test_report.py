"""The README's result tables are the ones lfm.experiments.report generates from results/ (no hand-copied numbers)."""

import pytest

from lfm.experiments import report


def test_readme_tables_match_the_result_files():
    if not report.tables():
        pytest.skip("no results/evaluate.json in the new format yet")
    stale = report.check_readme()
    assert not stale, f"README tables {stale} differ from results/: run `python -m lfm.experiments.report --write`"


def test_protocol_table_puts_targets_next_to_the_previous_checkpoint():
    def res(ratio, name):
        means = [{"role": "train", "protocol": "realistic", "graph": "trained", "ratio_refl": ratio,
                  "max_ratio_refl": ratio, "model_det": 0.2, "model_refl": 0.2, "ratio_det": ratio, "sets": 2,
                  "worst_set": "a"}]
        return {"means": means, "checkpoint": f"lfm/checkpoints/{name}.pt", "rows": []}

    t = report.protocol_table(res(0.25, "new"), res(0.4, "old"))
    line = next(ln for ln in t.splitlines() if ln.startswith("| in-distribution mean"))
    assert line == "| in-distribution mean | <= 0.4 x flat | 0.400 | 0.250 | yes |"
    assert "| leave-category-out mean | <= 0.65 x flat | – | – | not run |" in t
    with pytest.raises(ValueError, match="report:means"):
        report._replace("no markers here", "means", "x")


def test_paper_table_reads_each_result_file_and_says_not_run_without_it(tmp_path, monkeypatch):
    """Every row comes from its file: an H3WB run's part means, the present/absent ratios, the TPE gain."""
    import json

    monkeypatch.setattr(report.paths, "root", lambda: tmp_path)
    (tmp_path / "results").mkdir()
    t = report.paper_table()
    assert t.count("not run") >= 5 and "| 08_h3wb |" in t
    h3 = {"status": "run on H3WB", "evaluation": {"mpjpe": {"whole_body": 70.5, "body": 61.25, "face": 50.0,
                                                            "hand": 80.125}}}
    pres = {"seeds": [0, 1], "budget": {"steps_per_run": 100},
            "tables": {"realistic": [{"absent / present det": 2.0}, {"absent / present det": 1.0}]}}
    abl = {"budget": {"max_epochs": 2, "epoch_steps": 50},
           "table": [{"lever": "baseline", "train/realistic/trained det": 0.9,
                      "rig_transfer/realistic/trained det": 0.8},
                     {"lever": "mlp_positional", "train/realistic/trained det": 1.0,
                      "rig_transfer/realistic/trained det": 1.0}]}
    for name, body in (("h3wb.json", h3), ("ood_present.json", pres), ("ablations.json", abl)):
        (tmp_path / "results" / name).write_text(json.dumps(body))
    t = report.paper_table()
    assert "70.50 / 61.25 / 50.00 / 80.12 (held-out S7)" in t
    assert "absent / present = 1.00–2.00 (mean 1.50) over 2 held-out categories, 2 seed(s), 100 steps" in t
    assert "TPE better by 10.0 % (d = 64)" in t and "(+20.0 %)" in t and "100 steps, mean over seeds" in t


def test_each_table_lives_in_exactly_one_document(tmp_path, monkeypatch):
    """write_readme fills a block wherever it is (README.md or docs/*.md); a block in two files, or in none, is a
    one-line error naming the table."""
    (tmp_path / "docs").mkdir()
    monkeypatch.setattr(report, "tables", lambda: {"a": "| x |", "b": "| y |"})
    (tmp_path / "README.md").write_text("front\n<!-- report:a -->\nold\n<!-- /report:a -->\n")
    (tmp_path / "docs" / "results.md").write_text("<!-- report:b -->\n<!-- /report:b -->\ntail\n")
    assert report.check_readme(tmp_path) == ["a", "b"]
    report.write_readme(tmp_path)
    assert (tmp_path / "README.md").read_text() == "front\n<!-- report:a -->\n| x |\n<!-- /report:a -->\n"
    assert (tmp_path / "docs" / "results.md").read_text() == "<!-- report:b -->\n| y |\n<!-- /report:b -->\ntail\n"
    assert report.check_readme(tmp_path) == []
    (tmp_path / "docs" / "more.md").write_text("<!-- report:a -->\n<!-- /report:a -->\n")
    with pytest.raises(ValueError, match="table 'a'.*exactly one"):
        report.write_readme(tmp_path)
    (tmp_path / "docs" / "more.md").unlink()
    (tmp_path / "docs" / "results.md").write_text("nothing\n")
    with pytest.raises(ValueError, match="table 'b'"):
        report.write_readme(tmp_path)


def test_the_previous_checkpoint_is_scored_on_the_current_sets():
    """v2 trained on 2 of the 3 sets v3 trained on: its in-distribution value is the mean over the same 3 sets
    (the untrained one included), not over its own 2."""
    row = lambda c, role, v: {"category": c, "role": role, "protocol": "realistic", "graph": "trained",  # noqa: E731
                              "ratio_refl": v, "ratio_det": v, "model_refl": v / 2, "model_det": v / 2,
                              "flat_refl": 0.5, "flat_det": 0.5}
    cur = {"means": [{"role": "train", "protocol": "realistic", "graph": "trained", "ratio_refl": 0.5}],
           "rows": [row("a", "train", 0.5), row("b", "train", 0.5), row("c", "train", 0.5)]}
    old = {"means": [{"role": "train", "protocol": "realistic", "graph": "trained", "ratio_refl": 0.3}],
           "rows": [row("a", "train", 0.3), row("b", "train", 0.3), row("c", "untrained", 0.9)]}
    m = report.on_the_same_sets(old, cur)["means"][0]
    assert m["sets"] == 3 and m["ratio_refl"] == pytest.approx(0.5) and m["max_ratio_refl"] == 0.9
    assert m["worst_set"] == "c" and m["model_refl"] == pytest.approx(0.25)
