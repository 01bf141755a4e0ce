"""The ctypes table of gpudcm.cuda.nvjpeg against the prototypes and enums of the wheel's nvjpeg.h (no GPU)."""

from __future__ import annotations

import ctypes
import glob
import os
import re
import site
import subprocess
import sys

import pytest

from gpudcm.cuda import nvjpeg


def _header_path() -> str | None:
    for root in site.getsitepackages() + [site.getusersitepackages()]:
        hits = sorted(glob.glob(os.path.join(root, "nvidia", "*", "include", "nvjpeg.h")))
        if hits:
            return hits[0]
    return None


HEADER = _header_path()
pytestmark = pytest.mark.skipif(HEADER is None, reason="nvjpeg.h not installed (pip install nvidia-nvjpeg)")


def _source() -> str:
    text = open(HEADER).read()
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", " ", text)


def _enums(src: str) -> tuple[dict[str, int], set[str]]:
    """Enumerator values and the names of enum typedefs."""
    values: dict[str, int] = {}
    names: set[str] = set()
    for body, name in re.findall(r"typedef\s+enum\s*\w*\s*\{(.*?)\}\s*(\w+)\s*;", src, flags=re.S):
        names.add(name)
        nxt = 0
        for item in body.split(","):
            item = item.strip()
            if not item:
                continue
            m = re.fullmatch(r"(\w+)\s*(?:=\s*(.+))?", item, flags=re.S)
            assert m, item
            nxt = int(eval(m.group(2), {}, dict(values))) if m.group(2) else nxt  # values like 1<<2, 0xc0
            values[m.group(1)] = nxt
            nxt += 1
    return values, names


def _pointer_typedefs(src: str) -> set[str]:
    return set(re.findall(r"typedef\s+struct\s+\w+\s*\*\s*(\w+)\s*;", src))


def _prototypes(src: str) -> dict[str, list[str]]:
    protos = {}
    for name, args in re.findall(r"nvjpegStatus_t\s+NVJPEGAPI\s+(\w+)\s*\(([^;]*?)\)\s*;", src, flags=re.S):
        params = [" ".join(a.split()) for a in args.split(",")] if args.strip() not in ("", "void") else []
        protos[name] = params
    return protos


def _c_kind(param: str, enums: set[str], handles: set[str]) -> tuple[str, str | None]:
    """('pointer', pointee kind) | ('int32', None) | ('uint32', None) | ('size_t', None) for one C parameter."""
    words = param.replace("*", " * ").split()
    stars = words.count("*")
    base_words = [w for w in words if w not in ("const", "*")]
    base = " ".join(base_words[:-1]) if len(base_words) > 1 else base_words[0]

    def scalar(t: str) -> str:
        if t in enums or t in ("int", "libraryPropertyType", "nvjpegStatus_t"):
            return "int32"
        if t in ("unsigned int",):
            return "uint32"
        if t == "size_t":
            return "size_t"
        if t in handles or t == "cudaStream_t":
            return "pointer"
        return "other:" + t

    if stars:
        return "pointer", scalar(base) if stars == 1 else "pointer"
    return scalar(base), None


def _ctypes_kind(t) -> tuple[str, str | None]:
    if t is ctypes.c_size_t:
        return "size_t", None
    if t is ctypes.c_int:
        return "int32", None
    if t is ctypes.c_uint:
        return "uint32", None
    if t is ctypes.c_void_p:
        return "pointer", None
    if issubclass(t, ctypes._Pointer):
        inner = t._type_
        if issubclass(inner, ctypes.Structure):
            return "pointer", "struct:" + inner.__name__
        return "pointer", _ctypes_kind(inner)[0]
    return "other:" + t.__name__, None


def test_every_bound_function_matches_the_header():
    src = _source()
    enum_values, enum_names = _enums(src)
    handles = _pointer_typedefs(src)
    protos = _prototypes(src)
    assert len(protos) > 50, "prototype parser found too few functions"
    for name, (restype, argtypes) in nvjpeg.FUNCTIONS.items():
        assert name in protos, f"{name} is not declared in nvjpeg.h"
        assert restype is ctypes.c_int, f"{name}: nvjpegStatus_t is a C int"
        params = protos[name]
        assert len(params) == len(argtypes), f"{name}: header has {len(params)} parameters, table {len(argtypes)}"
        for i, (param, ctype) in enumerate(zip(params, argtypes)):
            want, want_inner = _c_kind(param, enum_names, handles)
            got, got_inner = _ctypes_kind(ctype)
            assert not want.startswith("other"), f"{name} arg {i}: unknown C type in {param!r}"
            assert got == want, f"{name} arg {i} ({param!r}): header {want}, ctypes {got}"
            if got_inner is not None and want_inner is not None:
                if got_inner.startswith("struct:"):
                    assert "nvjpegImage_t" in param, f"{name} arg {i}: {param!r} is not nvjpegImage_t*"
                else:
                    assert got_inner == want_inner, f"{name} arg {i} ({param!r}): pointee {want_inner} vs {got_inner}"


def test_image_struct_layout():
    src = _source()
    m = re.search(r"#define\s+NVJPEG_MAX_COMPONENT\s+(\d+)", src)
    assert m and int(m.group(1)) == nvjpeg.NVJPEG_MAX_COMPONENT
    body = re.search(r"typedef\s+struct\s*\{([^}]*)\}\s*nvjpegImage_t\s*;", src, flags=re.S).group(1)
    assert re.search(r"unsigned\s+char\s*\*\s*channel\s*\[\s*NVJPEG_MAX_COMPONENT\s*\]", body)
    assert re.search(r"size_t\s+pitch\s*\[\s*NVJPEG_MAX_COMPONENT\s*\]", body)
    assert [f[0] for f in nvjpeg.NvjpegImage._fields_] == ["channel", "pitch"]
    assert ctypes.sizeof(nvjpeg.NvjpegImage) == nvjpeg.NVJPEG_MAX_COMPONENT * (ctypes.sizeof(ctypes.c_void_p) + ctypes.sizeof(ctypes.c_size_t))


def test_enum_constants_match_the_header():
    values, _ = _enums(_source())
    for code, name in nvjpeg.NVJPEG_STATUS.items():
        assert values[name] == code
    assert set(nvjpeg.NVJPEG_STATUS.values()) == {k for k in values if k.startswith("NVJPEG_STATUS_")}
    for name in ("NVJPEG_BACKEND_DEFAULT", "NVJPEG_BACKEND_HARDWARE", "NVJPEG_BACKEND_LOSSLESS_JPEG",
                 "NVJPEG_OUTPUT_UNCHANGED", "NVJPEG_OUTPUT_UNCHANGEDI_U16"):
        assert values[name] == getattr(nvjpeg, name), name


def test_header_version_and_library_version():
    src = _source()
    ver = tuple(int(re.search(rf"#define\s+NVJPEG_VER_{k}\s+(\d+)", src).group(1)) for k in ("MAJOR", "MINOR", "PATCH"))
    try:
        got = nvjpeg.version()  # nvjpegGetProperty needs no GPU
    except gpudcm_errors().DeviceUnavailable:
        pytest.skip("libnvjpeg not loadable")
    assert got == ver
    assert got >= nvjpeg.MIN_VERSION


def gpudcm_errors():
    import gpudcm.errors

    return gpudcm.errors


def test_status_errors_name_the_status():
    with pytest.raises(gpudcm_errors().DecodeError, match=r"nvjpegDecodeBatched failed: NVJPEG_STATUS_BAD_JPEG \(3\)"):
        nvjpeg.check(3, "nvjpegDecodeBatched")
    nvjpeg.check(0, "ok")


def test_import_does_not_load_the_library():
    code = ("import sys, gpudcm.cuda.nvjpeg as n, gpudcm.routing, gpudcm.cuda.j2k; "
            "assert n._loaded.cache_info().currsize == 0; "
            "assert not any('nvimgcodec' in m for m in sys.modules), 'nvimgcodec imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
