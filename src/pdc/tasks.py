"""Task masks: the marker in the student's input that selects what it writes.

The paper (Section 3.4) selects the pseudocode or the code task by a mask in
the input. pdc spells the mask as a text prefix so any seq2seq student can
read it without new embeddings:

    [pseudocode] <problem>                      -> numbered pseudocode
    [code] <problem>                            -> code          (--code-input nl)
    [code] <problem> [plan] <pseudocode>        -> code          (--code-input nl+pseudocode)

The markers are saved in the model directory (`pdc_config.json`) so eval,
export and bench format inputs exactly as training did.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Markers:
    pseudocode: str = "[pseudocode]"
    code: str = "[code]"
    plan: str = "[plan]"

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


DEFAULT_MARKERS = Markers()


def format_pseudocode(steps: list[str]) -> str:
    """Numbered steps as the student's pseudocode target: '1. ...\\n2. ...'."""
    return "\n".join(f"{i}. {step}" for i, step in enumerate(steps, start=1))


def parse_pseudocode(text: str) -> list[str]:
    """Split generated pseudocode back into steps, dropping the numbers."""
    import re

    steps = []
    for line in text.splitlines():
        line = re.sub(r"^\s*\d+[.)]\s*", "", line).strip()
        if line:
            steps.append(line)
    return steps


def pseudocode_input(nl: str, markers: Markers = DEFAULT_MARKERS) -> str:
    return f"{markers.pseudocode} {nl}"


def code_input(nl: str, markers: Markers = DEFAULT_MARKERS, plan: list[str] | None = None) -> str:
    if plan is None:
        return f"{markers.code} {nl}"
    return f"{markers.code} {nl} {markers.plan} {format_pseudocode(plan)}"
