"""What each corpus pipeline must do on the SageMaker target: translate (to these steps) or be refused."""

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Translates:
    """Compiles; the definition has exactly these step names (nested ones included), and the
    explain report mentions each of `report`. `options`: SageMakerConfig fields the case compiles with."""

    steps: frozenset[str]
    report: tuple[str, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)

    def __init__(self, *steps: str, report: tuple[str, ...] = (), options: dict[str, Any] | None = None) -> None:
        object.__setattr__(self, "steps", frozenset(steps))
        object.__setattr__(self, "report", report)
        object.__setattr__(self, "options", options or {})


@dataclass(frozen=True)
class Refused:
    """Refused with one line matching `pattern` (a regex), compiled with the SageMakerConfig fields `options`."""

    pattern: str
    options: dict[str, Any] = field(default_factory=dict)


Expectation = Translates | Refused
Case = tuple[Any, Expectation]
