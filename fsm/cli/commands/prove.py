"""``pairexec prove``: explore every path of a trade up to a depth or a number of restarts,
on every set of markets (spot, spot with fees, a contract leg), check each state, and say
whether the trade's drives are proven to end."""

from __future__ import annotations

import argparse

from pairexec.fsm.cli import render
from pairexec.fsm.cli.errors import EXIT_NOT_EXECUTED, EXIT_OK, CliError
from pairexec.fsm.sim.explore import CONFIGS, MARKETS, explore

DEPTH = 6
"""The depth when neither ``--depth`` nor ``--restarts`` is given: about 9 s for the nine
reports, every kind of end reached in each."""


async def run(args: argparse.Namespace) -> int:
    names = list(CONFIGS) if args.policy == "all" else [args.policy]
    endless = [n for n in names if n != "market_once"]
    if args.restarts is not None and args.depth is None and endless:
        raise CliError(
            f"--restarts without --depth would explore {' and '.join(endless)} without end "
            "(a first drive alone is over a million states): add --depth N, or use "
            "--policy market_once"
        )
    # A cap on restarts bounds the paths by itself (drives end), so the depth is then only
    # what the user asks: a default one would cut the very states the bound must cover.
    depth = args.depth if args.depth is not None or args.restarts is not None else DEPTH
    ok = True
    for name in names:
        for markets in MARKETS:
            report = explore(
                depth,
                name,
                markets=markets,
                progress=lambda r: render.proving(r.lines()[0]),
                restarts=args.restarts,
            )
            render.proved(report.lines(), report.ok)
            ok = ok and report.ok
    return EXIT_OK if ok else EXIT_NOT_EXECUTED
