"""gpudcm.pydicom_compat: each private pydicom name gpudcm relies on still exists and still behaves as gpudcm
uses it (called on tiny inputs), and no other gpudcm module imports a private pydicom name."""

from __future__ import annotations

import ast
import importlib
import inspect
import io
import struct
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.tag import Tag
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid

from gpudcm import pydicom_compat as compat

PACKAGE = Path(compat.__file__).resolve().parent


def _file(ts, pixels: bytes = b"\x01\x02\x03\x04") -> bytes:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ts
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.BitsAllocated, ds.BitsStored = 1, 2, 1, 16, 16
    ds.HighBit, ds.PixelRepresentation, ds.PhotometricInterpretation = 15, 0, "MONOCHROME2"
    ds.PixelData = pixels
    ds.PatientName = "After^Pixels"  # never reached: reading stops at the pixel element
    ds["PixelData"].VR = "OW"
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


@pytest.mark.parametrize("module,name", compat.PRIVATE_NAMES)
def test_private_name_exists(module, name):
    obj = importlib.import_module(module)
    owner, _, attr = name.rpartition(".")
    if owner:  # an instance attribute set in __init__ (the pixel_array cache)
        assert attr in inspect.getsource(getattr(obj, owner).__init__), f"{module}.{name} is gone"
    else:
        assert hasattr(obj, attr), f"{module}.{name} is gone"


def test_at_pixel_data_stops_at_the_three_pixel_elements_only():
    assert list(inspect.signature(compat.at_pixel_data).parameters) == ["tag", "vr", "length"]
    for tag in (0x7FE00010, 0x7FE00008, 0x7FE00009):
        assert compat.at_pixel_data(Tag(tag), "OB", 0xFFFFFFFF) is True
    for tag in (0x7FE00001, 0x7FE00002, 0x00280010, 0x7FE00011, 0xFFFEE000):
        assert compat.at_pixel_data(Tag(tag), "OB", 4) is False


@pytest.mark.parametrize("ts", [ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian])
def test_header_reading_as_source_does_it(ts):
    """The reading gpudcm.source does: preamble, file meta, then the dataset up to the pixel element with
    `stop_when` and `specific_tags`, leaving the file at the pixel element's tag."""
    fp = DicomBytesIO(_file(ts))
    assert compat.read_preamble(fp, force=True) == b"\x00" * 128
    meta = compat.read_file_meta_info(fp)
    assert isinstance(meta, FileMetaDataset) and meta.TransferSyntaxUID == ts
    ds = compat.read_dataset(fp, is_implicit_VR=ts.is_implicit_VR, is_little_endian=ts.is_little_endian,
                             stop_when=compat.at_pixel_data, specific_tags=[0x00280010, 0x00280011])
    assert isinstance(ds, Dataset) and (ds.Rows, ds.Columns) == (1, 2)
    assert "PixelData" not in ds and "PatientName" not in ds and "BitsAllocated" not in ds
    order = "<" if ts.is_little_endian else ">"
    assert struct.unpack(f"{order}HH", fp.read(4)) == (0x7FE0, 0x0010)


def test_get_jpg_parameters_reads_what_jpeg_path_uses():
    """jpeg_path reads component_ids (R, G, B ids mean RGB) and the APPn payloads (JFIF); {} on garbage."""
    def seg(marker: int, payload: bytes) -> bytes:
        return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload

    sof = bytes([8]) + struct.pack(">HHB", 5, 7, 3) + b"".join(bytes([c, 0x11, 0]) for c in b"RGB")
    sos = bytes([3]) + b"".join(bytes([c, 0]) for c in b"RGB") + bytes([0, 63, 0])
    stream = b"\xff\xd8" + seg(0xE0, b"JFIF\x00\x01\x02") + seg(0xC0, sof) + seg(0xDA, sos) + b"\x00\xff\xd9"
    info = compat.get_jpg_parameters(stream)
    assert (info["precision"], info["height"], info["width"], info["components"]) == (8, 5, 7, 3)
    assert info["component_ids"] == [82, 71, 66]
    assert list(info["app"].values()) == [b"JFIF\x00\x01\x02"]
    assert compat.get_jpg_parameters(b"\x00" * 16) == {}


def test_forget_pixel_array_drops_the_cache():
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.BitsAllocated, ds.BitsStored = 1, 2, 1, 8, 8
    ds.HighBit, ds.PixelRepresentation, ds.PhotometricInterpretation = 7, 0, "MONOCHROME2"
    ds.PixelData = b"\x01\x02"
    np.testing.assert_array_equal(ds.pixel_array, [[1, 2]])
    assert ds._pixel_id  # pydicom filled the cache gpudcm clears ...
    ds._pixel_array = np.array([[7, 7]], np.uint8)
    np.testing.assert_array_equal(ds.pixel_array, [[7, 7]])  # ... and serves it while the ids match
    compat.forget_pixel_array(ds)
    assert ds._pixel_array is None and ds._pixel_id == {}
    np.testing.assert_array_equal(ds.pixel_array, [[1, 2]])  # decoded afresh


def _private_pydicom_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pydicom"):
            found += [f"{node.module}.{a.name}" for a in node.names if a.name.startswith("_")]
        elif isinstance(node, ast.Attribute) and node.attr in ("_pixel_array", "_pixel_id"):
            found.append(node.attr)
    return found


def test_no_other_module_touches_private_pydicom_names():
    offenders = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name != "pydicom_compat.py" and (names := _private_pydicom_imports(path)):
            offenders[str(path.relative_to(PACKAGE))] = names
    assert not offenders, f"private pydicom names outside gpudcm/pydicom_compat.py: {offenders}"
