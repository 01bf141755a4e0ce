"""Long fuzzing runs: mutate real files (header fields, pixel bytes, offset words, truncation) and decode
each on the CPU and host-device paths.

``python -m tests.harness.fuzz_files N --seed S [--paths cpu,host-device]`` (from the repository root).
Prints the counts; exits 1 on any outcome outside the promise (an exception other than a GpudcmError, a
message that does not name the source, a hang, a decode unequal to pydicom's) and writes each failing
input to ``--save DIR`` when given.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/ (for `malformed`)

import malformed  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", type=int, nargs="?", default=10000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--paths", default="cpu,host-device")
    parser.add_argument("--save", type=Path, default=None, help="folder for failing inputs")
    args = parser.parse_args(argv)
    paths = tuple(p for p in args.paths.split(",") if p)
    r = random.Random(args.seed)
    tally, start = malformed.Tally(), time.monotonic()
    for i in range(args.cases):
        base = r.choice(malformed.FUZZ_BASES)
        data = malformed.mutate(malformed.base_bytes(base), malformed.random_mutations(r))
        before = len(tally.failures)
        malformed.check(f"seed {args.seed} case {i} ({base})", data, tally, paths=paths)
        if len(tally.failures) > before:
            print("\n".join(tally.failures[before:]), flush=True)
            if args.save:
                args.save.mkdir(parents=True, exist_ok=True)
                (args.save / f"seed{args.seed}-case{i}.dcm").write_bytes(data)
    print(f"fuzz_files: {args.cases} cases, " + tally.line("decodes")
          + f", {time.monotonic() - start:.1f} s")
    return 1 if tally.failures else 0


if __name__ == "__main__":
    sys.exit(main())
