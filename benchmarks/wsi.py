"""Whole-slide regions, gpudcm against wsidicom: ``python benchmarks/wsi.py [--quick] [--device cuda]``.

Targets (issue 19): CPU 2048 x 2048 at level 0 >= 2x wsidicom; GPU 4096 x 4096 of JPEG tiles >= 20x.
The same as ``gpudcm bench --workloads wsi``; results go to benchmarks/results/.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src"))

from gpudcm.bench.wsi import run  # noqa: E402
from gpudcm.cuda.runtime import resolve_device  # noqa: E402

if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--device", default="auto")
    p.add_argument("--cache", default=None, help="slide cache folder (default: gpudcm bench's)")
    p.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"))
    a = p.parse_args()
    print(run(device=resolve_device(a.device), quick=a.quick, cache=a.cache, out=a.out))
