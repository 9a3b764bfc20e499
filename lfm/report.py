"""The README's result tables, generated from the committed result files (``python -m lfm.report``).

Each table is written between ``<!-- report:NAME -->`` and ``<!-- /report:NAME -->`` markers in README.md;
``python -m lfm.report --write`` refreshes them, and ``tests/test_report.py`` fails when README and ``results/``
disagree. Sources: ``results/evaluate.json`` (the checkpoint of the paper run, by default the shipped one),
``results/evaluate_v1.json`` (the previous shipped checkpoint on the same benchmark), ``results/ablations.json``,
``results/occlusion.json`` where present.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from . import paths

__all__ = ["tables", "write_readme", "check_readme"]


def _load(name: str) -> dict | None:
    p = paths.root() / "results" / name
    return json.loads(p.read_text()) if p.is_file() else None


def _mean(res: dict, role: str, protocol: str, graph: str) -> dict | None:
    return next((m for m in res.get("means", []) if (m["role"], m["protocol"], m["graph"]) == (role, protocol, graph)),
                None)


def _fmt(v, nd=3) -> str:
    return "–" if v is None else f"{v:.{nd}f}"


def _name(res: dict) -> str:
    """The checkpoint's name: its recipe where recorded, else the file's stem (a run's ``model.pt``: its folder)."""
    if not res:
        return "–"
    p = Path(res["checkpoint"])
    return res.get("recipe") or (p.parent.name if p.stem == "model" else p.stem)


def protocol_table(cur: dict, old: dict | None) -> str:
    """The generalization protocols, each target next to the previous checkpoint's value."""
    from .evaluate import targets

    t_cur = {t["target"]: t for t in targets(cur)}
    t_old = {t["target"]: t for t in targets(old)} if old else {}
    head = (f"| protocol (realistic cameras, reflection allowed, × flat) | target | {_name(old)} | {_name(cur)} | met |\n"
            "|---|---|---|---|---|")
    rows = []
    for name, t in t_cur.items():
        o = t_old.get(name, {}).get("value")
        pct = "%" in t["bound"]
        f = (lambda v: "–" if v is None else f"{100 * v:+.0f} %") if pct else _fmt
        met = {True: "yes", False: "**no**", None: "not run"}[t["met"]]
        rows.append(f"| {name} | {t['bound']} | {f(o)} | {f(t['value'])} | {met} |")
    return head + "\n" + "\n".join(rows)


def means_table(res: dict) -> str:
    """Means per role, view protocol and graph, both alignment policies."""
    head = ("| role | view protocol | graph | sets | × flat, reflection allowed | × flat, det = +1 | worst set (× flat) |\n"
            "|---|---|---|---|---|---|---|")
    rows = [f"| {m['role']} | {m['protocol']} | {m['graph']} | {m['sets']} | {_fmt(m['ratio_refl'])} | "
            f"{_fmt(m['ratio_det'])} | {m['worst_set']} ({_fmt(m['max_ratio_refl'], 2)}) |"
            for m in sorted(res["means"], key=lambda m: (m["role"] != "train", m["role"], m["protocol"],
                                                          m["graph"] != "trained", m["graph"]))]
    return head + "\n" + "\n".join(rows)


def per_set_table(res: dict) -> str:
    """Per set with the trained graph: frames, flat, model (both policies), ratio; both view protocols."""
    rows_by = {}
    for r in res["rows"]:
        if r["graph"] == "trained":
            rows_by.setdefault((r["role"], r["category"]), {})[r["protocol"]] = r
    head = ("| set | role | test frames | flat | LFM det | LFM refl | × flat | SO(3) ortho: flat | LFM refl | × flat |\n"
            "|---|---|---|---|---|---|---|---|---|---|")
    out = []
    order = {"train": 0, "untrained": 1, "rig_transfer": 2, "ood": 3}
    for (role, c), p in sorted(rows_by.items(), key=lambda kv: (order.get(kv[0][0], 9), kv[0][1])):
        r = p.get("realistic") or p.get("real_dlc_2d")
        s = p.get("so3_ortho")
        name = c + (" (real DeepLabCut 2D)" if "realistic" not in p else "")
        out.append(f"| {name} | {role} | {r['frames']} | {_fmt(r['flat_refl'])} | {_fmt(r['model_det'])} | "
                   f"{_fmt(r['model_refl'])} | **{_fmt(r['ratio_refl'], 2)}** | "
                   f"{_fmt(s['flat_refl']) if s else '–'} | {_fmt(s['model_refl']) if s else '–'} | "
                   f"{_fmt(s['ratio_refl'], 2) if s else '–'} |")
        if "real_dlc_2d" in p and "realistic" in p:
            d = p["real_dlc_2d"]
            out.append(f"| {c} (real DeepLabCut 2D) | {role} | {d['frames']} | {_fmt(d['flat_refl'])} | "
                       f"{_fmt(d['model_det'])} | {_fmt(d['model_refl'])} | **{_fmt(d['ratio_refl'], 2)}** | – | – | – |")
    return head + "\n" + "\n".join(out)


def tables() -> dict[str, str]:
    """The generated tables by marker name (only those whose result files exist)."""
    cur, old = _load("evaluate.json"), _load("evaluate_v1.json")
    out = {}
    if cur and "means" in cur:
        out["protocols"] = protocol_table(cur, old if old is not cur else None)
        out["means"] = means_table(cur)
        out["per_set"] = per_set_table(cur)
    return out


def _replace(text: str, name: str, body: str) -> str:
    pat = re.compile(rf"(<!-- report:{name} -->\n)(?:.*?\n)?(<!-- /report:{name} -->)", re.S)
    if not pat.search(text):
        raise ValueError(f"README.md has no <!-- report:{name} --> ... <!-- /report:{name} --> block; add one where "
                         "the table belongs.")
    return pat.sub(lambda m: m.group(1) + body + "\n" + m.group(2), text)


def write_readme(path=None) -> Path:
    """Refresh every generated table in README.md (atomically)."""
    from .results import atomic_write_text

    path = Path(path or paths.root() / "README.md")
    text = path.read_text()
    for name, body in tables().items():
        text = _replace(text, name, body)
    return atomic_write_text(path, text)


def check_readme(path=None) -> list[str]:
    """Names of the generated tables that README.md does not hold verbatim."""
    path = Path(path or paths.root() / "README.md")
    text = path.read_text()
    return [name for name, body in tables().items() if f"<!-- report:{name} -->\n{body}\n<!-- /report:{name} -->"
            not in text]


if __name__ == "__main__":
    if "--write" in sys.argv:
        print(f"wrote {write_readme()}")
    else:
        for name, body in tables().items():
            print(f"<!-- report:{name} -->\n{body}\n<!-- /report:{name} -->\n")
