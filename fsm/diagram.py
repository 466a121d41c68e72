"""The state diagram of ``docs/state-machine.md``, generated from
``pairexec.fsm.states.TRANSITIONS``.

``python -m pairexec.fsm.diagram`` prints it; a test checks that docs/state-machine.md holds
exactly this text, so the picture a reader checks against is the table the engine runs.

The states are grouped by phase of a trade (``PHASES``): the moves are listed phase by phase
(by the phase of the state they leave), each group under a ``%%`` comment, and each phase's
states share a colour. Mermaid's composite states would draw boxes, but it cannot draw a
move between states of two different boxes, and most moves here cross phases.
"""

from __future__ import annotations

from pairexec.fsm.states import TERMINAL_STATES, TRANSITIONS, TradeState, Trigger

S = TradeState

PHASES: tuple[tuple[str, str, str, tuple[TradeState, ...]], ...] = (
    # class name, what the phase is, its colour, its states
    ("accepted", "accepted, nothing sent yet", "#eeeeee", (S.PENDING,)),
    ("legA", "leg A", "#cfe2ff", (S.LEG_A_SENT, S.LEG_A_FILLED, S.LEG_A_PARTIAL)),
    ("legB", "leg B, the hedge", "#d1e7dd", (S.LEG_B_SENT,)),
    ("unwind", "unwinding leg A's unhedged fill", "#fff3cd", (S.UNWINDING,)),
    ("unknown", "an order's outcome unknown, looked up", "#f8d7da", (S.UNKNOWN, S.RECONCILED)),
    ("terminal", "terminal", "#ffffff", (S.DONE, S.ABORTED, S.FAILED, S.PARKED, S.RESOLVED)),
)
"""Every state in exactly one phase (checked by ``mermaid()``), in the life of a trade."""


def phase_of(state: TradeState) -> str:
    [name] = [name for name, _what, _colour, states in PHASES if state in states]
    return name


def mermaid() -> str:
    grouped = [s for *_rest, states in PHASES for s in states]
    if sorted(grouped, key=list(TradeState).index) != list(TradeState):
        raise ValueError("every state must be in exactly one phase of PHASES")
    lines = ["stateDiagram-v2", f"    [*] --> {TradeState.PENDING.value}"]
    for name, what, _colour, states in PHASES:
        if name == "terminal":
            continue
        lines.append(f"    %% from {what}")
        for trigger, sources, dest in TRANSITIONS:
            if trigger is Trigger.PARK:
                continue
            for source in sources:
                if source in states:
                    lines.append(f"    {source.value} --> {dest.value}: {trigger}")
    lines.append("    %% a human is needed")
    for trigger, _sources, dest in TRANSITIONS:
        if trigger is Trigger.PARK:
            lines.append(f"    note right of {dest.value}: park — from any non-terminal state")
    for trigger, sources, dest in TRANSITIONS:  # what only a human does, from a terminal state
        for source in sources:
            if source in TERMINAL_STATES:
                lines.append(f"    {source.value} --> {dest.value}: {trigger}")
    lines.append("    %% terminal")
    for state in sorted(TERMINAL_STATES, key=list(TradeState).index):
        lines.append(f"    {state.value} --> [*]")
    lines.append("    %% one colour per phase")
    for name, _what, colour, states in PHASES:
        lines.append(f"    classDef {name} fill:{colour},stroke:#555555")
        lines.append(f"    class {','.join(s.value for s in states)} {name}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(mermaid())
