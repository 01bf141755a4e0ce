"""``gpudcm bench`` output: a Markdown report, a JSON file with every raw timing, a PNG bar chart."""

from __future__ import annotations

import json
import os
from pathlib import Path

from .machine import machine_lines
from .results import KEYS, OK, SKIPPED, Run

DASH = "-"


def _num(x: float | None) -> str:
    if x is None:
        return DASH
    if x >= 100:
        return f"{x:,.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def _ratio(x: float | None) -> str:
    return DASH if x is None else f"{x:.2f}x"


def _fraction(x: float | None) -> str:
    return DASH if x is None else f"{x:.2f}"


def results_table(run: Run) -> str:
    """One row per workload and measured contender: MB/s, frames/s, ratio to pydicom on one core, fraction
    of the copy limit, and the check against pydicom (or the error). Skipped rows are in :func:`not_measured`."""
    lines = [
        "| workload | library | MB/s | frames/s | vs pydicom 1 core | of copy limit | notes |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for w in run.workloads:
        if w.skipped:
            lines.append(f"| {w.name} | (all) | {DASH} | {DASH} | {DASH} | {DASH} | skipped: {_cell(w.skipped)} |")
            continue
        for r in w.results:
            if r.status == SKIPPED:
                continue
            notes = "; ".join(x for x in (r.check, r.note) if x) if r.status == OK else f"{r.status}: {r.reason}"
            lines.append(
                f"| {w.name} | {r.label} | {_num(w.mb_s(r))} | {_num(w.frames_s(r))} | {_ratio(w.vs_pydicom(r))} "
                f"| {_fraction(w.of_copy_limit(r))} | {_cell(notes)} |"
            )
    return "\n".join(lines)


def not_measured(run: Run) -> list[str]:
    """One line per skipped contender and reason, naming the workloads it applies to."""
    groups: dict[tuple[str, str], list[str]] = {}
    for w in run.workloads:
        for r in w.results:
            if r.status == SKIPPED:
                groups.setdefault((r.label, r.reason), []).append(w.name)
    total = sum(1 for w in run.workloads if not w.skipped)
    out = []
    for (label, reason), names in groups.items():
        where = "all workloads" if len(names) == total else ", ".join(names)
        out.append(f"- {label} ({where}): {reason}")
    return out


def _cell(text: str) -> str:
    return text.replace("|", "/").replace("\n", " ")


def workloads_table(run: Run) -> str:
    """What each workload is and where its bytes come from."""
    lines = [
        "| workload | transfer syntax | description | files | frames | compressed MB | decoded MB | source |",
        "|---|---|---|---:|---:|---:|---:|---|",
    ]
    for w in run.workloads:
        lines.append(
            f"| {w.name} | {w.syntax} | {w.description} | {w.files or DASH} | {w.frames or DASH} "
            f"| {_num(w.compressed_bytes / 1e6) if w.compressed_bytes else DASH} "
            f"| {_num(w.decoded_bytes / 1e6) if w.decoded_bytes else DASH} | {_cell(w.source or w.skipped)} |"
        )
    return "\n".join(lines)


def markdown(run: Run) -> str:
    """The whole report."""
    st = run.settings
    title = f"# gpudcm bench: device {st.get('device', '?')}{' (--quick)' if st.get('quick') else ''}"
    lines = [title, "", *machine_lines(run.machine)]
    lines += [
        f"- **method**: {st.get('method', '')}",
        "",
        "## Results",
        "",
        results_table(run),
        "",
        *(["Not measured:", "", *not_measured(run), ""] if not_measured(run) else []),
        "## Workloads",
        "",
        workloads_table(run),
        "",
        "## How to read it",
        "",
        "- One call decodes every file of the workload and returns the arrays (NumPy, or CuPy for gpudcm cuda); "
        "MB/s counts the decoded bytes (10^6 bytes of returned arrays) per second of the median call.",
        "- vs pydicom 1 core: median time of `pydicom.pixels.pixel_array` over the files / median time of the row "
        "(above 1 is faster).",
        "- of copy limit: median time of a pinned CuPy host-to-device copy of the workload's Pixel Data bytes / "
        "median time of the row (1.00 = as fast as moving the compressed input to the GPU; measured only with a "
        "CUDA device). The limit rows copy bytes and decode nothing.",
        "- notes: every contender's arrays are compared with pydicom's before timing (exactly equal, or the "
        "largest difference for lossy codecs); a row that errored says why.",
    ]
    if st.get("pool"):
        lines.append(f"- pydicom on all cores: {st['pool']}")
    lines.append("")
    return "\n".join(lines)


def write(run: Run, out_dir: str | os.PathLike, stem: str, *, plot: bool = True) -> dict[str, str]:
    """Write ``<stem>.md``, ``<stem>.json`` and (matplotlib permitting) ``<stem>.png``; returns what was
    written, by kind, with a ``png`` entry explaining a missing chart."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    md = out / f"{stem}.md"
    md.write_text(markdown(run), encoding="utf-8")
    written["md"] = str(md)
    js = out / f"{stem}.json"
    js.write_text(json.dumps(run.to_json(), indent=1) + "\n", encoding="utf-8")
    written["json"] = str(js)
    if plot:
        png = out / f"{stem}.png"
        why = chart(run, png)
        written["png"] = str(png) if why is None else f"not written: {why}"
    return written


FIGSIZE = (12.0, 6.0)
DPI = 100


def chart(run: Run, path: str | os.PathLike) -> str | None:
    """A grouped bar chart of MB/s (log scale) per workload and library; returns why not when it cannot."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError as exc:
        return f"matplotlib is not installed ({exc}); pip install 'gpudcm[view]'"
    shown = [w for w in run.workloads if not w.skipped and any(r.status == OK for r in w.results)]
    labels: dict[str, str] = {}
    for w in shown:
        for r in w.results:
            if r.status == OK:
                labels.setdefault(r.key, r.label)
    keys = [k for k in KEYS if k in labels] + [k for k in labels if k not in KEYS]
    fig, ax = plt.subplots(figsize=FIGSIZE, dpi=DPI)
    try:
        width = 0.8 / max(len(keys), 1)
        cmap = plt.get_cmap("tab10")
        for j, key in enumerate(keys):
            xs, ys = [], []
            for i, w in enumerate(shown):
                r = w.get(key)
                rate = w.mb_s(r) if r is not None else None
                if rate:
                    xs.append(i - 0.4 + width * (j + 0.5))
                    ys.append(rate)
            hatch = "//" if key.startswith(("h2d", "d2d")) else None
            bars = ax.bar(xs, ys, width, label=labels[key], color=cmap(j % 10), hatch=hatch, edgecolor="black",
                          linewidth=0.3)
            ax.bar_label(bars, labels=[_num(y) for y in ys], fontsize=6, rotation=90, padding=2)
        ax.set_yscale("log")
        plain = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}")
        ax.yaxis.set_major_formatter(plain)
        ax.yaxis.set_minor_formatter(plain)
        ax.set_xticks(range(len(shown)))
        ax.set_xticklabels([f"{w.name}\n{w.syntax}" for w in shown], fontsize=8)
        ax.set_ylabel("decoded MB/s (log scale)")
        gpu = run.machine.get("gpu", "")
        where = run.machine.get("cpu", "") + ("" if not gpu or gpu.startswith("none") else f" + {gpu}")
        ax.set_title(f"gpudcm bench, device {run.settings.get('device', '?')}: {where}"[:110], fontsize=10)
        ax.grid(axis="y", which="both", alpha=0.3)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        fig.subplots_adjust(left=0.07, right=0.78, bottom=0.15, top=0.92)
        fig.savefig(path, dpi=DPI)
    finally:
        plt.close(fig)
    return None
