"""lfm.plots: the same figure gives the same bytes (PNG and PDF), the style is applied, reference lines are grey."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from lfm import plots  # noqa: E402


def figure():
    t = pd.DataFrame({"realistic": [0.3, 0.5, 0.9], "SO(3)": [0.8, 0.95, 1.1]}, index=["dog", "chair", "human41"])
    return plots.ratio_bars(t, title="test", targets={"target": 0.3})


def test_savefig_is_byte_stable(tmp_path):
    a = plots.savefig(figure(), tmp_path / "a.png")
    b = plots.savefig(figure(), tmp_path / "b.png")
    plt.close("all")
    assert [p.suffix for p in a] == [".png", ".pdf"]
    for x, y in zip(a, b):
        assert x.read_bytes() == y.read_bytes(), x.name
    assert b"CreationDate" not in a[1].read_bytes()  # no date in the PDF


def test_reference_lines_are_not_data_colours():
    fig = figure()
    ax = fig.axes[0]
    lines = [ln for ln in ax.get_lines() if ln.get_linestyle() in (":", "--")]  # vertical reference lines
    assert len(lines) == 2
    data = {matplotlib.colors.to_hex(p.get_facecolor()) for p in ax.patches}
    assert not data & {matplotlib.colors.to_hex(ln.get_color()) for ln in lines}
    assert ax.get_xlabel() and "flat" in ax.get_xlabel()
    legend = ax.get_legend()
    assert legend is not None and legend.get_bbox_to_anchor().x0 > ax.get_window_extent().x1 - 1  # outside the data
    plt.close("all")
