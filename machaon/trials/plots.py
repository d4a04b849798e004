"""Matplotlib for study reports: the Agg backend (PNG files, no display) and a histogram panel helper."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

__all__ = ["plt", "histogram", "save_figure"]


def histogram(ax: object, values: Sequence[float], label: str, bins: int = 30, ref: float | None = None,
              ref_label: str = "") -> None:
    """Histogram of the finite ``values`` on ``ax`` with the mean (solid) and an optional reference (dashed)."""
    a = np.asarray([np.nan if v is None else v for v in values], dtype=np.float64)
    a = a[np.isfinite(a)]
    if a.size:
        ax.hist(a, bins=bins, color="C0", alpha=0.8)
        ax.axvline(float(a.mean()), color="k", lw=1.2, label=f"mean {a.mean():.2f}")
    if ref is not None:
        ax.axvline(ref, color="C3", ls="--", lw=1.2, label=ref_label or f"reference {ref:.2f}")
    ax.set_xlabel(label)
    ax.set_ylabel("runs")
    ax.legend(fontsize=7)


def save_figure(fig: object, path: Path) -> Path:
    """Lay out ``fig``, write it to ``path`` as a 100-dpi PNG, close it and return ``path``."""
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
