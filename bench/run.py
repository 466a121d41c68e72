"""``python -m bench [--quick] [--only NAME ...]``: run the benchmarks, print, save as JSON.

Results go to ``bench/results/<UTC time>.json`` and ``bench/results/latest.json`` (gitignored),
with the machine they ran on. Each benchmark runs in this process, one after another, so the
ratios they report are measured under the same conditions.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.common import Result

RESULTS = Path(__file__).parent / "results"


def _benches(recovery_trades: int | None) -> dict[str, Callable[[bool], Result]]:
    from bench import (
        concurrency,
        cross_venue,
        durability,
        floor,
        leg_b_latency,
        price_protection,
        profile,
        recovery,
        unhedged,
    )

    return {
        "concurrency": concurrency.run,
        "durability": durability.run,
        "floor": floor.run,
        "leg_b_latency": leg_b_latency.run,
        "cross_venue": cross_venue.run,
        "price_protection": price_protection.run,
        "recovery": lambda quick: recovery.run(quick, recovery_trades),
        "unhedged": unhedged.run,
        "profile": profile.run,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes (about a minute)")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these benchmarks")
    parser.add_argument(
        "--recovery-trades",
        type=int,
        help="in-flight trades to recover (default 1000; 10000 "
        "is the issue's size, allow ~10 minutes)",
    )
    parser.add_argument("--out", type=Path, help="JSON file (default bench/results/<time>.json)")
    args = parser.parse_args(argv)
    benches = _benches(args.recovery_trades)
    unknown = set(args.only or []) - set(benches)
    if unknown:
        parser.error(
            f"unknown benchmark(s) {', '.join(sorted(unknown))}; known: {', '.join(benches)}"
        )
    console = Console(highlight=False, soft_wrap=True, width=max(Console().width, 150))
    table = Table(
        title=f"pairexec benchmarks{' (quick)' if args.quick else ''}", title_justify="left"
    )
    for column in ("benchmark", "measurement", "value", "target / note"):
        table.add_column(column, overflow="fold")
    report: dict[str, Any] = {"machine": _machine(), "quick": args.quick, "results": {}}
    gc.freeze()  # the start-up heap, out of the cyclic GC's way, as the pairexec CLI does
    for name, bench in benches.items():
        if args.only and name not in args.only:
            continue
        console.print(f"running {name}…")
        started = time.perf_counter()
        result = bench(args.quick)
        seconds = time.perf_counter() - started
        report["results"][name] = {"seconds": seconds, "rows": result.rows, **result.data}
        for i, (what, value, note) in enumerate(result.rows):
            table.add_row(name if i == 0 else "", what, value, note)
        table.add_section()
    console.print(table)
    out = args.out or RESULTS / f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(report, indent=2, default=str)
    out.write_text(text)
    if args.out is None:
        (RESULTS / "latest.json").write_text(text)
    console.print(f"results written to {out}")
    return 0


def _machine() -> dict[str, Any]:
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


if __name__ == "__main__":
    sys.exit(main())
