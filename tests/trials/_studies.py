"""Studies for the engine tests: a small real teleop study, and a constructed study whose chosen runs raise."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from machaon.cli.trial import sim_arm
from machaon.teleop.profiles import get_profile
from machaon.trials.study import RunRecord
from machaon.trials.teleop import TeleopStudy

# The CLI flags that build the same study as small_teleop() (the kill test drives the real CLI).
SMALL_TELEOP_ARGS = ["trial", "teleop", "--profiles", "wired,lte", "--tasks", "hold", "--speeds", "2",
                     "--seeds", "2", "--rate-hz", "500", "--no-progress"]


def small_teleop() -> TeleopStudy:
    """5 runs of ~1 s: the hold task at twice the nominal speed, zero delay + wired and LTE x 2 seeds, 500 Hz."""
    return TeleopStudy((get_profile("wired"), get_profile("lte")), sim_arm, tasks=("hold",), speeds=(2.0,), seeds=2,
                       rate_hz=500.0)


@dataclass(frozen=True)
class DrawStudy:
    """``n`` runs that each draw one normal number from their seed; runs listed in ``fail`` raise."""

    n: int = 6
    fail: tuple[int, ...] = ()
    name: ClassVar[str] = "draw"

    def settings(self) -> dict:
        return {"n": self.n, "fail": list(self.fail)}

    def plan(self, seed: int) -> list[dict]:
        return [{"k": i} for i in range(self.n)]

    def run(self, params: dict, seed: int) -> dict:
        if params["k"] in self.fail:
            raise RuntimeError(f"run {params['k']} fails on purpose")
        return {"x": float(np.random.default_rng(seed).normal())}

    def summarise(self, records: list[RunRecord]) -> dict:
        xs = [r.result["x"] for r in records if r.ok]
        return {"draw": {"n": len(xs), "sum_x": float(np.sum(xs))}}

    def write_report(self, out_dir: Path, summary: dict, records: list[RunRecord]) -> list[Path]:
        p = Path(out_dir) / "report.md"
        p.write_text(f"# draw\n\n{summary['draw']['n']} runs\n", encoding="utf-8")
        return [p]

    def headline(self, summary: dict) -> str:
        return f"draw: {summary['draw']['n']} runs"
