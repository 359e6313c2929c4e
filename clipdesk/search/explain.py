"""``why`` entries in a few words, for the CLI's result lines and the app's."""

from __future__ import annotations

SOURCE_NAMES = {"ocr": "words in photo", "caption": "caption", "label": "label", "name": "name", "clip": "looks like"}
BRIEF_NAMES = {**SOURCE_NAMES, "ocr": "words"}  # the grid cell's line is narrow
SNIPPET_CHARS = 48


def why_text(why: list[dict], with_clip: bool = True) -> str:
    """E.g. 'words in photo: “TOTAL58.20” · caption: “a receipt on a table” · looks like 0.27'."""
    parts = []
    for entry in why:
        source = entry["source"]
        if source == "clip":
            if with_clip:
                parts.append(f"{SOURCE_NAMES[source]} {entry['score']:.2f}")
            continue
        text = " ".join(str(entry.get("text", "")).split())
        if len(text) > SNIPPET_CHARS:
            text = text[: SNIPPET_CHARS - 1] + "…"
        partial = "" if entry.get("share", 1.0) >= 1.0 else f" ({entry['share']:.0%} of the words)"
        parts.append(f"{SOURCE_NAMES.get(source, source)}: “{text}”{partial}" if text else SOURCE_NAMES.get(source, source))
    return " · ".join(parts)


def why_brief(score: float, why: list[dict]) -> str:
    """The grid cell's second line: the strongest keyword evidence ('words: INV0ICE #7391'), else CLIP's
    score ('0.273'); the tooltip has both."""
    for entry in why:
        if entry["source"] != "clip":
            text = " ".join(str(entry.get("text", "")).split())
            label = BRIEF_NAMES.get(entry["source"], entry["source"])
            return label + (f": {text}" if text else "")
    return f"{score:.3f}"
