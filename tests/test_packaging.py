"""The wheel ships kernels/ inside the package and the runtime finds them there."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _build_wheel(tmp_path: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
                   check=True, capture_output=True, text=True)
    (wheel,) = tmp_path.glob("gpudcm-*.whl")
    return wheel


def test_wheel_ships_kernels_and_finds_them(tmp_path):
    wheel = _build_wheel(tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    for src in (ROOT / "src" / "gpudcm" / "kernels").glob("*.cu*"):
        assert f"gpudcm/kernels/{src.name}" in names
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, text=True)
    code = "from gpudcm.cuda.kernels import kernel_dir, load_source; print(kernel_dir()); print(len(load_source('native.cu')))"
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, check=True)
    found = Path(proc.stdout.splitlines()[0])
    assert found == target / "gpudcm" / "kernels"
    assert int(proc.stdout.splitlines()[1]) > 1000


def test_wheel_has_spdx_license_and_py_typed(tmp_path):
    """license = "MIT" (PEP 639; the table form stops building with setuptools in 2027) and py.typed, so type
    checkers use gpudcm's hints; both checked in the built wheel and after installing it."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["license"] == "MIT"
    assert any(r.replace(" ", "").startswith("setuptools>=77") for r in project["build-system"]["requires"])
    wheel = _build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as zf:
        assert "gpudcm/py.typed" in zf.namelist()
        meta = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        headers = zf.read(meta).decode()
    assert "License-Expression: MIT" in headers.splitlines()
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, text=True)
    assert (target / "gpudcm" / "py.typed").is_file()


def test_checkout_named_gpudcm_does_not_shadow_the_package(tmp_path):
    """Python run from the folder that holds a clone named ``gpudcm`` still imports the installed package
    (with a flat layout the clone itself was imported as an empty namespace package)."""
    import gpudcm

    if Path(gpudcm.__file__).resolve().parent != ROOT / "src" / "gpudcm":
        pytest.skip("gpudcm is not installed from this checkout")
    (tmp_path / "gpudcm").symlink_to(ROOT, target_is_directory=True)
    code = "import gpudcm; print(gpudcm.__file__); gpudcm.pixel_array"
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert Path(proc.stdout.strip()).resolve() == ROOT / "src" / "gpudcm" / "__init__.py"
