"""The human table of ``eval retrieval``: one row per section, then the near-duplicate breakdown and the data."""

from __future__ import annotations

from clipdesk.eval.retrieval import SECTIONS

# The metrics each section shows, in order; the JSON has them all.
_SHOWN = {
    "text_to_image": ("R@1", "R@5", "R@10"),
    "near_duplicates": ("mAP@100", "R@1"),
    "zero_shot": ("top1", "top5"),
    "folders": ("mAP", "R@1"),
    "pairs": ("mAP@100", "R@1"),
    "labels_knn": ("accuracy", "majority_baseline"),
}


def _value(v) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def format_table(result: dict) -> list[str]:
    """Lines for the terminal; ``result`` is what ``evaluate_retrieval`` returns (plus ``model``)."""
    lines = [f"Retrieval eval: {result.get('model', '?')} ({result['model_key']}, {result['precision']}), "
             f"{result['seconds']:.0f} s"]
    if "warning" in result:
        lines.append(f"({result['warning']})")
    lines += ["", f"{'section':<17} {'n':>6}  metrics"]
    for name in SECTIONS.values():
        section = result[name]
        if "skipped" in section:
            lines.append(f"{name:<17} {'-':>6}  skipped: {section['skipped']}")
            continue
        shown = "  ".join(f"{m} {_value(section.get(m))}" for m in _SHOWN[name])
        lines.append(f"{name:<17} {section['n']:>6}  {shown}")
        if name == "text_to_image":
            back = section["image_to_text"]
            lines.append(f"{'  image_to_text':<17} {back['n']:>6}  "
                         + "  ".join(f"{m} {_value(back[m])}" for m in ("R@1", "R@5", "R@10")))
    near = result["near_duplicates"]
    if "by_transform" in near:
        lines += ["", "Near-duplicates by transform (that view as the only relevant item):"]
        lines += [f"  {t:<13} R@1 {_value(m['R@1'])}  mAP@100 {_value(m['mAP@100'])}"
                  for t, m in near["by_transform"].items()]
    skipped_lines = result["pairs"].get("skipped_lines") or []
    if skipped_lines:
        lines += ["", f"Pairs file: {len(skipped_lines)} line(s) skipped:"]
        lines += [f"  line {s['line']}: {s['reason']}" for s in skipped_lines[:20]]
    if result["data"]:
        lines += ["", "Data:"]
        for name, d in result["data"].items():
            extra = ", ".join(f"{k} {v}" for k, v in d.items() if k in ("files", "photos", "queries", "items", "seed",
                                                                        "captions", "lines"))
            lines.append(f"  {name}: {d.get('path') or ', '.join(d.get('paths', []))} ({extra}; "
                         f"digest {d.get('digest', '-')})")
    if result["unreadable"]:
        lines.append(f"{len(result['unreadable'])} photo(s) could not be read and were left out, e.g. "
                     f"{result['unreadable'][0]['path']}: {result['unreadable'][0]['reason']}")
    return lines
