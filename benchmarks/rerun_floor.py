"""The floor of a rerun of an all-done run: expand the plan and stat every output, nothing else.

Run: python benchmarks/rerun_floor.py MANIFEST.yaml RUN_DIR [--media-dir videos]

The yardstick of `benchmarks/run.py`'s row "rerun": a rerun that finds every job done must at least
read the manifest, expand it into jobs (benchmarks/plan_minimal.py's expansion: keys, requests,
output paths) and look at each output file (`os.stat`: is it there, and how big). No journal, no
validation, no lock, no report. Prints one JSON line: the jobs, how many outputs are present and
their bytes. Exit 0 when every output is there, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import yaml
from plan_minimal import expand


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("manifest", type=Path)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--media-dir", default="videos", help="the run directory's folder of results")
    args = parser.parse_args(argv)
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    manifest = yaml.load(args.manifest.read_text("utf-8"), Loader=loader)
    root = args.run_dir / args.media_dir
    jobs = present = size = 0
    for job in expand(manifest):
        jobs += 1
        try:
            stat = os.stat(root / job["output_path"])
        except OSError:
            continue
        present += 1
        size += stat.st_size
    print(json.dumps({"jobs": jobs, "present": present, "bytes": size}))
    return 0 if present == jobs else 1


if __name__ == "__main__":
    sys.exit(main())
