"""The pair-trade state machine, from the domain at the bottom to the engine and CLI on top.

Nothing is imported here: bots import from ``pairexec``, and the modules import each other by
full name (``pairexec.fsm.model``...), so importing one layer never loads those above it.
docs/architecture.md lists the layers and who may import whom.
"""
