"""``pairexec prove``: explore every path of a trade up to a depth, on every set of markets
(spot, spot with fees, a contract leg), check each state, and say whether the trade's drives
are proven to end."""

from __future__ import annotations

import argparse

from pairexec.fsm.cli import render
from pairexec.fsm.cli.errors import EXIT_NOT_EXECUTED, EXIT_OK
from pairexec.fsm.sim.explore import CONFIGS, MARKETS, explore


async def run(args: argparse.Namespace) -> int:
    names = list(CONFIGS) if args.policy == "all" else [args.policy]
    ok = True
    for name in names:
        for markets in MARKETS:
            report = explore(
                args.depth, name, markets=markets, progress=lambda r: render.proving(r.lines()[0])
            )
            render.proved(report.lines(), report.ok)
            ok = ok and report.ok
    return EXIT_OK if ok else EXIT_NOT_EXECUTED
