# Component bodies ship to the task as source text; they stay with os/open on purpose.
# ruff: noqa: PTH123, SIM115, SIM117
"""Second toy KFP pipeline: no Model (processing steps only), string/int/bool parameters, nested
dsl.If with a string comparison, and dsl.Else (compiled by KFP to a negated condition)."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Output


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def count_words(text: str, min_len: int, lowercase: bool, counts: Output[Dataset]) -> int:
    import collections
    import json

    words = [w.strip(".,!?") for w in text.split()]
    words = [w.lower() if lowercase else w for w in words if len(w) >= min_len]
    with open(counts.path, "w") as fh:
        json.dump(collections.Counter(words), fh, sort_keys=True)
    return len(words)


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def top_word(counts: Input[Dataset]) -> str:
    import json

    table = json.load(open(counts.path))
    return sorted(table.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def summarize(counts: Input[Dataset], word: str, summary: Output[Dataset]) -> None:
    import json

    table = json.load(open(counts.path))
    with open(summary.path, "w") as fh:
        fh.write(f"{word}={table[word]} of {sum(table.values())}\n")


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def too_short(n_words: int) -> str:
    return f"only {n_words} words"


@dsl.pipeline(name="kubesage-toy-words")
def toy_words(
    text: str = "the cat and the hat and the bat", min_len: int = 3, lowercase: bool = True, threshold: int = 3
) -> None:
    counted = count_words(text=text, min_len=min_len, lowercase=lowercase)
    top = top_word(counts=counted.outputs["counts"])
    with dsl.If(counted.outputs["Output"] > threshold, name="enough-words"):
        with dsl.If(top.output != "skip", name="not-skipped"):
            summarize(counts=counted.outputs["counts"], word=top.output)
    with dsl.Else(name="too-few"):
        too_short(n_words=counted.outputs["Output"])
