"""The Markdown rendering of one `make bench` result (the JSON is the source of truth)."""

from __future__ import annotations

CONTENDERS = (
    ("read", "read the frames alone"),
    ("orjson", "`orjson.loads` alone (ceiling)"),
    ("cryptofeed", "cryptofeed parse + book (peer)"),
    ("cryptoflow_e2e", "CryptoFlow e2e -> Iceberg (`-w 1`)"),
)


def _n(x: float | None, digits: int = 0) -> str:
    return "-" if x is None else f"{x:,.{digits}f}"


def _range(s: dict) -> str:
    return f"{_n(s['median'])} ({_n(s['min'])}..{_n(s['max'])})"


def _stream(name: str, s: dict) -> list[str]:
    lines = [
        f"### {name}",
        "",
        f"{s['frames']:,} depth frames ({s['reps']} repetitions of the recording, symbols "
        f"{', '.join(s['symbols'])}), {s['levels_per_frame']:.2f} level changes and "
        f"{s['bytes_per_frame']:.0f} bytes per frame; {s['snapshot_levels']:,} snapshot levels. "
        f"Rows checked against ground truth: {'yes, all equal' if s['valid'] else '**MISMATCH**'}.",
        "",
        "| contender | frames/s median (min..max) | level changes/s | vs orjson ceiling |",
        "|---|---:|---:|---:|",
    ]
    ceil = s["contenders"]["orjson"]["median"]
    for key, label in CONTENDERS:
        c = s["contenders"][key]
        lines.append(f"| {label} | {_range(c)} | {_n(c['level_changes_per_s'])} | {c['median'] / ceil:.3f} |")
    rows = s["contenders"]["cryptoflow_e2e"]["level_rows_per_s"]
    lines += [
        "",
        f"CryptoFlow e2e: **{s['e2e_fraction_of_orjson']:.3f}x** the orjson ceiling, "
        f"**{s['e2e_vs_cryptofeed']:.2f}x** cryptofeed; level rows committed/s (snapshot + diff rows) "
        f"{_range(rows)}; {_cpu_sentence(s['contenders']['cryptoflow_e2e'])}",
        "",
    ]
    return lines


def _cpu_sentence(e2e: dict) -> str:
    """How many cores the run used, and how many of them the sink child (absent from older reports)."""
    used = f"the process used {e2e['cpu_per_wall']['median']:.2f} CPU-seconds per second"
    child = e2e.get("child_cpu_per_wall")
    if child is None:
        return f"{used} (all threads: the GIL makes one process about one core)."
    return (
        f"{used}, {child['median']:.2f} of them its sink child's (sort, Parquet files, commits: the GIL "
        "makes the flow process itself about one core)."
    )


def _scaling(m: dict) -> str:
    """One 1 vs 2 process measurement (`benchmarks.run._one_against_two`): rates and their ratio."""
    return (
        f"1 process {_range(m['one_process_frames_per_s'])} frames/s; 2 processes "
        f"{_range(m['two_processes_frames_per_s'])} frames/s aggregate; scaling **{m['scaling']:.2f}x**"
    )


def _per_cpu_second(m: dict) -> str:
    return (
        f"Frames per CPU-second: {_range(m['frames_per_cpu_second_one'])} alone, "
        f"{_range(m['frames_per_cpu_second_two'])} per process when two run"
    )


def markdown(r: dict) -> str:
    m, v = r["machine"], r["versions"]
    vers = ", ".join(f"{k} {val}" for k, val in v.items() if val)
    lines = [
        f"# CryptoFlow benchmark ({r['mode']}, {r['runs']} run(s), {r['started']})",
        "",
        f"Machine: {m['cpu_model']}, {m['logical_cores']} logical cores ({m['usable_cores']} usable), "
        f"{m['platform']}; commit {m['git_commit']}. {r['shared_machine_note']}; load average before "
        f"{r['load_average_before']}, after {r['load_average_after']}.",
        "",
        f"Versions: {vers}.",
        "",
        "## Headline (Binance spot depth frames, one process)",
        "",
        f"* CryptoFlow end to end: **{_n(r['e2e_frames_per_s'])} frames/s**, "
        f"{_n(r['e2e_level_rows_per_s'])} level rows/s",
        f"* orjson.loads ceiling: {_n(r['ceiling_frames_per_s'])} frames/s "
        f"(ours = {r['e2e_fraction_of_ceiling']:.3f}x); reading alone: {_n(r['read_frames_per_s'])} frames/s",
        f"* cryptofeed {v.get('cryptofeed')}: {_n(r['cryptofeed_frames_per_s'])} frames/s "
        f"(ours = {r['e2e_vs_cryptofeed']:.2f}x)",
        "",
        "## Targets",
        "",
        "| target | measured | met |",
        "|---|---:|---|",
    ]
    for t in r["targets"]:
        met = "TODO" if t["met"] is None else ("yes" if t["met"] else "**no**")
        lines.append(f"| {t['target']} | {_n(t['measured'], 3)} | {met} |")
    lines += ["", "## Per stream", ""]
    for name, s in r["streams"].items():
        lines += _stream(name, s)
    lines += ["### Other venues (no CryptoFlow connector yet: ceilings and cryptofeed)", "",
              "| stream | frames | bytes/frame | read frames/s | orjson frames/s | cryptofeed frames/s | checked |",
              "|---|---:|---:|---:|---:|---:|---|"]  # fmt: skip
    for name, s in r["ceilings_other_venues"].items():
        c = s["contenders"]
        peer = _range(c["cryptofeed"]) if "cryptofeed" in c else "no driver"
        lines.append(
            f"| {name} | {s['frames']:,} | {s['bytes_per_frame']:.0f} | {_range(c['read'])} | "
            f"{_range(c['orjson'])} | {peer} | {'yes' if s['valid'] else '**MISMATCH**'} |"
        )
    sim = r["simulator"]
    lines += [
        "",
        "## Through the simulator (`python -m bytewax.run dataflows.spot_delta -w 1`, loopback, speed 0)",
        "",
        f"Differential rate (extra frames / extra seconds between a small and a large corpus): "
        f"**{_range(sim['frames_per_s'])} frames/s**; rows checked: {'yes' if sim['valid'] else '**MISMATCH**'}. "
        f"Raw walls [frames, s]: {sim['walls']}.",
        "",
    ]
    p = r.get("processes")
    if p:
        lines += [
            "## 1 vs 2 processes (each the whole spot corpus into its own warehouse, concurrently)",
            "",
            f"{_scaling(p)} (load average {p['load_average_before']} before, {p['load_average_after']} after: "
            f"other processes on the machine take the second core away). {_per_cpu_second(p)} "
            "(equal = the processes share nothing but the cores).",
            "",
        ]
        loop = p.get("reference_loop_scaling")
        if loop:
            lines += [
                f"The machine itself: a pure-Python loop (no memory traffic to speak of) in 1 vs 2 processes "
                f"scaled {loop['median']:.2f}x ({loop['min']:.2f}..{loop['max']:.2f}).",
                "",
            ]
        each = p.get("core_each")
        if each:
            lines += [
                "A core each (each process and its sink child bound to one core, as a pod that requests one "
                f"CPU): {_scaling(each)}. {_per_cpu_second(each)}.",
                "",
            ]
    prof = r.get("profile")
    if prof:
        lines += [
            f"## Profile of the e2e path ({prof['tool']}, {prof['rate_hz']} Hz, {prof['samples']} samples in the run)",
            "",
            "Threads: "
            + ", ".join(f"{k} {v:.0%}" for k, v in prof["threads"].items())
            + f". Not counted below: {prof['waiting_samples']} samples waiting (queue handoff, thread "
            f"start) and {prof['native_only_samples']} with no Python frame (Bytewax's Rust runtime, idle).",
            "",
            "| self time | function | | inclusive | function |",
            "|---:|---|---|---:|---|",
        ]
        for a, b in zip(prof["self"][:15], prof["inclusive"][:15], strict=False):
            lines.append(f"| {a['share']:.1%} | {a['function']} | | {b['share']:.1%} | {b['function']} |")
        lines.append("")
    lines += _book_and_latency(r)
    todo = [k for k, section in (("book_level_updates", "book"), ("book_rss_1000x2000", "book"),
                                 ("latency_percentiles", "latency")) if section not in r]  # fmt: skip
    if todo:
        lines += ["## Not measured yet", ""]
        lines += [f"* {r[k]}" for k in todo]
        lines.append("")
    return "\n".join(lines)


def host_stalls_sentence(run: dict) -> str:
    """What the host meters (cryptoflow/hostmeter.py) saw during a latency run, in words."""
    h, windows = run["host"], run["ingest_to_normalized_windows"]
    return (
        f"host stalls (cryptoflow/hostmeter.py): {h['stalled_units']} of {h['units']:,} meter units charged "
        f">= {h['stall_factor']:g}x their median CPU ({h['episodes']} episode(s), worst {h['worst_factor']:g}x) "
        f"on CPUs {', '.join(h['cpus'])}; {run['windows_stalled']} of {len(windows)} 0.5 s windows left out"
    )


def _ms(p: dict) -> str:
    if not p.get("count"):
        return "no samples | | | |"
    top = f"{p['max_ms']:.2f}" if "max_ms" in p else f"<= {p['max_le_ms']:.2f}"
    return f"{p['p50_ms']:.2f} | {p['p90_ms']:.2f} | {p['p99_ms']:.2f} | {top} |"


def _book_and_latency(r: dict) -> list[str]:
    """Sections of `benchmarks.bench_book.measure()` and `benchmarks.latency.measure()`, when present."""
    lines: list[str] = []
    book = r.get("book")
    if book:
        lines += [
            f"## Order book (`make bench-book`; {book['updates']:,} level updates per mix, ns of {book['clock']} "
            f"per level update, best of {book['repeats']}; default side: {book['default']})",
            "",
            *(
                [
                    f"Machine just before: load average {book['load_average']:.1f}, reference loop "
                    f"`sum(range(10**6))` {book['reference_ms']:.1f} ms CPU.",
                    "",
                ]
                if "reference_ms" in book
                else []
            ),
            "| side | churn ns/update (batch / interleaved) | qty-only ns/update (batch / interleaved) | "
            "Kraken replay ns | bytes/level (tracemalloc) | RSS 1,000 x 2,000/side: MB, bytes/level | "
            "epoch snapshot us, KB (deep copy us) |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for name, x in book["impls"].items():
            rss, snap = x["rss"], x["snapshot"]
            lines.append(
                f"| {name} | {x['churn_batch_ns']:.0f} / {x['churn_interleaved_ns']:.0f} | "
                f"{x['qty_only_batch_ns']:.0f} / {x['qty_only_interleaved_ns']:.0f} | {x['kraken_replay_ns']:.0f} | "
                f"{x['bytes_per_level_tracemalloc']:.0f} | {rss['rss_delta_mb']:,.0f} MB ({rss['symbols']:,} symbols), "
                f"{rss['bytes_per_level']:.0f} | {snap['snapshot_us']:,.0f}, {snap['snapshot_bytes'] / 1024:,.0f} "
                f"({snap['deepcopy_us']:,.0f}) |"
            )
        lines.append("")
    lat = r.get("latency")
    if lat:
        lines += [f"## Latency (`make bench-latency`; {lat['venue']} -> `{lat['flow']}`)", ""]
        for x in lat["runs"]:
            lines += [
                f"Offered {x['offered_changes_per_s']:,.0f} changes/s for {x['seconds']:.0f} s over "
                f"{x['symbols']} symbols: achieved {x['achieved_changes_per_s'] or 0:,.0f} changes/s, "
                f"{x['achieved_frames_per_s'] or 0:,.0f} frames/s, "
                f"**{'sustained' if x['sustained'] else 'not sustained'}**; {x['book_frames_made']:,} book frames "
                f"made on {x['connections']} connection(s), {x['events_seen_by_histogram']:,} book events in the "
                "flow's histogram.",
                "",
                "| ms | p50 | p90 | p99 | max |",
                "|---|---:|---:|---:|---:|",
                f"| exchange -> ingest | {_ms(x['exchange_to_ingest'])}",
                f"| ingest -> normalized | {_ms(x['ingest_to_normalized'])}",
                *(
                    [
                        f"| ingest -> normalized, windows without a host stall | {_ms(x['ingest_to_normalized_unstalled'])}"
                    ]
                    if "host" in x
                    else []
                ),
                f"| exchange -> normalized | {_ms(x['exchange_to_normalized'])}",
                f"| ingest -> committed (epoch {x.get('epoch_s', 10):g} s) | {_ms(x['ingest_to_committed'])}",
                f"| (connector.idle_poll_ms {x['idle_poll_ms']}) | | | | |",
                "",
            ]
            within = x["ingest_to_normalized"].get("within_2ms")
            if within is not None:
                lines += [
                    f"Ingest -> normalized within 2 ms (the target's bound, exact): **{within:.2%}**.",
                    "",
                ]
            if "host" in x:
                said = host_stalls_sentence(x)
                lines += [f"{said[0].upper()}{said[1:]} of the second row.", ""]
    return lines
