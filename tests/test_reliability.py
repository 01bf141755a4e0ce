"""Hostile input: a generated malformed corpus, size bombs, hypothesis-driven mutation of real files, and
the sanitized kernel fuzzers. Every outcome is a decode equal to pydicom's or a GpudcmError naming the
source, on the CPU path and on the host-built device path; counts go to the assertion messages, stdout and
``$GPUDCM_REPORT_DIR/reliability.txt``."""

from __future__ import annotations

import io
import os
import re
import struct
import subprocess
import sys
import time
import tracemalloc
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import ExplicitVRLittleEndian, RLELossless, generate_uid

import malformed
from corpus import report
import gpudcm
from gpudcm import GpudcmError

ROOT = Path(__file__).resolve().parent.parent
MEMORY_LIMIT = 200 << 20


# ------------------------------------------------------------------------------------ malformed corpus


@pytest.fixture(scope="module")
def corpus() -> list[malformed.Case]:
    return malformed.generate()


def test_malformed_corpus(corpus):
    """Truncations, lying headers, lying offset tables / EOT / RLE headers, cut codestreams, sequences in
    Pixel Data: a pydicom-equal decode or a GpudcmError, on both paths, each under a watchdog."""
    tally, start = malformed.Tally(), time.monotonic()
    for case in corpus:
        malformed.check(case.name, case.data, tally)
    line = f"reliability/malformed: {len(corpus)} files, " + tally.line("decodes") + f", {time.monotonic() - start:.1f} s"
    report(line)
    assert not tally.failures, line + "\n" + "\n".join(tally.failures[:40])
    assert tally.raised > len(corpus) // 2 and tally.decoded > 100, line  # both outcomes are exercised


def test_malformed_corpus_covers_every_family(corpus):
    names = " ".join(c.name for c in corpus)
    for needle in ("truncated@", "Rows=", "Columns=", "NumberOfFrames='-1'", "NumberOfFrames='2147483648'",
                   "BitsAllocated=", "SamplesPerPixel=", "BOT past the data", "EOT offsets past the data",
                   "RLE offset past the end", "codestream cut at 50%", "Pixel Data is a sequence"):
        assert needle in names, needle


def _bomb_cases() -> list[malformed.Case]:
    return [c for c in malformed.generate(("emri_small_RLE.dcm", "SC_rgb_rle_16bit.dcm"))
            if c.name.endswith("64K x 64K x 1")]


def test_rle_header_larger_than_its_segments_is_refused():
    """Refused before any allocation on both paths (frames.check_rle_capacity)."""
    tally = malformed.Tally()
    for case in _bomb_cases():
        malformed.check(case.name, case.data, tally, paths=("host-device",))
        with pytest.raises(gpudcm.InvalidPixelData, match="RLE frame 0 holds"):
            gpudcm.pixel_array(case.data, device="cpu")
    assert tally.raised == tally.cases == 2, tally.failures


def _empty_eot_file() -> bytes:
    return next(c.data for c in malformed.encapsulation_lies("SC_rgb_rle_16bit.dcm")
                if c.name.endswith("EOT fewer entries than frames"))


@pytest.mark.parametrize("path", ["cpu", "host-device"])
def test_empty_extended_offset_table(path):
    tally = malformed.Tally()
    malformed.check("empty EOT", _empty_eot_file(), tally, paths=(path,))
    assert not tally.failures, tally.failures


# ------------------------------------------------------------------------------------------ size bombs


def bomb(frames: str, *, rle: bool = False) -> bytes:
    """A ~2 KB file declaring 65535 x 65535 x `frames` 16-bit frames."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = RLELossless if rle else ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Rows = ds.Columns = 65535
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    with malformed.lenient():
        ds.NumberOfFrames = frames
    if rle:
        frame = struct.pack("<16L", 2, 64, 64 + 64, *[0] * 13) + b"\x81\x00" * 64
        ds.PixelData = encapsulate([frame] * 4)
        ds["PixelData"].is_undefined_length = True
    else:
        ds.PixelData = b"\x00" * 1024
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


BOMBS = {"native 2^31": ("2147483648", False), "native 2^31-1": ("2147483647", False),
         "rle 2^31-1": ("2147483647", True), "native 1 frame": ("1", False)}


@pytest.mark.parametrize("path", ["cpu", "host-device"])
@pytest.mark.parametrize("name", sorted(BOMBS))
def test_size_bomb_raises_before_allocating(name, path):
    frames, rle = BOMBS[name]
    data = bomb(frames, rle=rle)
    assert len(data) < 4096
    decode = malformed.PATHS[path]
    decode(malformed.base_bytes("CT_small.dcm"))  # warm: libraries loaded before measuring
    tracemalloc.start()
    try:
        with pytest.raises(GpudcmError, match=r"65535|NumberOfFrames|bytes") as info:
            with malformed.watchdog(10), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                decode(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < MEMORY_LIMIT, f"{name} [{path}]: Python allocations peaked at {peak} bytes"
    assert f"<{len(data)} bytes>" in str(info.value)


_RSS_SCRIPT = r"""
import resource, sys, warnings
sys.path[:0] = [sys.argv[1], sys.argv[1] + "/tests"]
warnings.simplefilter("ignore")
import malformed, test_reliability as t
files = {n: t.bomb(f, rle=r) for n, (f, r) in t.BOMBS.items()}
for p in malformed.PATHS.values():
    p(malformed.base_bytes("CT_small.dcm"))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for n, data in files.items():
    for name, p in malformed.PATHS.items():
        try:
            p(data)
            print("DECODED", n, name)
        except malformed.GpudcmError:
            pass
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print("RSS_DELTA_KB", after - before, len(files) * len(malformed.PATHS))
"""


def test_size_bombs_peak_rss_in_a_fresh_process():
    proc = subprocess.run([sys.executable, "-c", _RSS_SCRIPT, str(ROOT)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "DECODED" not in proc.stdout, proc.stdout
    delta_kb, decodes = map(int, re.search(r"RSS_DELTA_KB (-?\d+) (\d+)", proc.stdout).groups())
    line = f"reliability/size-bombs: {decodes} bomb decodes raised a GpudcmError, peak RSS grew {delta_kb // 1024} MiB"
    report(line)
    assert delta_kb * 1024 < MEMORY_LIMIT, line


# ------------------------------------------------------------------------------------------ hypothesis

FUZZ_EXAMPLES = int(os.environ.get("GPUDCM_FUZZ_EXAMPLES", "2000"))
_FUZZ = malformed.Tally()

mutation = st.one_of(
    st.tuples(st.just("field"), st.integers(0, len(malformed.FIELD_TAGS) - 1),
              st.one_of(st.sampled_from(malformed.EDGE_US), st.integers(0, 65535))),
    st.tuples(st.just("xor"), st.floats(0, 1, exclude_max=True), st.integers(1, 255)),
    st.tuples(st.just("u32"), st.floats(0, 1, exclude_max=True),
              st.one_of(st.sampled_from(malformed.EDGE_U32), st.integers(0, 2**32 - 1))),
    st.tuples(st.just("overwrite"), st.floats(0, 1, exclude_max=True), st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("truncate"), st.floats(0, 1, exclude_max=True)),
)


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
@given(base=st.sampled_from(malformed.FUZZ_BASES), mutations=st.lists(mutation, min_size=1, max_size=4),
       raw=st.booleans())
def _fuzz_one(base: str, mutations: list, raw: bool) -> None:
    data = malformed.mutate(malformed.base_bytes(base), mutations)
    before = len(_FUZZ.failures)
    malformed.check(f"{base} {mutations!r}", data, _FUZZ, raw=raw)
    assert len(_FUZZ.failures) == before, _FUZZ.failures[before:]


def test_hypothesis_mutation_of_real_files():
    """At least 2,000 mutated files (header fields, pixel bytes, offset words, truncation), both paths."""
    start = time.monotonic()
    _fuzz_one()
    files = _FUZZ.cases // 2
    line = f"reliability/fuzz: {files} mutated files, " + _FUZZ.line("decodes") + f", {time.monotonic() - start:.1f} s"
    report(line)
    assert files >= FUZZ_EXAMPLES and not _FUZZ.failures, line


# ----------------------------------------------------------------------------- sanitized kernel fuzzing

SANITIZED = {"fuzz_native": 50_000, "fuzz_rle": 50_000}


def test_sanitized_kernels_on_random_buffers():
    """The host build under ASan/UBSan on >= 100,000 random native and RLE cases (two processes at once)."""
    from tests.harness.hostbuild import build, check_sanitized, sanitizer_env

    build(sanitize=True)
    start = time.monotonic()
    procs = {name: subprocess.Popen([sys.executable, "-m", f"tests.harness.{name}", str(n), "--sanitize", "--seed", "7"],
                                    cwd=ROOT, env=sanitizer_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True)
             for name, n in SANITIZED.items()}
    outputs = {name: p.communicate(timeout=300) for name, p in procs.items()}
    total = 0
    for name, (out, err) in outputs.items():
        done = int(check_sanitized(procs[name].returncode, out, err, rf"{name}: (\d+) cases completed").group(1))
        assert done == SANITIZED[name], out
        total += done
    line = (f"reliability/sanitized: {total} cases clean under ASan/UBSan in {time.monotonic() - start:.1f} s: "
            + " | ".join(out.strip() for out, _ in outputs.values()))
    report(line)
    assert total >= 100_000, line
