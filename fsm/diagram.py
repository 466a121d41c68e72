"""The README's state diagram, generated from ``pairexec.fsm.states.TRANSITIONS``.

``python -m pairexec.fsm.diagram`` prints it; a test checks the README holds exactly this
text, so the picture a reader checks against is the table the engine runs.
"""

from __future__ import annotations

from pairexec.fsm.states import TERMINAL_STATES, TRANSITIONS, TradeState, Trigger


def mermaid() -> str:
    lines = ["stateDiagram-v2", f"    [*] --> {TradeState.PENDING.value}"]
    for trigger, sources, dest in TRANSITIONS:
        if trigger is Trigger.PARK:
            lines.append(f"    note right of {dest.value}: park — from any non-terminal state")
            continue
        for source in sources:
            lines.append(f"    {source.value} --> {dest.value}: {trigger}")
    for state in sorted(TERMINAL_STATES, key=list(TradeState).index):
        lines.append(f"    {state.value} --> [*]")
    return "\n".join(lines)


if __name__ == "__main__":
    print(mermaid())
