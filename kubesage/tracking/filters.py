"""Values inside MLflow search filters, quoted safely (never by string interpolation alone)."""

from __future__ import annotations

from kubesage.errors import ParameterError


def filter_literal(value: str) -> str:
    """`value` as a string literal of an MLflow search filter, or ParameterError if it cannot be one.

    MLflow's filter grammar has no escape sequence (it strips the outer quotes), so a value is put
    in whichever quote it does not contain; one holding both quotes, a backslash (the tokenizer
    reads it as an escape) or a control character cannot be expressed and is refused.
    """
    if "\\" in value or ("'" in value and '"' in value) or any(ord(c) < 32 for c in value):
        raise ParameterError(
            f"{value!r} cannot be searched for in MLflow: it holds both quote characters, a backslash "
            "or a control character"
        )
    quote = '"' if "'" in value else "'"
    return f"{quote}{value}{quote}"
