"""Measurements behind pairexec's claims: concurrency, durability cost, leg-B latency, recovery.

Run them all with ``python -m bench`` (``--quick`` for smaller sizes, ``--only NAME``): a table
on stdout and a JSON file under ``bench/results/``. Absolute numbers depend on the machine; the
README quotes ratios measured within one run. No timings are asserted in the unit tests.
"""
