"""Benchmark: indexing the 2150 real Penn Action label files (sequences/s).

Runs the `index` stage's adapter and table validation on ../shared/data/penn_action (or $SHARED_DATA) and
prints one JSON line. Skips (exit 0 with a reason in the JSON) when the data is absent.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    from pipeline.datasets import index_rows
    from pipeline.manifest import DatasetSpec
    from pipeline.sequences import make_table

    data = Path(os.environ.get("SHARED_DATA", ROOT.parent / "shared" / "data")) / "penn_action"
    if not (data / "labels").is_dir():
        print(json.dumps({"bench": "index_pennaction", "skipped": f"no Penn Action labels at {data}"}))
        return
    spec = DatasetSpec(name="pennaction", kind="penn_action", root=data, fps=30.0, layout="penn13")
    best = None
    for _ in range(3):
        start = time.perf_counter()
        rows, _ = index_rows(spec)
        table = make_table(rows)
        seconds = time.perf_counter() - start
        best = seconds if best is None else min(best, seconds)
    print(json.dumps({
        "bench": "index_pennaction",
        "sequences": len(table),
        "frames": int(table["n_frames"].sum()),
        "seconds": round(best, 3),
        "sequences_per_s": round(len(table) / best, 1),
    }))


if __name__ == "__main__":
    main()
