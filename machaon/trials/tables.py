"""Markdown pieces of study reports: tables and the ``mean ± SD`` / ``[lo, hi]`` cells of ``stats`` dicts."""

from __future__ import annotations

from collections.abc import Sequence


def fmt_mean_sd(d: dict, scale: float = 1.0, digits: int = 2) -> str:
    """``mean ± sd`` of a ``describe`` dict (times ``scale``), or ``-``."""
    if not d or d.get("mean") is None:
        return "-"
    return f"{d['mean'] * scale:.{digits}f} ± {d['sd'] * scale:.{digits}f}"


def fmt_ci(d: dict, scale: float = 1.0, digits: int = 2) -> str:
    """``[lo, hi]`` of a ``describe`` or ``proportion`` dict (times ``scale``), or ``-``."""
    ci = (d or {}).get("ci95") or [None, None]
    if ci[0] is None:
        return "-"
    return f"[{ci[0] * scale:.{digits}f}, {ci[1] * scale:.{digits}f}]"


def md_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured Markdown table."""
    out = ["| " + " | ".join(str(h) for h in header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)
