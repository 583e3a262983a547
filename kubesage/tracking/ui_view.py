"""The MLflow UI's runs table for a kubesage experiment: runner, key metrics and differing parameters.

MLflow's UI keeps its table layout (visible columns, expanded rows) per browser, and shows only
Source, Models and Dataset by default, so metrics and the runner hide behind "Show more columns".
It also loads a layout shared through the experiment: an experiment tag
`mlflow.sharedViewState.<key>` holding the layout as JSON, opened by `?viewStateShareKey=<key>`
in the URL (its "Share" button writes the same tag). kubesage keeps one such layout per experiment,
refreshed when a pipeline run ends, and prints the URL that opens it (`kubesage ui`, next steps).

`workflowType=machine_learning` in the URL opens MLflow 3.17's "Model training" side rather than
the GenAI one, which that UI otherwise remembers per browser (default GenAI).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from kubesage.tracking.contract import TAG_KIND, TAG_RUNNER

VIEW_KEY = "kubesage"
VIEW_TAG = f"mlflow.sharedViewState.{VIEW_KEY}"
# The metrics shown, when a run has them. MLflow lays columns out by kind (attributes, metrics,
# parameters, tags) and its grid draws only the columns in view, so every extra metric pushes the
# runner column (a tag, last) out of sight: the table keeps a few, the run page has them all.
KEY_METRICS: tuple[str, ...] = ("roc_auc", "accuracy", "f1")
# How many recent pipeline runs decide which parameters differ.
RECENT_RUNS = 50


def _column(kind: str, key: str) -> str:
    """MLflow UI's column key (makeCanonicalSortKey): kind.`key`."""
    return f"{kind}.`{key}`"


def view_state(metrics: Sequence[str], params: Sequence[str]) -> dict[str, Any]:
    """The shared layout: the key metrics, the parameters that differ, and the runner."""
    columns = [
        _column("tags", TAG_RUNNER),
        *[_column("metrics", m) for m in KEY_METRICS if m in metrics],
        *[_column("params", p) for p in params],
    ]
    return {
        "selectedColumns": columns,
        "columnOrder": [],
        "columnWidths": {},
        "runsExpanded": {},
        "runsPinned": [],
        "runsHidden": [],
        "viewMaximized": False,
        "orderByKey": "attributes.start_time",
        "orderByAsc": False,
        "searchFilter": f"tags.`{TAG_KIND}` = 'pipeline'",
    }


def differing(values: Sequence[dict[str, str]]) -> list[str]:
    names = sorted({name for v in values for name in v})
    return [name for name in names if len({v.get(name) for v in values}) > 1]


def update_runs_view(client: Any, experiment_id: str) -> None:
    """Rewrite the experiment's shared layout from its recent pipeline runs."""
    runs = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{TAG_KIND}` = 'pipeline'",
        order_by=["attributes.start_time DESC"],
        max_results=RECENT_RUNS,
    )
    metrics = sorted({m for run in runs for m in run.data.metrics})
    params = differing([dict(run.data.params) for run in runs])
    view = json.dumps(view_state(metrics, params))
    from mlflow.exceptions import MlflowException  # here: importing mlflow costs every CLI command ~1.5 s

    try:
        client.set_experiment_tag(experiment_id, VIEW_TAG, view)
    except MlflowException:
        # Two runs ending at once on a new SQLite store both insert the tag (MLflow checks, then inserts):
        # the loser's retry is an update. The layout is the last writer's either way.
        client.set_experiment_tag(experiment_id, VIEW_TAG, view)


def runs_url(ui_base: str, experiment_id: str) -> str:
    """The experiment's runs table in the kubesage layout, on the model-training side of the UI."""
    query = f"workflowType=machine_learning&viewStateShareKey={VIEW_KEY}"
    return f"{ui_base.rstrip('/')}/#/experiments/{experiment_id}/runs?{query}"
