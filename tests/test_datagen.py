"""Check the synthetic cases from :mod:`datagen` against pydicom's decoder."""

from __future__ import annotations

import pathlib
import sys
import tempfile

import numpy as np
import pytest
from pydicom.pixels import pixel_array

sys.path.insert(0, str(pathlib.Path(__file__).parent))

from datagen import GeneratedCase, generate_all  # noqa: E402

with tempfile.TemporaryDirectory() as _tmp:
    CASE_NAMES = [c.name for c in generate_all(pathlib.Path(_tmp))]


@pytest.fixture(scope="session")
def generated_cases(
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, GeneratedCase]:
    """Generate every case once per session, keyed by name."""
    out = tmp_path_factory.mktemp("datagen")
    return {c.name: c for c in generate_all(out)}


def _check(arr: np.ndarray, expected: np.ndarray) -> None:
    assert arr.shape == expected.shape
    assert arr.dtype.str[1:] == expected.dtype.str[1:]
    assert expected.dtype.isnative
    np.testing.assert_array_equal(arr, expected)


@pytest.mark.filterwarnings("ignore:The pixel data is .* excess padding")
@pytest.mark.parametrize("name", CASE_NAMES)
def test_pydicom_decodes_case(
    name: str, generated_cases: dict[str, GeneratedCase]
) -> None:
    case = generated_cases[name]
    _check(pixel_array(case.path), case.expected)
    if case.expected_raw is not None:
        _check(pixel_array(case.path, raw=True), case.expected_raw)


def test_files_small(tmp_path: pathlib.Path) -> None:
    cases = generate_all(tmp_path, seed=1)
    assert all(c.path.stat().st_size < 2 * 1024 * 1024 for c in cases)


def test_htj2k_cases_are_high_throughput_codestreams(generated_cases: dict[str, GeneratedCase]) -> None:
    pytest.importorskip("imagecodecs")
    from pydicom import dcmread
    from pydicom.encaps import generate_frames

    from gpudcm.jpeg_markers import parse_j2k

    names = [n for n in generated_cases if n.startswith("htj2k")]
    assert len(names) == 5
    for name in names:
        ds = dcmread(generated_cases[name].path)
        assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.201"
        for frame in generate_frames(ds.PixelData, number_of_frames=int(ds.get("NumberOfFrames", 1))):
            info = parse_j2k(frame)
            assert info.high_throughput and info.reversible
            assert info.mct == (ds.PhotometricInterpretation == "YBR_RCT")


def test_deterministic(tmp_path: pathlib.Path) -> None:
    a = generate_all(tmp_path / "a", seed=7)
    b = generate_all(tmp_path / "b", seed=7)
    assert [c.name for c in a] == [c.name for c in b]
    for ca, cb in zip(a, b):
        np.testing.assert_array_equal(ca.expected, cb.expected)


def test_odd_and_excess_padding_on_disk(
    generated_cases: dict[str, GeneratedCase],
) -> None:
    from pydicom import dcmread

    odd = dcmread(generated_cases["u8_odd_padded_le_explicit"].path)
    assert len(odd.PixelData) == 106 and odd.PixelData[-1:] == b"\x00"
    excess = dcmread(generated_cases["u16_excess_padding_le_explicit"].path)
    assert len(excess.PixelData) == 2 * 4 * 3 * 2 + 2
