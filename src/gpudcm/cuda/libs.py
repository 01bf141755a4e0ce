"""Find NVIDIA's shared libraries where Python finds NVIDIA's wheels.

The ``nvidia-*`` wheels put their libraries under an ``nvidia/`` folder (``nvidia/cu13/lib`` for the
CUDA 13 wheels, ``nvidia/<name>/lib`` for others). That folder can sit in any ``sys.path`` entry: site
packages, a ``pip install --target DIR`` tree on ``PYTHONPATH``, a zipapp's unpack folder. So the search
goes through the import system (the ``nvidia`` package's ``__path__``, then every ``sys.path`` entry),
then ``site`` (for an interpreter whose site folders are not on ``sys.path``), and last the plain soname
(the dynamic loader's own search, LD_LIBRARY_PATH, or a library already loaded in this process).
"""

from __future__ import annotations

import ctypes
import glob
import importlib
import os
import site
import sys
from collections.abc import Sequence


def nvidia_roots() -> list[str]:
    """Every ``nvidia/`` folder Python can import from, in import order, without duplicates."""
    roots: list[str] = []
    try:
        pkg = importlib.import_module("nvidia")
        roots += [str(p) for p in getattr(pkg, "__path__", [])]
    except ImportError:
        pass
    # an ``nvidia/__init__.py`` from one wheel makes ``nvidia`` a regular package that hides the other
    # trees, so every path entry is looked at too
    entries = list(sys.path)
    try:
        entries += site.getsitepackages() + [site.getusersitepackages()]
    except AttributeError:  # virtualenv's old site module
        pass
    roots += [os.path.join(e or os.getcwd(), "nvidia") for e in entries]
    seen, out = set(), []
    for r in roots:
        real = os.path.realpath(r)
        if real not in seen and os.path.isdir(real):
            seen.add(real)
            out.append(r)
    return out


def candidates(stem: str, subdirs: Sequence[str], sonames: Sequence[str]) -> list[str]:
    """Paths of ``<nvidia root>/<subdir>/lib/<stem>.so*`` in search order, then the bare `sonames`."""
    out: list[str] = []
    for root in nvidia_roots():
        for sub in subdirs:
            found = sorted(glob.glob(os.path.join(root, sub, "lib", f"{stem}.so*")))
            out += [f for f in found if not os.path.basename(f).startswith(f"{stem}-")]  # libnvrtc-builtins
    return list(dict.fromkeys(out)) + list(sonames)


def load(stem: str, subdirs: Sequence[str], sonames: Sequence[str], *, mode: int = ctypes.DEFAULT_MODE
         ) -> tuple[ctypes.CDLL, str]:
    """The first of :func:`candidates` that loads, and the path it was loaded from (for a soname, the
    file the loader picked, as ``/proc/self/maps`` names it where it can). Raises OSError naming
    what was tried."""
    errors = []
    for path in candidates(stem, subdirs, sonames):
        try:
            handle = ctypes.CDLL(path, mode=mode)
        except OSError as exc:
            errors.append(f"{path}: {exc}")
            continue
        return handle, path if os.sep in path else loaded_path(path)
    raise OSError(f"{stem} not found (looked in {len(nvidia_roots())} nvidia/ folders on sys.path): "
                  + "; ".join(errors[-3:]))


def loaded_path(soname: str) -> str:
    """Where this process mapped `soname` from (Linux), or `soname` itself when that is not known."""
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.split()[-1] if line.strip() else ""
                if os.path.basename(path).startswith(soname):
                    return path
    except OSError:
        pass
    return soname
