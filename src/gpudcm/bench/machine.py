"""What a benchmark ran on: CPU, GPU, driver, CUDA runtime, library versions and the git commit."""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
from importlib import metadata

PACKAGES = (
    "gpudcm", "numpy", "pydicom", "pydicom-data", "pylibjpeg", "pylibjpeg-libjpeg", "pylibjpeg-openjpeg",
    "pylibjpeg-rle", "pyjpegls", "pillow", "python-gdcm", "cupy-cuda13x", "cupy-cuda12x", "nvidia-nvjpeg",
    "nvidia-nvimgcodec-cu13", "nvidia-nvimgcodec-cu12", "nvidia-nvjpeg2k-cu13", "matplotlib",
)


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else what `platform` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fp:
            for line in fp:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cores() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def git_commit(root: str | None = None) -> str:
    """The commit of the checkout holding this package, else of the current folder: ``git rev-parse --short
    HEAD`` (``-dirty`` when tracked files changed), the ref in ``.git/HEAD`` when git refuses, or a
    ``.commit`` file (what a copied tree carries); "unknown" otherwise."""
    package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    for folder in ([root] if root else [package_root, os.getcwd()]):
        if os.path.exists(os.path.join(folder, ".git")):
            return _git(folder)
        try:
            with open(os.path.join(folder, ".commit"), encoding="ascii") as fp:
                return f"{fp.read().strip()[:12]} (from .commit)"
        except OSError:
            pass
    return "unknown"


def _git(root: str) -> str:
    git_dir = os.path.join(root, ".git")
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=10)
        if out.returncode == 0 and out.stdout.strip():
            dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                                   capture_output=True, text=True, timeout=20)
            return out.stdout.strip() + ("-dirty" if dirty.returncode == 0 and dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        pass
    try:  # git missing or refusing the directory (another owner): read the ref ourselves
        with open(os.path.join(git_dir, "HEAD"), encoding="ascii") as fp:
            head = fp.read().strip()
        if head.startswith("ref: "):
            with open(os.path.join(git_dir, head[5:]), encoding="ascii") as fp:
                head = fp.read().strip()
        return f"{head[:7]} (from .git/HEAD)"
    except OSError:
        return "unknown"


def package_versions(names=PACKAGES) -> dict[str, str]:
    """Installed version of each named distribution (absent ones left out)."""
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def gpu_info() -> dict[str, str]:
    """GPU name and memory, driver and CUDA runtime versions through CuPy; {"gpu": why not} without one."""
    from ..cuda.runtime import cuda_status

    ok, why = cuda_status()
    if not ok:
        return {"gpu": f"none ({why})"}
    import cupy

    dev = cupy.cuda.Device()
    props = cupy.cuda.runtime.getDeviceProperties(dev.id)
    name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    info = {
        "gpu": f"{name}, {props['totalGlobalMem'] / 2**30:.0f} GiB, compute capability {props['major']}.{props['minor']}",
        "cuda driver API": str(cupy.cuda.runtime.driverGetVersion()),
        "cuda runtime": str(cupy.cuda.runtime.runtimeGetVersion()),
    }
    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
        if smi.returncode == 0 and smi.stdout.strip():
            info["driver"] = smi.stdout.strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError):
        pass
    return info


def machine_info(*, gpu: bool = True) -> dict:
    """Date, host, CPU, cores, load, OS, Python, GPU (when `gpu`), git commit and package versions."""
    info: dict = {
        "date (UTC)": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "host": platform.node(),
        "cpu": cpu_model(),
        "cores": f"{os.cpu_count()} logical, {usable_cores()} usable by this process",
        "load average (1/5/15 min, at start)": " / ".join(f"{x:.2f}" for x in os.getloadavg()),
        "os": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
    }
    if gpu:
        info.update(gpu_info())
    info["git commit"] = git_commit()
    info["packages"] = package_versions()
    return info


def machine_lines(info: dict) -> list[str]:
    """Markdown bullet lines, one per entry (the package versions on one line)."""
    out = []
    for key, value in info.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v}" for k, v in value.items())
        out.append(f"- **{key}**: {value}")
    return out
