"""The batched device pipeline: many frames per transfer, per launch.

Sources are parsed on the CPU; their frames' bytes are gathered into one pinned staging buffer per
batch, copied to the device in one transfer, and decoded by one kernel launch per run of items that
share a kernel signature. Two staging buffers and two streams alternate, so gathering batch k+1 on the
host overlaps the copy and kernels of batch k.

All planning here (batch splitting, staging layout, launch grouping, argument packing) is NumPy-only;
the device work goes through an :class:`Ops` object: :class:`gpudcm.cuda.ops.CupyOps` on a GPU, and in
CI a host implementation that runs the kernels' logic built with g++.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from ..errors import InvalidPixelData
from ..frames import Frame, native_extents, native_frame
from ..spec import PixelSpec
from .kernels import NativeLaunch, native_flags, plan_native
from .native import check_status, native_span, stage_native

STAGING_ALIGN = 16  # keeps every staged span 16-byte aligned (and its byte-pair parity, for OW swaps)
# Small enough that gathering batch k+1 overlaps the copy/kernels of batch k, large enough that a
# launch covers many frames.
DEFAULT_BATCH_BYTES = 32 << 20
# A single host thread copies well below PCIe bandwidth; large batches are gathered by several threads
# (NumPy releases the GIL for the copies).
GATHER_THREADS = 8
_PARALLEL_GATHER_BYTES = 4 << 20


class Ops(Protocol):
    """What the pipeline needs from a device (CuPy) or from the host stand-in used in CI."""

    xp: Any

    def pinned(self, slot: int, nbytes: int) -> np.ndarray: ...  # host staging buffer `slot` (0 or 1)

    def wait(self, slot: int) -> None: ...  # until work issued on `slot`'s stream has finished

    def upload(self, slot: int, host: np.ndarray) -> Any: ...  # async copy on `slot`'s stream

    def empty(self, shape: tuple[int, ...], dtype: np.dtype) -> Any: ...  # on the caller's current stream

    def follow_current(self, slot: int) -> None: ...  # `slot`'s stream waits for the current stream's work

    def launch_native(self, slot: int, plan: NativeLaunch, src: Any, frame_offsets: np.ndarray, out: Any) -> Any: ...

    def status(self, pending: Any) -> int: ...  # the status word of a launch, synchronising if needed

    colour_launcher: Any  # runs a ColourLaunch in place (after every status() has synchronised)
    rle_launchers: Any  # (RLE launcher, native launcher) for gpudcm.cuda.rle.decode_rle
    jpeg_env: Any  # gpudcm.routing.GpuEnv: which GPU JPEG libraries frames may be routed to
    jpeg_decoders: Any  # {"nvjpeg": ..., "j2k": ...} or None for the real libraries


@dataclass
class Request:
    """One source's part of a batch: which frames of which element, and where they go.

    `buffer` is the element's bytes, or a :class:`gpudcm.reader.PixelReader`: then the frames are read
    from the file straight into the staging buffer when the batch is gathered (no copy of the element).
    `index` is one frame, a list of frames (the result keeps a frame axis) or None for all."""

    spec: PixelSpec
    buffer: Any
    index: Any = None
    frames: list[Frame] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.frames:
            s = self.spec
            if self.index is None:
                self.frames = native_extents(s)
            elif isinstance(self.index, list):
                self.frames = [native_frame(s, s.check_index(i)) for i in self.index]
            else:
                self.frames = [native_frame(s, s.check_index(self.index))]

    @property
    def lazy(self) -> bool:
        return hasattr(self.buffer, "read_range_into")

    @property
    def shape(self) -> tuple[int, ...]:
        if isinstance(self.index, list):
            return (len(self.index), *self.spec.frame_shape)
        return self.spec.shape(self.index)

    @property
    def n_frames(self) -> int:
        return len(self.frames)


@dataclass(frozen=True)
class FileSpan:
    """Bytes lo..hi of a lazy reader's element: read into the staging buffer by :func:`gather`."""

    reader: Any
    lo: int
    hi: int

    def __len__(self) -> int:
        return self.hi - self.lo

    def copy_into(self, dst: np.ndarray) -> None:
        self.reader.read_range_into(self.lo, dst)


def signature(req: Request) -> tuple:
    """Requests with equal signatures can share one native launch."""
    s = req.spec
    return (s.bits_allocated, s.rows, s.columns, s.samples_per_pixel, s.bits_stored, native_flags(s), s.dtype.str)


def split_batches(sizes: Sequence[int], budget: int) -> list[range]:
    """Consecutive runs of items whose sizes add up to at most `budget` (an oversized item stands alone)."""
    if budget <= 0:
        raise ValueError("batch budget must be positive")
    batches, start, total = [], 0, 0
    for i, n in enumerate(sizes):
        if i > start and total + n > budget:
            batches.append(range(start, i))
            start, total = i, 0
        total += n
    if start < len(sizes):
        batches.append(range(start, len(sizes)))
    return batches


def align(n: int, to: int = STAGING_ALIGN) -> int:
    return (n + to - 1) // to * to


@dataclass(frozen=True)
class Staged:
    """Where each request's bytes sit in a batch's staging buffer."""

    offsets: tuple[int, ...]  # start of each request's span in the staging buffer
    spans: tuple[Any, ...]  # the host bytes to copy there (views into the elements, or FileSpans)
    frame_offsets: tuple[np.ndarray, ...]  # per request, its frames' starts relative to its span
    total: int


def stage(requests: Sequence[Request]) -> Staged:
    """Lay out the requests' frame bytes back to back (aligned) for one host-to-device copy."""
    offsets, spans, frames, pos = [], [], [], 0
    for req in requests:
        if req.lazy:
            lo, hi, frame_offsets = native_span(req.spec, req.spec.pixel_nbytes, req.frames)
            span: Any = FileSpan(req.buffer, lo, hi)
        else:
            staged = stage_native(req.spec, req.buffer, req.frames)
            span, frame_offsets = staged.data, staged.frame_offsets
        offsets.append(pos)
        spans.append(span)
        frames.append(frame_offsets)
        pos = align(pos + len(span))
    return Staged(tuple(offsets), tuple(spans), tuple(frames), pos)


def launch_groups(requests: Sequence[Request]) -> list[range]:
    """Consecutive runs of requests sharing a kernel signature: one launch each."""
    groups, start = [], 0
    for i in range(1, len(requests) + 1):
        if i == len(requests) or signature(requests[i]) != signature(requests[start]):
            groups.append(range(start, i))
            start = i
    return groups


def group_launch(requests: Sequence[Request], group: range, staged: Staged) -> tuple[NativeLaunch, np.ndarray]:
    """The launch decoding every frame of `group`, with frame offsets into the batch's staging buffer."""
    first = requests[group.start].spec
    n_frames = sum(requests[i].n_frames for i in group)
    plan = plan_native(first, n_frames)
    unit = 8 if first.bits_allocated == 1 else 1  # 1-bit offsets count bits
    offsets = np.concatenate([staged.frame_offsets[i] + staged.offsets[i] * unit for i in group]).astype(np.int64)
    return plan, offsets


def gather(host: np.ndarray, staged: Staged) -> None:
    """Copy every staged span into the (pinned) host buffer, with several threads for large batches."""

    def copy(i: int) -> None:
        off, span = staged.offsets[i], staged.spans[i]
        if isinstance(span, FileSpan):
            span.copy_into(host[off : off + len(span)])  # file -> staging, no intermediate copy
        else:
            host[off : off + len(span)] = span

    if staged.total < _PARALLEL_GATHER_BYTES or len(staged.spans) == 1:
        for i in range(len(staged.spans)):
            copy(i)
        return
    with ThreadPoolExecutor(max_workers=min(GATHER_THREADS, len(staged.spans))) as pool:
        list(pool.map(copy, range(len(staged.spans))))


def stackable(requests: Sequence[Request]) -> bool:
    first = requests[0]
    return all(r.shape == first.shape and r.spec.dtype == first.spec.dtype for r in requests)


@dataclass(frozen=True)
class _Part:
    """Frames of one request staged together: all of them, or (a request bigger than a batch) a run of
    them with `dest`, the rows of the request's output they are decoded into."""

    owner: int
    request: Request
    dest: Any = None


def _staged_bytes(req: Request) -> int:
    return sum(f[0].length for f in req.frames) + 2


def _parts(requests: Sequence[Request], budget: int, shared: Any, ops: Ops, results: list) -> list[_Part]:
    """The requests as batch-sized parts: a request of more than `budget` bytes is split into runs of
    frames decoded into its one output (its slot of `shared`, or allocated once here, put in `results`),
    so the staging holds one batch, not the request's element."""
    parts = []
    for i, r in enumerate(requests):
        if r.n_frames < 2 or (_staged_bytes(r) <= budget and _span_bytes(r) <= budget):
            parts.append(_Part(i, r))
            continue
        target = shared[i] if shared is not None else ops.empty(r.shape, r.spec.dtype)
        results[i] = target
        flat, pixels = target.reshape(-1), r.spec.frame_pixels
        numbers = list(range(r.spec.number_of_frames)) if r.index is None else list(r.index)
        per = max(1, (budget - 2) // max(1, max(f[0].length for f in r.frames)))
        for a, run in _runs(numbers, per):  # a subset's far-apart frames are not staged with what lies between
            parts.append(_Part(i, Request(r.spec, r.buffer, run), flat[a * pixels : (a + len(run)) * pixels]))
    return parts


def _span_bytes(req: Request) -> int:
    """The element bytes staging `req` copies: from its first frame's start to its last frame's end."""
    return max(f[0].end for f in req.frames) - min(f[0].offset for f in req.frames)


def _runs(numbers: Sequence[int], per: int) -> list[tuple[int, list[int]]]:
    """(position, frame numbers) runs of `numbers`: consecutive frames, at most `per` a run."""
    runs: list[tuple[int, list[int]]] = []
    for k, n in enumerate(numbers):
        if runs and len(runs[-1][1]) < per and n == runs[-1][1][-1] + 1:
            runs[-1][1].append(n)
        else:
            runs.append((k, [n]))
    return runs


def _part_groups(parts: Sequence[_Part]) -> list[range]:
    """:func:`launch_groups` of the parts' requests, each part with its own destination alone."""
    out = []
    for group in launch_groups([p.request for p in parts]):
        start = group.start
        for i in group:
            if parts[i].dest is not None:
                if i > start:
                    out.append(range(start, i))
                out.append(range(i, i + 1))
                start = i + 1
        if start < group.stop:
            out.append(range(start, group.stop))
    return out


def decode_native_batch(
    requests: Sequence[Request], ops: Ops, *, batch_bytes: int | None = None, stack: bool = False,
    out: Any = None,
) -> list | Any:
    """Decode the native frames of every request; one array per request, or one stacked array.

    With ``stack=True`` (requires equal shapes and dtypes) the output is preallocated once as
    (requests, *shape), or is `out` (the caller's, C-contiguous, that shape and dtype), and every launch
    writes straight into it. A request bigger than a batch (`batch_bytes`, default DEFAULT_BATCH_BYTES)
    is staged and decoded a batch of frames at a time into its one output.
    """
    if not requests:
        return []
    if stack and not stackable(requests):
        raise InvalidPixelData("cannot stack: the sources differ in shape or dtype")
    shared = None
    if stack:
        shared = out if out is not None else ops.empty((len(requests), *requests[0].shape), requests[0].spec.dtype)
    results: list[Any] = [None] * len(requests)
    budget = batch_bytes or DEFAULT_BATCH_BYTES
    parts = _parts(requests, budget, shared, ops, results)
    sizes = [_staged_bytes(p.request) for p in parts]
    pending: list[tuple[Any, PixelSpec]] = []
    for k, batch in enumerate(split_batches(sizes, budget)):
        slot = k % 2
        ps = [parts[i] for i in batch]
        reqs = [p.request for p in ps]
        staged = stage(reqs)
        ops.wait(slot)  # the previous batch on this slot has finished reading its staging buffer
        host = ops.pinned(slot, staged.total)
        gather(host, staged)
        device_src = ops.upload(slot, host[: staged.total])
        for group in _part_groups(ps):
            plan, offsets = group_launch(reqs, group, staged)
            head = ps[group.start]
            if head.dest is not None:  # a run of a big request's frames: straight into its rows
                out = head.dest
            elif shared is not None:
                out = shared[head.owner : head.owner + len(group)]
            else:
                out = ops.empty((plan.n_elements,), head.request.spec.dtype)
            ops.follow_current(slot)  # `out` came from the current stream's pool: order the write after it
            pending.append((ops.launch_native(slot, plan, device_src, offsets, out.reshape(-1)), head.request.spec))
            if shared is None and head.dest is None:
                pos = 0
                for i in group:
                    r = reqs[i]
                    n = r.n_frames * r.spec.frame_pixels
                    results[ps[i].owner] = out[pos : pos + n].reshape(r.shape)
                    pos += n
    for handle, spec in pending:
        check_status(spec, ops.status(handle))
    if shared is not None:
        return shared
    return results

