"""Benchmark results: raw timings per workload and contender, the derived rates, and their JSON form."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field

SCHEMA = "gpudcm-bench/1"

# contender keys, in table and chart order
GPUDCM_CUDA = "gpudcm-cuda"
GPUDCM_CPU = "gpudcm-cpu"
GPUDCM_CPU2 = "gpudcm-cpu-2"
DICOMSDL = "dicomsdl"
GDCM = "python-gdcm"
PYDICOM = "pydicom-1"
PYDICOM_POOL = "pydicom-pool"
NVIMGCODEC = "nvimgcodec-pydicom"
H2D_COMPRESSED = "h2d-compressed"
H2D_DECODED = "h2d-decoded"
D2D_DECODED = "d2d-decoded"
KEYS = (GPUDCM_CUDA, GPUDCM_CPU, GPUDCM_CPU2, PYDICOM, PYDICOM_POOL, DICOMSDL, GDCM, NVIMGCODEC, H2D_COMPRESSED, H2D_DECODED, D2D_DECODED)
LIMITS = (H2D_COMPRESSED, H2D_DECODED, D2D_DECODED)

OK, SKIPPED, ERROR = "ok", "skipped", "error"


@dataclass
class Result:
    """One contender on one workload: per-round seconds per call (one call decodes the whole workload)."""

    key: str
    label: str
    status: str  # ok | skipped | error
    reason: str = ""  # why skipped / the error
    rounds_s: list[float] = field(default_factory=list)
    calls: int = 0  # calls per timed round
    check: str = ""  # agreement with pydicom's arrays
    note: str = ""

    @property
    def median_s(self) -> float | None:
        return statistics.median(self.rounds_s) if self.status == OK and self.rounds_s else None


@dataclass
class WorkloadResult:
    """Every contender on one workload, with the sizes the rates are computed from."""

    name: str
    syntax: str
    description: str
    source: str = ""
    files: int = 0
    frames: int = 0
    compressed_bytes: int = 0
    decoded_bytes: int = 0
    skipped: str = ""  # non-empty: the workload could not be built or decoded here
    results: list[Result] = field(default_factory=list)

    def get(self, key: str) -> Result | None:
        return next((r for r in self.results if r.key == key), None)

    def _median(self, key: str) -> float | None:
        r = self.get(key)
        return r.median_s if r is not None else None

    def mb_s(self, r: Result) -> float | None:
        """Decoded megabytes (10^6 bytes of returned arrays) per second."""
        t = r.median_s
        return self.decoded_bytes / t / 1e6 if t else None

    def frames_s(self, r: Result) -> float | None:
        t = r.median_s
        return self.frames / t if t else None

    def vs_pydicom(self, r: Result) -> float | None:
        """median(pydicom, 1 core) / median(r): above 1 is faster than pydicom."""
        t, ref = r.median_s, self._median(PYDICOM)
        return ref / t if t and ref else None

    def of_copy_limit(self, r: Result) -> float | None:
        """median(pinned H2D copy of the compressed bytes) / median(r): 1 = as fast as moving the input."""
        t, lim = r.median_s, self._median(H2D_COMPRESSED)
        return lim / t if t and lim else None


@dataclass
class Run:
    """A whole ``gpudcm bench`` run."""

    machine: dict
    settings: dict
    workloads: list[WorkloadResult]

    def errors(self, keys: tuple[str, ...] | None = None) -> list[tuple[str, Result]]:
        """(workload, result) pairs that errored (only those of `keys` when given)."""
        return [(w.name, r) for w in self.workloads for r in w.results
                if r.status == ERROR and (keys is None or r.key in keys)]

    def to_json(self) -> dict:
        out = {"schema": SCHEMA, "machine": self.machine, "settings": self.settings, "workloads": []}
        for w in self.workloads:
            d = asdict(w)
            for rd, r in zip(d["results"], w.results):
                rd.update(median_s=r.median_s, mb_s=w.mb_s(r), frames_s=w.frames_s(r), vs_pydicom=w.vs_pydicom(r),
                          of_copy_limit=w.of_copy_limit(r))
            out["workloads"].append(d)
        return out

    @classmethod
    def from_json(cls, d: dict) -> Run:
        if d.get("schema") != SCHEMA:
            raise ValueError(f"not a {SCHEMA} file (schema {d.get('schema')!r})")
        fields = set(Result.__dataclass_fields__)
        workloads = []
        for wd in d["workloads"]:
            wd = dict(wd)
            results = [Result(**{k: v for k, v in rd.items() if k in fields}) for rd in wd.pop("results")]
            workloads.append(WorkloadResult(**wd, results=results))
        return cls(d["machine"], d["settings"], workloads)
