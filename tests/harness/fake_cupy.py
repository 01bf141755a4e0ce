"""A CuPy stand-in for CPU tests of gpudcm's runtime glue: devices, streams, events, the memory pool's
stream ownership and module loading. It records what the code asks CuPy to do; kernels compute nothing
(the values of the kernels' logic are checked through the host build, tests/harness/hostbuild.py).

Contracts kept, from the CuPy 14.2 sources (github.com/cupy/cupy, tag v14.2.0):

- ``cupy.cuda.Device(n)``: a context manager making device n current for the thread
  (``cupy/cuda/device.pyx``: ``__enter__`` calls ``cudaSetDevice``, which fails with
  ``cudaErrorInvalidDevice`` for n >= the device count); ``Device()`` is the current device, ``.id`` its
  number, ``.compute_capability`` a string such as ``"90"``.
- ``cupy.cuda.runtime.getDeviceCount()``.
- ``Stream(non_blocking=True)``: ``with stream`` makes it the thread's current stream; outside every
  ``with``, the current stream is the null stream (``get_current_stream()``). ``stream.wait_event(e)``
  orders later work on the stream after `e`. ``Event().record(stream)`` records on `stream` (the
  current stream when None).
- Memory pool (``cupy/cuda/memory.pyx``): an allocation belongs to the arena of the stream current when
  it is made (``SingleDeviceMemoryPool._malloc``), and a freed block goes straight back to that arena
  (see ``StreamOrder`` in tests/harness/host_ops.py for the consequence). Every array here carries the
  stream and device it was allocated on (``.alloc_stream``, ``.device_id``) and the clock tick.
- ``RawModule(code=..., options=o)`` compiles with ``o + ('-ftz=true',)``
  (``cupy/cuda/compiler.py`` ``_compile_with_cache_cuda``: ``options += ('-ftz=true',)``);
  ``RawModule(path=...)`` loads a cubin/PTX file as it is (``cupy/_core/raw.pyx``: ``options = ()``).
  ``.effective_options`` is what the GPU code was compiled with (None: a file compiled elsewhere).
- A kernel call ``kernel(grid, block, args)`` runs on the current stream of the current device.
"""

from __future__ import annotations

import threading
import types
from dataclasses import dataclass, field

import numpy as np

CUPY_APPENDED_OPTIONS = ("-ftz=true",)


class CUDARuntimeError(RuntimeError):
    pass


@dataclass
class Log:
    """Everything the code under test asked for, in order."""

    tick: int = 0
    launches: list = field(default_factory=list)  # Launch records
    modules: list = field(default_factory=list)  # RawModule instances
    waits: list = field(default_factory=list)  # (stream, event)
    syncs: list = field(default_factory=list)  # streams synchronised
    streams_created: int = 0

    def next(self) -> int:
        self.tick += 1
        return self.tick


@dataclass
class Launch:
    kernel: str
    device: int
    stream: object
    args: tuple
    tick: int


class FakeCupy(types.ModuleType):
    """``import cupy`` inside the tests that install it (``sys.modules["cupy"] = FakeCupy(...)``)."""

    def __init__(self, n_devices: int = 1, compute_capability: str = "90") -> None:
        super().__init__("cupy")
        self.log = Log()
        self._tls = threading.local()
        fake = self

        class ndarray(np.ndarray):
            """A NumPy array that remembers the device and stream it was allocated on."""

            def __array_finalize__(self, obj):
                self.device_id = getattr(obj, "device_id", fake._device())
                self.alloc_stream = getattr(obj, "alloc_stream", fake._stream())
                self.alloc_tick = getattr(obj, "alloc_tick", 0)

            @property
            def device(self):
                return fake.cuda.Device(self.device_id)

            @property
            def data(self):
                return types.SimpleNamespace(ptr=self.ctypes.data)

            def get(self, stream=None):
                return np.array(self)

            def set(self, host, stream=None):
                self[...] = np.asarray(host).reshape(self.shape)

        self.ndarray = ndarray
        self.cuda = _cuda_namespace(self, n_devices, compute_capability)
        self.RawModule = self.cuda.RawModule

    # -- the thread's current device and stream
    def _device(self) -> int:
        return getattr(self._tls, "device", 0)

    def _stream(self):
        stack = getattr(self._tls, "streams", None)
        return stack[-1] if stack else self.cuda.Stream.null

    def _wrap(self, arr: np.ndarray):
        out = np.asarray(arr).view(self.ndarray)
        out.device_id, out.alloc_stream, out.alloc_tick = self._device(), self._stream(), self.log.next()
        return out

    # -- array creation: allocations on the current stream of the current device
    def empty(self, shape, dtype=float):
        return self._wrap(np.empty(shape, dtype=dtype))

    def zeros(self, shape, dtype=float):
        return self._wrap(np.zeros(shape, dtype=dtype))

    def asarray(self, a, dtype=None):
        if isinstance(a, self.ndarray) and (dtype is None or a.dtype == dtype):
            return a
        return self._wrap(np.array(a, dtype=dtype))

    def ascontiguousarray(self, a, dtype=None):
        return self._wrap(np.ascontiguousarray(a, dtype=dtype))

    def asnumpy(self, a, stream=None):
        return np.array(a)

    def get_array_module(self, *arrays):
        return self

    def __getattr__(self, name):  # dtypes and the rest of the array API come from NumPy
        value = getattr(np, name)
        if callable(value) and not isinstance(value, type):
            def wrapped(*args, **kwargs):
                out = value(*args, **kwargs)
                return self._wrap(out) if isinstance(out, np.ndarray) else out
            return wrapped
        return value


def _cuda_namespace(fake: FakeCupy, n_devices: int, cc: str):
    log = fake.log

    class Device:
        def __init__(self, device=None):
            self.id = fake._device() if device is None else int(device)
            self.compute_capability = cc

        def __enter__(self):
            if not 0 <= self.id < n_devices:
                raise CUDARuntimeError("cudaErrorInvalidDevice: invalid device ordinal")
            stack = fake._tls.__dict__.setdefault("device_stack", [])
            stack.append(fake._device())
            fake._tls.device = self.id
            return self

        def __exit__(self, *exc):
            fake._tls.device = fake._tls.device_stack.pop()
            return False

        def use(self):
            if not 0 <= self.id < n_devices:
                raise CUDARuntimeError("cudaErrorInvalidDevice: invalid device ordinal")
            fake._tls.device = self.id

    class Stream:
        null: Stream

        def __init__(self, null=False, non_blocking=False, ptr=None):
            self.non_blocking = non_blocking
            self.device_id = fake._device()
            if not null:
                log.streams_created += 1
            self.ptr = 0 if null else (ptr or id(self))
            self.waited: list = []  # events this stream waits for

        def __enter__(self):
            fake._tls.__dict__.setdefault("streams", []).append(self)
            return self

        def __exit__(self, *exc):
            fake._tls.streams.pop()
            return False

        def wait_event(self, event):
            self.waited.append(event)
            log.waits.append((self, event))

        def synchronize(self):
            log.syncs.append(self)

        def record(self, event=None):
            event = event or Event()
            event.record(self)
            return event

        def __repr__(self):
            return "Stream.null" if self.ptr == 0 else f"Stream({self.ptr:#x})"

    Stream.null = Stream(null=True)

    class Event:
        def __init__(self, block=False, disable_timing=False, interprocess=False):
            self.stream = None
            self.tick = None

        def record(self, stream=None):
            self.stream = stream if stream is not None else fake._stream()
            self.tick = log.next()

        def synchronize(self):
            pass

    class Kernel:
        def __init__(self, module, name):
            self.module, self.name = module, name

        def __call__(self, grid, block, args, **kwargs):
            log.launches.append(Launch(self.name, fake._device(), fake._stream(), tuple(args), log.next()))

    class RawModule:
        def __init__(self, *, code=None, path=None, options=(), **kwargs):
            if (code is None) == (path is None):
                raise TypeError("Exactly one of `code` and `path` keyword arguments must be given.")
            self.code, self.path, self.device_id = code, path, fake._device()
            self.options = tuple(options) if code is not None else ()
            self.effective_options = self.options + CUPY_APPENDED_OPTIONS if code is not None else None
            log.modules.append(self)

        def get_function(self, name):
            return Kernel(self, name)

    def get_current_stream(device=None):
        return fake._stream()

    def alloc_pinned_memory(nbytes):
        return bytearray(nbytes)

    runtime = types.SimpleNamespace(getDeviceCount=lambda: n_devices, CUDARuntimeError=CUDARuntimeError)
    return types.SimpleNamespace(
        Device=Device, Stream=Stream, Event=Event, RawModule=RawModule, runtime=runtime,
        get_current_stream=get_current_stream, alloc_pinned_memory=alloc_pinned_memory,
    )


def ordered_after_allocation(fake: FakeCupy, launch: Launch) -> list[str]:
    """The arrays `launch` uses that were allocated on another stream with no wait on an event recorded
    there after the allocation (each a race under CuPy's pool semantics); empty when all are ordered."""
    problems = []
    for k, arg in enumerate(launch.args):
        if not isinstance(arg, fake.ndarray) or arg.alloc_stream is launch.stream:
            continue
        ok = any(e.stream is arg.alloc_stream and e.tick is not None and arg.alloc_tick < e.tick < launch.tick
                 for e in launch.stream.waited)
        if not ok:
            problems.append(f"{launch.kernel} arg {k}: allocated on {arg.alloc_stream}, used on {launch.stream}")
    return problems
