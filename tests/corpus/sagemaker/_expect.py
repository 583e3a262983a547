"""What each corpus pipeline must do on the SageMaker target: translate (to these steps) or be refused."""

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Translates:
    """Compiles; the definition has exactly these step names (nested ones included), and the
    explain report mentions each of `report`."""

    steps: frozenset[str]
    report: tuple[str, ...] = ()

    def __init__(self, *steps: str, report: tuple[str, ...] = ()) -> None:
        object.__setattr__(self, "steps", frozenset(steps))
        object.__setattr__(self, "report", report)


@dataclass(frozen=True)
class Refused:
    """Refused with one line matching `pattern` (a regex)."""

    pattern: str


Expectation = Translates | Refused
Case = tuple[Any, Expectation]
