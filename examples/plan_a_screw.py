"""Plan a pedicle screw on a lumbar vertebra phantom, check it, and save the plan.

    python examples/plan_a_screw.py [--level L4] [--side left] [--out plan.json]

``auto_plan`` starts from the vertebra's pedicle axis and moves the screw to maximise its
smallest clearance to the bone surface; ``check_plan`` judges the result (breach, clearances,
angles). Millimetres and degrees are for people; the plan itself is in metres (image frame).
"""

from __future__ import annotations

import argparse
import math

from machaon.ortho.anatomy import SpineSegment
from machaon.ortho.planning import Plan, auto_plan, check_plan

MM = 1e-3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--level", default="L4", help="a lumbar level, L1 ... L5")
    ap.add_argument("--side", default="left", choices=("left", "right"))
    ap.add_argument("--out", help="write the plan (JSON) here")
    args = ap.parse_args()

    spine = SpineSegment((args.level,))  # a parametric phantom of one vertebra, image frame
    plan = auto_plan(spine, sides=[args.side])
    for screw in plan:
        check = check_plan(spine, screw)
        print(f"{screw.name}: {screw.diameter / MM:.1f} x {screw.length / MM:.1f} mm, "
              f"entry {[round(float(x) / MM, 1) for x in screw.entry]} mm")
        print(f"  min clearance to the cortex {check.min_clearance / MM:.2f} mm, to the canal "
              f"{check.canal_clearance / MM:.2f} mm; medial {math.degrees(check.medial_angle):.1f} deg, "
              f"cranial {math.degrees(check.cranial_angle):.1f} deg; breach: {check.breach}; ok: {check.ok}")
    if args.out:
        plan.save(args.out)
        assert Plan.load(args.out).screws[0].name == plan.screws[0].name
        print(f"plan written to {args.out}")


if __name__ == "__main__":
    main()
