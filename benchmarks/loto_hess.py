"""Leave-one-target-out FoV norms on H.E.S.S. DL3 DR1: bkgdask and official models side by side.

python benchmarks/loto_hess.py [--no-interpolate] [--exclude-radius 0.4] [--muoneff]
(not part of the tests; needs $GAMMAPY_DATA/hess-dl3-dr1).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from bkgdask.config import BuildConfig
from bkgdask.validation.loto import leave_one_target_out, summary_table

TARGETS = ["Crab", "PKS 2155-304 (steady)", "PKS 2155-304 (flare)", "MSH 15-52",
           "RX J1713.7-3946"]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--no-interpolate", action="store_true")
    parser.add_argument("--exclude-radius", default="0.4 deg", help="target exclusion at build")
    parser.add_argument("--fit-radius", type=float, default=0.4, help="deg, excluded from fit")
    parser.add_argument("--muoneff", action="store_true", help="also group/interpolate MUONEFF")
    parser.add_argument(
        "--muoneff-edges", type=lambda t: [float(v) for v in t.split(",")], default=[0.6, 0.95, 1.3]
    )
    parser.add_argument("--json", default=None, help="write every run's fit here")
    args = parser.parse_args()
    data = Path(os.environ.get("GAMMAPY_DATA", "../shared/data")) / "hess-dl3-dr1"
    grouping = {"interpolate": not args.no_interpolate}
    if args.muoneff:
        grouping["group_by"] = {"MUONEFF": {"edges": args.muoneff_edges, "unit": ""}}
    config = BuildConfig().updated(
        {
            "compute": {"scheduler": "sync", "progress": False},
            "exclusion": {"target_radius": args.exclude_radius},
            "grouping": grouping,
        }
    )
    fits = leave_one_target_out(data, config, targets=TARGETS, fit_radius_deg=args.fit_radius)
    print(summary_table(fits))
    if args.json:
        Path(args.json).write_text(json.dumps([f.row() for f in fits], indent=1))


if __name__ == "__main__":
    main()
