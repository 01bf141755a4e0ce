"""The CUDA runtime glue on the CPU, through stand-ins that keep CuPy's, nvJPEG's and nvImageCodec's
contracts (tests/harness/fake_cupy.py, tests/harness/host_ops.py): stream ordering, library lookup,
module compilation, device selection, resource pooling. Issue 14, defects 4, 5, 6, 7, 8, 10 and 11."""

from __future__ import annotations

import contextlib
import importlib.machinery
import shutil
import sys
import threading
import time
import types
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.pixels import pixel_array as pydicom_pixel_array

import gpudcm
from gpudcm import preprocessing
from gpudcm.cuda import j2k, kernels, libs, nvjpeg, nvrtc, runtime
from gpudcm.cuda.ops import OPS_POOL, CupyOps
from gpudcm.cuda.pipeline import Request, decode_native_batch
from gpudcm.cuda.pool import Pool
from tests.harness import nvrtc as ci_nvrtc
from tests.harness.fake_cupy import FakeCupy, ordered_after_allocation
from tests.harness.host_ops import HostOps

CT = get_testdata_file("CT_small.dcm")
MR = get_testdata_file("MR_small.dcm")
ROOT = Path(__file__).resolve().parent.parent


def _clear_caches() -> None:
    from gpudcm import routing

    fn = routing.detect_env
    while fn is not None:  # the lru_cache, possibly under tests/malformed.py's switch
        getattr(fn, "cache_clear", lambda: None)()
        fn = getattr(fn, "__wrapped__", None)
    runtime.cuda_status.cache_clear()
    kernels._module.cache_clear()
    kernels._function.cache_clear()
    preprocessing._device_words.cache_clear()
    j2k.gpu_backend.cache_clear()
    j2k._decoders.clear()
    OPS_POOL.clear()


@pytest.fixture(scope="session")
def kernel_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("kernels")


@pytest.fixture
def fake_cupy(monkeypatch, kernel_cache):
    """Installs a FakeCupy as ``cupy`` (n devices), with gpudcm's caches cleared before and after."""

    def install(n_devices: int = 1) -> FakeCupy:
        fake = FakeCupy(n_devices)
        monkeypatch.setitem(sys.modules, "cupy", fake)
        monkeypatch.setenv("GPUDCM_KERNEL_CACHE", str(kernel_cache))
        _clear_caches()
        return fake

    yield install
    _clear_caches()


# ---------------------------------------------------------------------------------------------------
# Defect 4: work streams wait on the current stream before writing its allocations


def test_host_pipeline_orders_every_write_after_the_allocation():
    """HostOps checks CuPy's pool contract (StreamOrder): fails with AssertionError without the wait."""
    ops = HostOps()
    paths = [CT, MR, CT]
    requests = [Request(*_spec_and_buffer(p)) for p in paths]
    out = decode_native_batch(requests, ops, batch_bytes=1)  # one batch per file: both slots used
    assert ops.order.races == []
    for arr, p in zip(out, paths):
        np.testing.assert_array_equal(arr, pydicom_pixel_array(p))


def test_cupy_ops_waits_on_an_event_of_the_current_stream(fake_cupy):
    """The real CupyOps and pipeline against the CuPy stand-in: every array a launch touches that came
    from another stream's pool arena is ordered after its allocation by an event wait."""
    fake = fake_cupy()
    requests = [Request(*_spec_and_buffer(p)) for p in (CT, MR, CT, MR)]
    decode_native_batch(requests, CupyOps(), batch_bytes=1)
    assert len(fake.log.launches) == 4
    for launch in fake.log.launches:
        assert launch.stream is not fake.cuda.Stream.null  # gpudcm's own work streams
        assert ordered_after_allocation(fake, launch) == []
    assert set(fake.log.syncs) >= {launch.stream for launch in fake.log.launches}  # done before returning


def test_preprocess_tables_live_on_the_stream_that_reads_them(fake_cupy):
    fake = fake_cupy()
    ds = dcmread(CT)
    host = pydicom_pixel_array(ds)
    plan = preprocessing.plan_preprocess(host.shape, host.dtype, ds, window=(40, 400))
    streams = (fake.cuda.Stream(non_blocking=True), fake.cuda.Stream(non_blocking=True))
    for _ in range(2):
        for stream in streams:
            with stream:  # a caller's stream: its inputs and outputs allocated there, the kernel run there
                src, out = fake.asarray(host.astype(plan.in_dtype)), fake.empty(plan.out_shape, np.float32)
                preprocessing.cupy_preprocess_launcher(plan, src, None, out)
    launches = [x for x in fake.log.launches if x.kernel.startswith("gpudcm_preprocess")]
    assert len(launches) == 4
    for launch in launches:
        assert ordered_after_allocation(fake, launch) == [], launch


def _spec_and_buffer(path):
    from gpudcm.spec import pixel_spec

    ds = dcmread(path)
    spec = pixel_spec(ds, source=str(path))
    return spec, ds[spec.pixel_keyword].value


# ---------------------------------------------------------------------------------------------------
# Defect 5: libnvjpeg found through the import system (pip --target + PYTHONPATH)


def _real_nvjpeg() -> Path:
    path = Path(nvjpeg.library_path())
    if not path.is_file():
        pytest.skip("nvidia-nvjpeg is not installed here")
    return path


@pytest.fixture
def target_tree(monkeypatch, tmp_path):
    """A ``pip install --target`` tree on sys.path (first), with site-packages no longer searched."""
    real = _real_nvjpeg()
    lib = tmp_path / "site" / "nvidia" / "cu13" / "lib"
    lib.mkdir(parents=True)
    shutil.copy(real, lib / "libnvjpeg.so.13")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setattr(libs.site, "getsitepackages", lambda: [])
    monkeypatch.setattr(libs.site, "getusersitepackages", lambda: str(tmp_path / "no-user-site"))
    nvjpeg._loaded.cache_clear()
    yield tmp_path / "site"
    nvjpeg._loaded.cache_clear()


def test_nvjpeg_is_found_in_a_target_tree_on_sys_path(target_tree):
    assert nvjpeg.version() >= (13, 0, 0)  # raised DeviceUnavailable when only site-packages was globbed
    assert nvjpeg.library_path().startswith(str(target_tree))


def test_capabilities_name_the_loaded_nvjpeg(target_tree):
    rows = [c for c in gpudcm.capabilities("cuda") if c.backend == "nvjpeg"]
    assert rows and all(str(target_tree / "nvidia" / "cu13" / "lib" / "libnvjpeg.so.13") in c.reason for c in rows)


def test_nvidia_roots_cover_a_regular_nvidia_package(monkeypatch, tmp_path):
    """An ``nvidia/__init__.py`` from one wheel (nvjpeg2k ships an empty one) must not hide the others."""
    for name in ("a", "b"):
        (tmp_path / name / "nvidia").mkdir(parents=True)
    (tmp_path / "a" / "nvidia" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path / "b"))
    monkeypatch.syspath_prepend(str(tmp_path / "a"))
    roots = [Path(r).resolve() for r in libs.nvidia_roots()]
    assert roots.index((tmp_path / "a" / "nvidia").resolve()) < roots.index((tmp_path / "b" / "nvidia").resolve())


# ---------------------------------------------------------------------------------------------------
# Defect 6: a J2K GPU backend only when nvjpeg2k really loads and decodes


class FakeNvImageCodec(types.ModuleType):
    """nvImageCodec 0.9's Python API as gpudcm uses it. Contract (its docstrings in nvimgcodec_impl):
    ``Decoder(device_id, backends=[Backend(kind)])`` restricts decoding to those backends; ``decode``
    returns one Image per CodeStream, ``None`` where no allowed backend could decode it (its message:
    "there will be None on corresponding output position"). Without libnvjpeg2k its nvjpeg2k extension
    registers no GPU decoder, so a GPU-only Decoder returns None for every J2K stream. Images expose
    ``__cuda_array_interface__``; grey comes back (H, W, 1)."""

    def __init__(self, gpu_j2k: bool, hold: float = 0.0) -> None:
        super().__init__("nvidia.nvimgcodec")
        self.__spec__ = importlib.machinery.ModuleSpec("nvidia.nvimgcodec", None)
        self.gpu_j2k, self.hold = gpu_j2k, hold
        self.inside = self.most_inside = 0
        self._count = threading.Lock()
        fake = self
        self.BackendKind = types.SimpleNamespace(GPU_ONLY="gpu", HYBRID_CPU_GPU="hybrid", CPU_ONLY="cpu")
        self.ColorSpec = types.SimpleNamespace(UNCHANGED="unchanged")
        self.Backend = lambda kind, **kw: kind
        self.DecodeParams = lambda **kw: kw
        self.CodeStream = lambda data: bytes(data)

        class Decoder:
            def __init__(self, device_id=0, backends=None, **kw):
                self.backends = backends or ["gpu", "hybrid", "cpu"]

            def decode(self, streams, params=None, cuda_stream=0):
                with fake._count:
                    fake.inside += 1
                    fake.most_inside = max(fake.most_inside, fake.inside)
                time.sleep(fake.hold)  # lets a second thread in when nothing serialises the calls
                with fake._count:
                    fake.inside -= 1
                gpu = fake.gpu_j2k and "gpu" in self.backends
                if not gpu and "cpu" not in self.backends:
                    return [None for _ in streams]
                return [j2k.PROBE_PIXELS[..., None].copy() if s == j2k.PROBE_J2K else None for s in streams]

        self.Decoder = Decoder


@pytest.fixture
def fake_nvjpeg2k(monkeypatch):
    monkeypatch.setattr(j2k, "nvjpeg2k_library", lambda: ("/x/nvidia/nvjpeg2k/lib/libnvjpeg2k.so.0", "nvjpeg2k /x"))

    def install(gpu_j2k: bool, hold: float = 0.0) -> FakeNvImageCodec:
        mod = FakeNvImageCodec(gpu_j2k, hold)
        monkeypatch.setitem(sys.modules, "nvidia.nvimgcodec", mod)
        return mod

    return install


def test_no_j2k_gpu_backend_when_nvjpeg2k_does_not_decode(fake_cupy, fake_nvjpeg2k):
    from gpudcm.routing import detect_env

    fake_cupy()
    fake_nvjpeg2k(gpu_j2k=False)
    assert detect_env().nvimgcodec is False
    rows = [c for c in gpudcm.capabilities("cuda") if "2000" in c.name]
    assert rows and all(c.backend != "j2k" for c in rows)
    assert all("no GPU JPEG 2000 decoder" in c.reason for c in rows)


def test_j2k_gpu_backend_when_nvjpeg2k_decodes(fake_cupy, fake_nvjpeg2k):
    from gpudcm.routing import detect_env

    fake_cupy()
    fake_nvjpeg2k(gpu_j2k=True)
    assert detect_env().nvimgcodec is True
    rows = [c for c in gpudcm.capabilities("cuda") if "2000" in c.name]
    assert rows and all(c.backend == "j2k" and "nvjpeg2k" in c.reason for c in rows)


def test_nvjpeg2k_library_found_through_sys_path(monkeypatch, tmp_path):
    real = _real_nvjpeg()  # any loadable shared object stands in for libnvjpeg2k.so.0
    lib = tmp_path / "nvidia" / "nvjpeg2k" / "lib"
    lib.mkdir(parents=True)
    shutil.copy(real, lib / "libnvjpeg2k.so.0")
    monkeypatch.syspath_prepend(str(tmp_path))
    j2k.nvjpeg2k_library.cache_clear()
    try:
        path, why = j2k.nvjpeg2k_library()
        assert path == str(lib / "libnvjpeg2k.so.0") and path in why
    finally:
        j2k.nvjpeg2k_library.cache_clear()


def test_j2k_extra_and_device_wheels_carry_nvjpeg2k():
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(d.startswith("nvidia-nvjpeg2k-cu13") for d in extras["j2k"])
    assert "nvidia-nvjpeg2k-cu13==" in (ROOT / "ci" / "wheels.sh").read_text()


def test_one_nvimgcodec_decoder_is_never_entered_by_two_threads(fake_cupy, fake_nvjpeg2k):
    from gpudcm.jpeg_markers import parse_j2k
    from gpudcm.spec import pixel_spec

    fake_cupy()
    mod = fake_nvjpeg2k(gpu_j2k=True, hold=0.05)
    info = parse_j2k(j2k.PROBE_J2K)
    spec = pixel_spec(dcmread(CT), source="ct")  # any spec: only the finishing reads it
    start = threading.Barrier(4)

    def work():
        start.wait()
        return j2k.decode_batch([j2k.PROBE_J2K], [info], spec)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert mod.most_inside == 1


# ---------------------------------------------------------------------------------------------------
# Defect 7: what runs is what NVRTC compiled with exactly the CI option list


def test_modules_are_loaded_from_our_nvrtc_binary_not_compiled_by_cupy(fake_cupy, kernel_cache):
    fake = fake_cupy()
    kernels.get_function("preprocess.cu", "gpudcm_preprocess_u16_f32")
    (module,) = fake.log.modules
    assert module.code is None and module.effective_options is None  # RawModule(code=...) would add -ftz=true
    expected = nvrtc.compile_program("preprocess.cu", kernels.load_source("preprocess.cu"), kernels.nvrtc_options("sm_90"))
    assert Path(module.path).read_bytes() == expected.cubin


def test_ci_compiles_with_the_runtime_option_list(monkeypatch, kernel_cache):
    monkeypatch.setenv("GPUDCM_KERNEL_CACHE", str(kernel_cache))
    ok, log, size = ci_nvrtc.compile_source("native.cu", "sm_90")
    runtime_cubin = kernels.compiled_kernel("native.cu", "sm_90").read_bytes()
    assert ok and size == len(runtime_cubin)
    assert "--ftz=false" in kernels.nvrtc_options("sm_90") and not any("ftz=true" in o for o in kernels.nvrtc_options("sm_90"))


def test_preprocess_ptx_keeps_subnormals():
    ptx = ci_nvrtc.ptx("preprocess.cu")
    assert ".ftz" not in ptx  # no flush-to-zero float instruction


# ---------------------------------------------------------------------------------------------------
# Defect 8: device="cuda:N"


def test_cuda_n_decodes_on_device_n(fake_cupy):
    fake = fake_cupy(n_devices=2)
    arr = gpudcm.pixel_array(CT, device="cuda:1")
    assert arr.device_id == 1
    frames = list(gpudcm.iter_frames(CT, device="cuda:1"))
    assert [f.device_id for f in frames] == [1]
    batch = gpudcm.decode_batch([CT, MR], device="cuda:1")
    assert [b.device_id for b in batch] == [1, 1]
    gpudcm.render(CT, device="cuda:1")
    assert fake.log.launches and {x.device for x in fake.log.launches} == {1}
    assert {m.device_id for m in fake.log.modules} == {1}


def test_cuda_n_that_does_not_exist_raises(fake_cupy):
    fake_cupy(n_devices=2)
    for call in (lambda: gpudcm.pixel_array(CT, device="cuda:2"),
                 lambda: list(gpudcm.iter_frames(CT, device="cuda:7")),
                 lambda: gpudcm.decode_batch([CT], device="cuda:2"),
                 lambda: gpudcm.render(CT, device="cuda:2")):
        with pytest.raises(gpudcm.DeviceUnavailable, match="2 CUDA device"):
            call()
    with pytest.raises(gpudcm.DeviceUnavailable, match="unknown device"):
        gpudcm.pixel_array(CT, device="cuda:x")


# ---------------------------------------------------------------------------------------------------
# Defect 10: bounded pools, batched on_error="return", one Decoder per device behind a lock


def test_decode_batch_with_workers_reuses_pooled_streams(fake_cupy):
    fake = fake_cupy()
    for _ in range(3):
        out = gpudcm.decode_batch([CT, b"not dicom", CT, MR], device="cuda", workers=4, on_error="return")
        assert isinstance(out[1], gpudcm.GpudcmError) and out[0].shape == (128, 128)
    assert fake.log.streams_created == 2  # one CupyOps, leased by each call in turn
    assert OPS_POOL.live == 1


def test_on_error_return_decodes_the_good_sources_in_one_batch(fake_cupy):
    fake = fake_cupy()
    out = gpudcm.decode_batch([CT, b"not dicom", CT, CT], device="cuda", on_error="return")
    assert isinstance(out[1], gpudcm.GpudcmError)
    native = [x for x in fake.log.launches if x.kernel.startswith("gpudcm_native")]
    assert len(native) == 1 and int(native[0].args[3]) == 3  # one launch of the three CT frames


def test_pool_keeps_at_most_cap_idle_and_destroys_the_rest():
    made, destroyed = [], []
    pool = Pool(lambda key: made.append(key) or len(made), destroyed.append, cap=2)
    start, release = threading.Barrier(6), threading.Event()

    def work():
        with pool.lease("dev0"):
            start.wait()
            release.wait()

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    while pool.created < 6:
        time.sleep(0.001)
    release.set()
    for t in threads:
        t.join()
    assert pool.created == 6 and len(destroyed) == 4 and pool.live == 2
    with pool.lease("dev0"):
        pass
    assert pool.created == 6  # an idle one was reused


def test_nvjpeg_states_are_pooled_and_destroyed(monkeypatch):
    """nvJPEG's contract (nvjpeg.h): nvjpegJpegStateCreate/Destroy pair up; a state serves one decode at a
    time. The stand-in counts the pairs."""
    live = []
    fake = types.SimpleNamespace(
        nvjpegCreateEx=lambda *a: 0,
        nvjpegJpegStateCreate=lambda h, out: (live.append(1), setattr(out._obj, "value", len(live)), 0)[-1],
        nvjpegJpegStateDestroy=lambda s: (live.pop(), 0)[-1],
    )
    monkeypatch.setattr(nvjpeg, "lib", lambda: fake)
    monkeypatch.setattr(nvjpeg, "STATES", Pool(nvjpeg._new_state, nvjpeg._destroy_state, cap=1))
    monkeypatch.setattr(nvjpeg, "_handles", {})
    start = threading.Barrier(3)

    def work():
        with nvjpeg.STATES.lease((0, 0)):
            start.wait()

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(live) == 1 and nvjpeg.STATES.created == 3


# ---------------------------------------------------------------------------------------------------
# Defect 11: get_function cached; RLE frames staged once


def test_get_function_is_looked_up_once(fake_cupy, monkeypatch):
    fake = fake_cupy()
    calls = []
    real = fake.cuda.RawModule.get_function
    monkeypatch.setattr(fake.cuda.RawModule, "get_function", lambda self, n: calls.append(n) or real(self, n))
    for _ in range(5):
        kernels.get_function("colour.cu", "gpudcm_ybr_to_rgb_8")
    assert calls == ["gpudcm_ybr_to_rgb_8"]


def test_rle_frames_are_copied_once_into_the_staging(monkeypatch):
    from gpudcm.cuda import rle
    from tests.harness.rle_host import host_launch_rle
    from tests.harness.hostbuild import host_launcher

    copies = []

    class CountingNumpy:
        def __getattr__(self, name):
            return getattr(np, name)

        def concatenate(self, arrays, *args, out=None, **kw):
            arrays = list(arrays)
            if arrays and all(a.dtype == np.uint8 for a in arrays):
                copies.append(out is not None and getattr(out, "staged", False))
            return np.concatenate(arrays, *args, out=out, **kw)

    class Staging(np.ndarray):
        staged = True

    monkeypatch.setattr(rle, "np", CountingNumpy())
    path = get_testdata_file("emri_small_RLE.dcm")
    reqs = []
    for _ in range(2):
        spec, buffer = _spec_and_buffer(path)
        reqs.append(rle.RleRequest(spec, buffer))
    staged = []
    out = rle.decode_rle_batch(reqs, launch_rle=host_launch_rle(False), launch_native=host_launcher(False),
                               staging=lambda n: staged.append(n) or np.empty(n, np.uint8).view(Staging))
    np.testing.assert_array_equal(out[1], pydicom_pixel_array(path))
    # each frame copied from the element straight into one staging buffer (one batch), no joined copy
    frames = rle._wanted(reqs[0])[0]
    assert copies == [] and staged == [2 * sum(e.length for f in frames for e in f)]


# ---------------------------------------------------------------------------------------------------
# The runbook: gpu tests fail, never skip, under GPUDCM_REQUIRE_GPU=1


def test_require_gpu_turns_a_missing_gpu_into_failures():
    import os
    import subprocess

    if runtime.cuda_status()[0]:
        pytest.skip("a CUDA device is present: the run would test it")
    env = {**os.environ, "GPUDCM_REQUIRE_GPU": "1", "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}"}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_gpu.py::test_cuda_batch_stack"]
    run = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode != 0 and "GPUDCM_REQUIRE_GPU=1 but CUDA" in run.stdout, run.stdout[-2000:]
    plain = subprocess.run(cmd, cwd=ROOT, env={**env, "GPUDCM_REQUIRE_GPU": "0"}, capture_output=True, text=True,
                           timeout=300)
    assert plain.returncode == 0 and "1 skipped" in plain.stdout, plain.stdout[-2000:]


def test_gpu_runbook_is_one_command_with_a_dry_run(tmp_path):
    """ci/gpu.sh's structure on this machine: every step runs, logs under $OUT, fails cleanly without CUDA."""
    import os
    import subprocess

    if runtime.cuda_status()[0]:
        pytest.skip("a CUDA device is present")
    subprocess.run(["bash", "-n", "ci/gpu.sh"], cwd=ROOT, check=True)
    subprocess.run(["bash", "-n", "ci/wheels.sh"], cwd=ROOT, check=True)
    env = {**os.environ, "GPUDCM_GPU_DRY_RUN": "1", "OUT": str(tmp_path), "GPUDCM_GPU_BUDGET_S": "200"}
    run = subprocess.run(["bash", "ci/gpu.sh"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
    assert run.returncode == 1
    summary = (tmp_path / "summary.md").read_text()
    for name in ("setup", "probes", "tests", "memcheck", "bench"):
        assert f"| {name} | FAIL |" in summary and (tmp_path / f"{name}.log").is_file()
    assert summary.count("PROBE ") >= 12 and "No module named 'cupy'" in summary
    assert len(list(tmp_path.iterdir())) <= 8  # the device tool returns at most 8 files
