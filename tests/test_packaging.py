"""The wheel ships kernels/ inside the package and the runtime finds them there."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_ships_kernels_and_finds_them(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
                   check=True, capture_output=True, text=True)
    (wheel,) = tmp_path.glob("gpudcm-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for src in (ROOT / "kernels").glob("*.cu*"):
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
