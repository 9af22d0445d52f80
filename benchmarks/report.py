"""Turning a results JSON into verdicts against the targets, text tables, docs/performance.md and an SVG plot."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "performance.md"
PLOT = ROOT / "benchmarks" / "results" / "throughput.svg"

ONE_WAY_RATE = 2000.0
ONE_WAY_RATIO = 100.0
MULTI_CEILING_SHARE = 0.70
MULTI_RATIO = 50.0
P99_LIMIT_S = 0.5
CPU_SHARE = 1 / 3
MEMORY_LIMIT_MIB = 128.0
#: ``kind`` of the rows of the one-way replicator fed by a Kinesis data stream (REPLICATION_CHANGE_SOURCE=KINESIS).
KINESIS_KIND = "replicator (Kinesis)"


# --- lookups -------------------------------------------------------------------------------------------------


def _rows(results: dict[str, Any], **match: Any) -> list[dict[str, Any]]:
    """Replication rows matching ``match``; only the main run's unless ``run`` is given (rows of runs added
    with ``+file`` carry their run's number, see :func:`merge`)."""
    match = {"run": None, **match}
    return [r for r in results.get("replication", []) if all(r.get(k) == v for k, v in match.items())]


def _one(results: dict[str, Any], **match: Any) -> dict[str, Any] | None:
    rows = _rows(results, **match)
    return rows[0] if rows else None


def ceiling(results: dict[str, Any], kind: str) -> dict[str, Any] | None:
    rows = [r for r in results.get("ceiling", []) if r["kind"] == kind]
    return max(rows, key=lambda r: r["items_per_s"]) if rows else None


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "NOT met")


# --- targets -------------------------------------------------------------------------------------------------


def evaluate(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per target with the measured figures and whether the target is met."""
    out: list[dict[str, Any]] = []
    if "replication" in results:
        rtt = results["settings"]["rtt_ms"]
        sizes = results["settings"]["batch_sizes"]
        naive = {m: _one(results, kind="naive", mode=m, rtt_ms=rtt) for m in ("ONE_WAY", "MULTI_ACTIVE")}
        naive0 = {m: _one(results, kind="naive", mode=m, rtt_ms=0) for m in ("ONE_WAY", "MULTI_ACTIVE")}

        # 1. one-way at the round trip, per batch size.
        per_size = []
        for size in sizes:
            row = _one(results, kind="replicator", workload="spread", mode="ONE_WAY", rtt_ms=rtt, batch_size=size,
                       concurrency=64)
            if row and naive["ONE_WAY"]:
                ratio = row["records_per_s"] / naive["ONE_WAY"]["records_per_s"]
                per_size.append({"batch_size": size, "records_per_s": row["records_per_s"], "ratio": ratio,
                                 "met": row["records_per_s"] >= ONE_WAY_RATE and ratio >= ONE_WAY_RATIO})
        met_sizes = [p["batch_size"] for p in per_size if p["met"]]
        out.append({
            "target": f"one-way, {rtt:g} ms RTT: >= {ONE_WAY_RATE:,.0f} records/s and >= {ONE_WAY_RATIO:g}x naive",
            "per_batch_size": per_size,
            "smallest_batch_size_meeting": min(met_sizes) if met_sizes else None,
            "verdict": _verdict(bool(met_sizes) if per_size else None),
        })

        # 2. multi-active at the round trip, per batch size and concurrency.
        cond = ceiling(results, "conditional")
        per_config = []
        for row in _rows(results, kind="replicator", workload="spread", mode="MULTI_ACTIVE", rtt_ms=rtt):
            if not (cond and naive["MULTI_ACTIVE"]):
                continue
            share = row["records_per_s"] / cond["items_per_s"]
            ratio = row["records_per_s"] / naive["MULTI_ACTIVE"]["records_per_s"]
            per_config.append({"batch_size": row["batch_size"], "concurrency": row["concurrency"],
                               "records_per_s": row["records_per_s"], "ceiling_share": share, "ratio": ratio,
                               "met": share >= MULTI_CEILING_SHARE and ratio >= MULTI_RATIO})
        met_configs = [p for p in per_config if p["met"]]
        out.append({
            "target": f"multi-active, {rtt:g} ms RTT: >= {MULTI_CEILING_SHARE:.0%} of the conditional-write "
                      f"ceiling and >= {MULTI_RATIO:g}x naive",
            "ceiling_items_per_s": cond["items_per_s"] if cond else None,
            "per_config": per_config,
            "configs_meeting": [(p["batch_size"], p["concurrency"]) for p in met_configs],
            "verdict": _verdict(bool(met_configs) if per_config else None),
        })

        # 3. p99 of a 100-record batch at the round trip.
        p99 = {}
        for mode in ("ONE_WAY", "MULTI_ACTIVE"):
            row = _one(results, kind="replicator", workload="spread", mode=mode, rtt_ms=rtt, batch_size=100,
                       concurrency=64)
            if row:
                p99[mode] = row["p99_s"]
        out.append({
            "target": f"p99 of a 100-record batch at {rtt:g} ms RTT <= {P99_LIMIT_S} s, both modes",
            "p99_s": p99,
            "verdict": _verdict(all(v <= P99_LIMIT_S for v in p99.values()) if p99 else None),
        })

        # 4. CPU per record, zero round trip, one-way.
        cpu = []
        for row in _rows(results, kind="replicator", workload="spread", mode="ONE_WAY", rtt_ms=0):
            if naive0["ONE_WAY"]:
                share = row["cpu_us_per_record"] / naive0["ONE_WAY"]["cpu_us_per_record"]
                cpu.append({"batch_size": row["batch_size"], "cpu_us_per_record": row["cpu_us_per_record"],
                            "naive_cpu_us_per_record": naive0["ONE_WAY"]["cpu_us_per_record"], "share": share,
                            "met": share <= CPU_SHARE})
        out.append({
            "target": "zero RTT, one-way: CPU per record <= 1/3 of the naive baseline's",
            "per_batch_size": cpu,
            "verdict": _verdict(all(c["met"] for c in cpu) if cpu else None),
        })
    if "memory" in results:
        peaks = {r["mode"]: r["peak_rss_mib"] for r in results["memory"]}
        out.append({
            "target": f"a 6 MB batch within a 128 MB function (peak RSS of a fresh process <= {MEMORY_LIMIT_MIB:g} MiB)",
            "peak_rss_mib": peaks,
            "verdict": _verdict(all(v <= MEMORY_LIMIT_MIB for v in peaks.values())),
        })
    return out


# --- text ----------------------------------------------------------------------------------------------------


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines


def replication_table(results: dict[str, Any]) -> list[str]:
    rows = []
    runs = any("run" in r for r in results.get("replication", []))
    for r in results.get("replication", []):
        rows.append([str(r.get("run", 1))] * runs + [
            r["workload"], r["kind"], r["mode"], f"{r['rtt_ms']:g}", str(r["batch_size"]), str(r["concurrency"]),
            f"{r['records']:,}" + (" (sample)" if r["sample"] else ""), f"{r['records_per_s']:,.1f}",
            f"{r['p50_s'] * 1000:,.0f}", f"{r['p99_s'] * 1000:,.0f}", f"{r['cpu_us_per_record']:,.0f}",
            f"{r['peak_rss_mib']:.0f}", r["copy_check"], f"{r['load'][0]:.2f}",
        ])
    return _table(
        ["run"] * runs + ["keys", "replicator", "mode", "RTT ms", "batch", "max conc.", "records", "records/s", "p50 batch ms",
         "p99 batch ms", "CPU us/record", "peak RSS MiB", "copy check", "load 1m"],
        rows,
    )


def ceiling_table(results: dict[str, Any]) -> list[str]:
    rows = [[r["kind"], str(r["threads"]), f"{r['items']:,}", f"{r['items_per_s']:,.0f}", str(r["errors"]),
             f"{r['load'][0]:.2f}"] for r in results.get("ceiling", [])]
    return _table(["writes", "client threads", "items", "items/s", "errors", "load 1m"], rows)


def memory_table(results: dict[str, Any]) -> list[str]:
    rows = [[r["mode"], f"{r['records']:,}", f"{r['payload_bytes']:,}", f"{r['imported_rss_mib']:.1f}",
             f"{r['peak_rss_mib']:.1f}", f"{r['seconds']:.2f}", str(r["failed"])] for r in results.get("memory", [])]
    return _table(["mode", "records", "event bytes", "RSS after import + clients MiB", "peak RSS MiB", "seconds",
                   "failed"], rows)


def backfill_table(results: dict[str, Any]) -> list[str]:
    rows = []
    for r in results.get("backfill", []):
        rows.append([
            "cdk-replication backfill" if r["kind"] == "cli" else "naive scan + put",
            f"{r['rtt_ms']:g}", r["options"] if r["kind"] == "cli" else "sequential",
            f"{r.get('table_items', r['items']):,}",
            f"{r['items']:,}" + (" (sample)" if r["sample"] else ""), f"{r['seconds']:,.1f}",
            f"{r['items_per_s']:,.1f}", f"{r['cpu_us_per_item']:,.0f}" if r.get("cpu_us_per_item") else "",
            f"{r['load'][0]:.2f}",
        ])
    return _table(["copy", "RTT ms", "options", "table items", "items copied", "seconds", "items/s", "CPU us/item",
                   "load 1m"], rows)


def backfill_ratios(results: dict[str, Any]) -> list[str]:
    rows = results.get("backfill", [])
    lines = []
    for rtt in sorted({r["rtt_ms"] for r in rows}):
        naive = next((r for r in rows if r["kind"] == "naive" and r["rtt_ms"] == rtt), None)
        for r in rows:
            if r["kind"] == "cli" and r["rtt_ms"] == rtt and naive:
                lines.append(f"- RTT {rtt:g} ms, backfill ({r['options']}, {r.get('table_items', r['items']):,} items): "
                             f"{r['items_per_s']:,.0f} items/s = "
                             f"{r['items_per_s'] / naive['items_per_s']:,.1f}x the naive copy "
                             f"({naive['items_per_s']:,.1f} items/s)")
    return lines


def experiment_lines(results: dict[str, Any]) -> list[str]:
    """Each run of the proposed client tuning next to the same run of the current code."""
    lines = []
    for t in results.get("replication", []):
        if not t["kind"].endswith("-tuning"):
            continue
        base = _one(results, run=t.get("run"), kind="replicator", workload=t["workload"], mode=t["mode"],
                    rtt_ms=t["rtt_ms"], batch_size=t["batch_size"], concurrency=t["concurrency"])
        if base:
            lines.append(
                f"- {t['mode']}, RTT {t['rtt_ms']:g} ms, batch {t['batch_size']}, max concurrency {t['concurrency']}: "
                f"{base['records_per_s']:,.0f} -> {t['records_per_s']:,.0f} records/s "
                f"({t['records_per_s'] / base['records_per_s'] - 1:+.0%}), CPU {base['cpu_us_per_record']:,.0f} -> "
                f"{t['cpu_us_per_record']:,.0f} us/record ({t['cpu_us_per_record'] / base['cpu_us_per_record'] - 1:+.0%}), "
                f"p99 {base['p99_s'] * 1000:,.0f} -> {t['p99_s'] * 1000:,.0f} ms"
            )
    return lines


def kinesis_lines(results: dict[str, Any]) -> list[str]:
    """Each run of the replicator fed by Kinesis against the naive baseline and the DynamoDB Streams
    replicators (one-way, multi-active) of the same run, workload, round trip and batch size."""
    lines = []
    for k in [r for r in results.get("replication", []) if r["kind"] == KINESIS_KIND]:
        same = dict(run=k.get("run"), rtt_ms=k["rtt_ms"])

        def peer(mode: str) -> dict[str, Any] | None:
            rows = _rows(results, **same, kind="replicator", workload=k["workload"], mode=mode,
                         batch_size=k["batch_size"])
            return next((r for r in rows if r["concurrency"] == k["concurrency"]), rows[0] if rows else None)

        parts = [f"{k['records_per_s']:,.0f} records/s, p99 {k['p99_s'] * 1000:,.0f} ms, "
                 f"CPU {k['cpu_us_per_record']:,.0f} us/record"]
        naive = _one(results, **same, kind="naive", mode="ONE_WAY")
        if naive:
            parts.append(f"{k['records_per_s'] / naive['records_per_s']:,.1f}x naive ({naive['records_per_s']:,.1f}/s)"
                         + (f", CPU {k['cpu_us_per_record'] / naive['cpu_us_per_record']:.2f}x naive's"
                            if k["rtt_ms"] == 0 else ""))
        for mode, name in (("ONE_WAY", "one-way"), ("MULTI_ACTIVE", "multi-active")):
            other = peer(mode)
            if other:
                parts.append(f"{k['records_per_s'] / other['records_per_s']:.2f}x {name} over DynamoDB Streams "
                             f"({other['records_per_s']:,.0f}/s at concurrency {other['concurrency']}, p99 "
                             f"{other['p99_s'] * 1000:,.0f} ms, CPU {other['cpu_us_per_record']:,.0f} us/record)")
        lines.append(f"- {k['workload']}, RTT {k['rtt_ms']:g} ms, batch {k['batch_size']}, max concurrency "
                     f"{k['concurrency']}" + (f" (run {k['run']})" if "run" in k else "") + ": " + "; ".join(parts))
    return lines


def recommendations(results: dict[str, Any]) -> list[str]:
    """BATCH_SIZE and REPLICATION_MAX_CONCURRENCY as this run's numbers suggest them."""
    targets = {t["target"].split(",")[0]: t for t in results.get("targets", [])}
    lines = []
    one_way = targets.get("one-way")
    if one_way and one_way["per_batch_size"]:
        best = max(one_way["per_batch_size"], key=lambda p: p["records_per_s"])
        chosen = one_way["smallest_batch_size_meeting"]
        if chosen:
            lines.append(f"- BATCH_SIZE: {chosen}, the smallest batch size at which one-way met its target "
                         f"(100 gives {one_way['per_batch_size'][0]['records_per_s']:,.0f} records/s: at least one "
                         f"round trip per batch caps a shard at batch size / RTT).")
        else:
            lines.append(f"- BATCH_SIZE: no batch size met the one-way target; the fastest was {best['batch_size']} "
                         f"({best['records_per_s']:,.0f} records/s).")
    multi = targets.get("multi-active")
    if multi and multi["per_config"]:
        largest = max(p["batch_size"] for p in multi["per_config"])
        at_largest = sorted((p for p in multi["per_config"] if p["batch_size"] == largest), key=lambda p: p["concurrency"])
        meeting = [p for p in at_largest if p["met"]]
        best = max(at_largest, key=lambda p: p["records_per_s"])
        if meeting:
            lines.append(f"- REPLICATION_MAX_CONCURRENCY: {meeting[0]['concurrency']}, the smallest value at which "
                         f"multi-active met its target at batch size {largest} "
                         + ", ".join(f"({p['concurrency']}: {p['records_per_s']:,.0f}/s)" for p in at_largest) + ".")
        else:
            lines.append(f"- REPLICATION_MAX_CONCURRENCY: no value met the multi-active target at batch size {largest}; "
                         f"the fastest was {best['concurrency']} "
                         + ", ".join(f"({p['concurrency']}: {p['records_per_s']:,.0f}/s)" for p in at_largest) + ".")
    return lines


def targets_text(results: dict[str, Any]) -> list[str]:
    lines = []
    for t in results.get("targets", []):
        verdict = t["verdict"]
        sizes = t.get("per_batch_size", [])
        if verdict == "met" and sizes and "ratio" in sizes[0] and not all(p["met"] for p in sizes):
            verdict = ("met at batch sizes " + ", ".join(str(p["batch_size"]) for p in sizes if p["met"])
                       + "; NOT met at " + ", ".join(str(p["batch_size"]) for p in sizes if not p["met"]))
        configs = t.get("per_config", [])
        if verdict == "met" and configs and not all(p["met"] for p in configs):
            verdict = ("met at (batch, concurrency) " + ", ".join(f"({p['batch_size']}, {p['concurrency']})"
                                                                 for p in configs if p["met"])
                       + "; NOT met at " + ", ".join(f"({p['batch_size']}, {p['concurrency']})"
                                                     for p in configs if not p["met"]))
        lines.append(f"- **{verdict}** — {t['target']}")
        for p in t.get("per_batch_size", []):
            if "ratio" in p:
                lines.append(f"  - batch {p['batch_size']}: {p['records_per_s']:,.0f} records/s, "
                             f"{p['ratio']:,.0f}x naive — {_verdict(p['met'])}")
            else:
                lines.append(f"  - batch {p['batch_size']}: {p['cpu_us_per_record']:,.0f} us/record vs naive "
                             f"{p['naive_cpu_us_per_record']:,.0f} = {p['share']:.2f} — {_verdict(p['met'])}")
        for p in t.get("per_config", []):
            lines.append(f"  - batch {p['batch_size']}, max concurrency {p['concurrency']}: "
                         f"{p['records_per_s']:,.0f} records/s = {p['ceiling_share']:.0%} of the ceiling "
                         f"({t['ceiling_items_per_s']:,.0f}/s), {p['ratio']:,.0f}x naive — {_verdict(p['met'])}")
        if "p99_s" in t:
            lines.append("  - " + ", ".join(f"{m}: {v * 1000:,.0f} ms" for m, v in t["p99_s"].items()))
        if "peak_rss_mib" in t:
            lines.append("  - " + ", ".join(f"{m}: {v:.1f} MiB" for m, v in t["peak_rss_mib"].items()))
    return lines


def text_report(results: dict[str, Any]) -> str:
    parts = []
    if results.get("ceiling"):
        parts += ["Ceiling (DynamoDB Local, no round trip):", *ceiling_table(results), ""]
    if results.get("replication"):
        parts += ["Replication (one shard, one batch at a time):", *replication_table(results), ""]
    if results.get("memory"):
        parts += ["6 MB event:", *memory_table(results), ""]
    if results.get("backfill"):
        parts += ["Backfill:", *backfill_table(results), *backfill_ratios(results), ""]
    if experiment_lines(results):
        parts += ["Experiment, proposed client tuning (current -> tuned):", *experiment_lines(results), ""]
    if kinesis_lines(results):
        parts += ["One-way fed by Kinesis vs the naive baseline and DynamoDB Streams:", *kinesis_lines(results), ""]
    parts += ["Targets:", *targets_text(results)]
    if recommendations(results):
        parts += ["Suggested defaults:", *recommendations(results)]
    parts.append(f"load average (1, 5, 15 min): start {results.get('load_start')}, end {results.get('load_end')}")
    return "\n".join(parts)


# --- plot ----------------------------------------------------------------------------------------------------


def plot_svg(results: dict[str, Any]) -> str:
    """Records/s (log scale) against the mapping's batch size at the simulated round trip."""
    rtt = results["settings"]["rtt_ms"]
    sizes = sorted(results["settings"]["batch_sizes"])
    width, height = 900, 460
    left, right, top, bottom = 70, 300, 40, 50
    pw, ph = width - left - right, height - top - bottom
    lo, hi = 1.0, 10_000.0

    def x(size: float) -> float:
        if len(sizes) == 1:
            return left + pw / 2
        return left + pw * (math.log10(size) - math.log10(sizes[0])) / (math.log10(sizes[-1]) - math.log10(sizes[0]))

    def y(value: float) -> float:
        value = min(max(value, lo), hi)
        return top + ph * (1 - (math.log10(value) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)))

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="12">', f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{left}" y="22" font-size="14" font-weight="bold">One shard, {rtt:g} ms round trip: '
           f'records/s by batch size (log scale)</text>']
    for decade in (1, 10, 100, 1000, 10000):
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{y(decade):.1f}" y2="{y(decade):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 8}" y="{y(decade) + 4:.1f}" text-anchor="end">{decade:,}</text>')
    for size in sizes:
        out.append(f'<line x1="{x(size):.1f}" x2="{x(size):.1f}" y1="{top}" y2="{top + ph}" stroke="#eee"/>')
        out.append(f'<text x="{x(size):.1f}" y="{top + ph + 18}" text-anchor="middle">{size}</text>')
    out.append(f'<text x="{left + pw / 2}" y="{height - 10}" text-anchor="middle">mapping batch size (records)</text>')
    out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#444"/>')

    legend: list[tuple[str, str, str]] = []

    def hline(value: float | None, color: str, label: str) -> None:
        if value:
            out.append(f'<line x1="{left}" x2="{left + pw}" y1="{y(value):.1f}" y2="{y(value):.1f}" stroke="{color}" '
                       f'stroke-dasharray="6,4" stroke-width="1.5"/>')
            legend.append((color, "6,4", f"{label}: {value:,.0f}/s"))

    def series(rows: list[dict[str, Any]], color: str, label: str, dx: float = 6, dy: float = -6) -> None:
        pts = sorted((r["batch_size"], r["records_per_s"]) for r in rows)
        if not pts:
            return
        path = " ".join(f"{'M' if i == 0 else 'L'}{x(s):.1f},{y(v):.1f}" for i, (s, v) in enumerate(pts))
        out.append(f'<path d="{path}" fill="none" stroke="{color}" stroke-width="2.5"/>')
        for s, v in pts:
            out.append(f'<circle cx="{x(s):.1f}" cy="{y(v):.1f}" r="4" fill="{color}"/>')
            anchor = "start" if dx >= 0 else "end"
            out.append(f'<text x="{x(s) + dx:.1f}" y="{y(v) + dy:.1f}" fill="{color}" text-anchor="{anchor}">'
                       f'{v:,.0f}</text>')
        legend.append((color, "", label))

    batch_ceiling = ceiling(results, "batch")
    cond_ceiling = ceiling(results, "conditional")
    hline(batch_ceiling["items_per_s"] if batch_ceiling else None, "#1f77b4", "ceiling, batch writes")
    hline(cond_ceiling["items_per_s"] if cond_ceiling else None, "#d62728", "ceiling, conditional puts")
    hline(ONE_WAY_RATE, "#2ca02c", "one-way target")
    series(_rows(results, kind="replicator", workload="spread", mode="ONE_WAY", rtt_ms=rtt, concurrency=64),
           "#1f77b4", "one-way (conc. 64)")
    series(_rows(results, kind="replicator", workload="spread", mode="MULTI_ACTIVE", rtt_ms=rtt, concurrency=64),
           "#d62728", "multi-active (conc. 64)")
    series(_rows(results, kind=KINESIS_KIND, workload="spread", rtt_ms=rtt, concurrency=128),
           "#17becf", "one-way, Kinesis (conc. 128)", dy=14)
    palette = ["#ff7f0e", "#9467bd", "#8c564b"]
    others = sorted({r["concurrency"] for r in _rows(results, kind="replicator", mode="MULTI_ACTIVE", rtt_ms=rtt)} - {64})
    for i, (color, conc) in enumerate(zip(palette, others)):
        # Points at the same batch size: labels to the left, stacked, so they do not overlap.
        series(_rows(results, kind="replicator", workload="spread", mode="MULTI_ACTIVE", rtt_ms=rtt, concurrency=conc),
               color, f"multi-active (conc. {conc})", dx=-8, dy=-8 + 16 * i)
    for mode, color in (("ONE_WAY", "#7f7f7f"), ("MULTI_ACTIVE", "#bcbd22")):
        naive = _one(results, kind="naive", mode=mode, rtt_ms=rtt)
        if naive:
            hline(naive["records_per_s"], color, f"naive {mode.lower().replace('_', '-')}")
    ly = top + 10
    for color, dash, label in legend:
        lx = left + pw + 50
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(f'<line x1="{lx}" x2="{lx + 24}" y1="{ly}" y2="{ly}" stroke="{color}" stroke-width="2.5"{dash_attr}/>')
        out.append(f'<text x="{lx + 30}" y="{ly + 4}">{label}</text>')
        ly += 20
    out.append("</svg>")
    return "\n".join(out) + "\n"


# --- docs ----------------------------------------------------------------------------------------------------

DOC_MARK_START = "<!-- benchmark results: generated by `python -m benchmarks --write-docs`; do not edit below -->"
DOC_MARK_END = "<!-- end of generated benchmark results -->"


def generated_section(results: dict[str, Any], json_path: Path) -> str:
    s = results["settings"]
    try:
        rel_json = json_path.resolve().relative_to(ROOT)
    except ValueError:
        rel_json = json_path
    lines = [
        DOC_MARK_START,
        "",
        f"Run `{results['command'].strip()}` from {results['started']} to {results['finished']} on "
        f"{results['machine']['cpus']} CPUs (Python {results['machine']['python']}); "
        f"load average (1, 5, 15 min) {results['load_start']} at the start and {results['load_end']} at the end "
        f"(the `load 1m` column is the load just before each measurement). Raw numbers: `{rel_json}`.",
        "",
        f"Code measured: `lambda_src/` and `cdk_replication/` of commit `{results.get('git', {}).get('commit', '?')}`"
        + (f" with uncommitted changes in {', '.join(sorted({l[3:] for l in results['git']['uncommitted']}))}"
           if results.get("git", {}).get("uncommitted") else "") + ".",
        "",
        f"Workloads: {s['records']:,} stream records; *spread* = every record a new item, *hot* = the same "
        f"records over {s['hot_items']} items. Round trip {s['rtt_ms']:g} ms on every replica request.",
        "",
        "### Targets",
        "",
        *targets_text(results),
        "",
    ]
    if recommendations(results):
        lines += ["### Defaults these numbers suggest", "", *recommendations(results), ""]
    if results.get("replication"):
        lines += ["### Throughput", "", "![records/s by batch size](../benchmarks/results/throughput.svg)", ""]
    if results.get("ceiling"):
        lines += ["### Ceiling: DynamoDB Local on this machine, no round trip", "", *ceiling_table(results), ""]
    if results.get("replication"):
        lines += ["### Replication, one shard", "", *replication_table(results), ""]
    if kinesis_lines(results):
        lines += ["### One-way fed by Kinesis", "",
                  "Each run of the replicator with `REPLICATION_CHANGE_SOURCE=KINESIS` against the naive baseline "
                  "and the DynamoDB Streams replicators of the same run, workload, round trip and batch size:", "",
                  *kinesis_lines(results), ""]
    if experiment_lines(results):
        lines += ["### Experiment: the proposed client tuning", "",
                  "Same runs with the replicator's clients created with `parameter_validation=False` and a "
                  "User-Agent built once (monkeypatched in `benchmarks/worker.py`; current -> tuned):", "",
                  *experiment_lines(results), ""]
    if results.get("memory"):
        lines += ["### A 6 MB batch", "", *memory_table(results), ""]
    if results.get("backfill"):
        lines += ["### Backfill", "", *backfill_table(results), "", *backfill_ratios(results), ""]
    lines.append(DOC_MARK_END)
    return "\n".join(lines) + "\n"


def write_docs(results: dict[str, Any], json_path: Path) -> list[Path]:
    """Replace the generated part of docs/performance.md (the hand-written part around it stays) and the plot."""
    section = generated_section(results, json_path)
    text = DOC.read_text() if DOC.exists() else f"# Performance\n\n{DOC_MARK_START}\n{DOC_MARK_END}\n"
    if DOC_MARK_START in text and DOC_MARK_END in text:
        head, rest = text.split(DOC_MARK_START, 1)
        _, tail = rest.split(DOC_MARK_END, 1)
        text = head + section + tail.lstrip("\n")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    DOC.write_text(text)
    written = [DOC]
    if results.get("replication"):
        PLOT.parent.mkdir(parents=True, exist_ok=True)
        PLOT.write_text(plot_svg(results))
        written.append(PLOT)
    return written


def merge(runs: list[dict[str, Any]], added: tuple[int, ...] = ()) -> dict[str, Any]:
    """Several saved runs as one: sections of later runs replace earlier ones, except that the replication rows
    of the runs whose positions are in ``added`` are appended, each with ``run`` = its position + 1 (targets,
    defaults and the plot stay the main rows'). Commands and loads are kept."""
    if len(runs) == 1:
        return runs[0]
    merged: dict[str, Any] = dict(runs[0])
    for i, run in enumerate(runs[1:], start=1):
        if i in added:
            merged["replication"] = merged.get("replication", []) + [
                {**r, "run": i + 1} for r in run.get("replication", [])]
            continue
        for section in ("ceiling", "replication", "memory", "backfill"):
            if section in run:
                merged[section] = run[section]
        merged["settings"] = {**merged["settings"], **{k: v for k, v in run["settings"].items() if k != "sections"}}
    merged["command"] = " ; ".join(r["command"].strip() for r in runs)
    merged["started"] = min(r["started"] for r in runs)
    merged["finished"] = max(r["finished"] for r in runs)
    merged["load_start"] = [r["load_start"] for r in runs]
    merged["load_end"] = [r["load_end"] for r in runs]
    merged["git"] = {"commit": " / ".join(r.get("git", {}).get("commit", "?") for r in runs), "uncommitted": []}
    merged["targets"] = evaluate(merged)
    return merged


if __name__ == "__main__":  # re-render saved runs: python -m benchmarks.report <results.json>... [+<added.json>] [--write-docs]
    import sys

    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    paths = [Path(a.removeprefix("+")) for a in args]
    data = merge([json.loads(p.read_text()) for p in paths], tuple(i for i, a in enumerate(args) if a.startswith("+")))
    data.setdefault("targets", evaluate(data))
    print(text_report(data))
    if "--write-docs" in sys.argv:
        for p in write_docs(data, paths[-1] if len(paths) == 1 else Path(", ".join(str(x) for x in paths))):
            print(f"wrote {p}")
