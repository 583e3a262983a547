"""A pipeline whose components import libraries the zygote may and may not preload (never run:
`preload_for` reads the compiled IR's sources)."""

from kfp import dsl


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def tabular() -> None:
    import json

    import pandas as pd
    from sklearn.metrics import roc_auc_score

    json.dumps([pd.__name__, roc_auc_score.__name__])


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def deep() -> None:
    import pandas
    import torch  # not fork-safe to preload: left to the task

    print(torch.__name__, pandas.__name__)


@dsl.pipeline(name="imports")
def imports_pipeline() -> None:
    tabular()
    deep()
