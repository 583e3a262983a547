"""Options more than one command takes, defined once: `--output text|json` and the runner flags.

The runner flags come from the registry (`kubesage.runners.registry`), so no command spells a backend.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def output_option(func: F) -> F:
    """`--output text|json`, passed to the command as `output_format`."""
    return click.option(
        "--output",
        "output_format",
        type=click.Choice(["text", "json"]),
        default="text",
        show_default=True,
        help="json prints one JSON object on stdout, for scripts.",
    )(func)


def runner_option_flags(func: F) -> F:
    """One flag per option field that asks for one (--image, --role, ...), plus --option NAME=VALUE.

    The command receives the flags as `flag_<field>` keyword arguments and the pairs as
    `runner_options`; `options_for` turns both into one runner's options.
    """
    from kubesage.runners.registry import option_flags

    for flag in reversed(option_flags()):
        scope = ", ".join(flag.runners)
        if flag.switch_value is not None:
            func = click.option(
                flag.flag,
                f"flag_{flag.field}",
                flag_value=flag.switch_value,
                default=None,
                help=f"{scope}: {flag.help}.",
            )(func)
            continue
        func = click.option(flag.flag, f"flag_{flag.field}", default=None, help=f"{scope}: {flag.help}.")(func)
    return click.option(
        "--option",
        "runner_options",
        multiple=True,
        metavar="NAME=VALUE",
        help="Any runner option (repeatable; `kubesage runners` lists them). JSON values for lists and numbers.",
    )(func)


def options_for(runner: str, flags: dict[str, Any], pairs: tuple[str, ...]) -> dict[str, Any]:
    """The options the user set for `runner`: its flags and --option values; flags of other runners refused."""
    from kubesage.ir.parameters import parse_assignments
    from kubesage.runners.registry import option_flags, parse_option_values, runner_spec

    spec = runner_spec(runner)
    chosen: dict[str, Any] = {}
    by_field = {f.field: f for f in option_flags()}
    for key, value in flags.items():
        if value is None:
            continue
        flag = by_field[key.removeprefix("flag_")]
        if runner not in flag.runners:
            raise click.UsageError(f"{flag.flag} applies to the {', '.join(flag.runners)} runner(s), not {runner}")
        chosen[flag.field] = value
    chosen.update(parse_option_values(spec, parse_assignments(pairs, what="--option")))
    return chosen
