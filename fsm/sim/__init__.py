"""Deterministic chaos simulation: seeded scenarios, engine crashes, recovery, invariants.

One module, one job:

- ``scenario``: seed -> what is traded, when, the exchange's faults, where the engine dies;
- ``runtime``: a virtual-time event loop with inline I/O, so a seed gives one run;
- ``crash``: the in-process crash (a BaseException) at a seeded exchange call or store write;
- ``recorder``: every exchange call logged, persist-before-send audited as it happens;
- ``venue``: the paper exchange, and a calm facade over the same book for recovery;
- ``fast_store``: per-scenario databases without alembic's cost; the checks' read-only view;
- ``invariants``: what must hold after any run (also used by the crash and scale-out tests);
- ``checks``: ``invariants.check_invariants`` plus the checks it does not make;
- ``runner``: one scenario end to end -> ``ScenarioResult``;
- ``parallel``: many scenarios over worker processes; ``report``: totals, repro lines.

Entry points: ``tests/sim/test_simulation.py`` (CI) and ``pairexec simulate`` (by hand).
"""
