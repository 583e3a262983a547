"""Step order (runners/sagemaker/compiler/order.py): producers first, ordering-only dependencies kept."""

import pytest

from kubesage.errors import UnsupportedFeatureError
from kubesage.runners.sagemaker.compiler.order import ordering_dependencies, topological
from kubesage.runners.sagemaker.ir import (
    Collected,
    ParamSource,
    PipelinePlan,
    TaskOutputArtifact,
    TaskOutputParam,
    TaskPlan,
)


def _task(key: str, *, after: tuple[str, ...] = (), reads: dict[str, ParamSource] | None = None) -> TaskPlan:
    return TaskPlan(
        key=key,
        display_name=key,
        component_name=key,
        component={},
        container={},
        parameters=dict(reads or {}),
        artifacts={},
        kind="processing",
        model_output=None,
        depends_on=list(after),
        group=None,
        caching=False,
        retry=None,
    )


def _plan(*tasks: TaskPlan) -> PipelinePlan:
    return PipelinePlan(name="p", description="", parameters={}, tasks={t.key: t for t in tasks}, conditions={})


def test_producers_come_first_whatever_their_names() -> None:
    collect = _task("a-collect", reads={"xs": Collected((TaskOutputParam("z-1", "x"), TaskOutputParam("y-0", "x")))})
    plan = _plan(collect, _task("z-1", after=("y-0",)), _task("y-0"))
    assert [t.key for t in topological(plan)] == ["y-0", "z-1", "a-collect"]


def test_a_cycle_is_refused_with_its_path() -> None:
    plan = _plan(_task("a", after=("b",)), _task("b", reads={"x": TaskOutputParam("a", "x")}))
    with pytest.raises(UnsupportedFeatureError, match=r"task 'a': dependency cycle a -> b -> a"):
        topological(plan)


def test_only_ordering_dependencies_are_declared() -> None:
    reader = _task("c", after=("a", "b"), reads={"x": TaskOutputParam("a", "x")})
    reader.artifacts["m"] = TaskOutputArtifact("b", "m")
    plan = _plan(_task("a"), _task("b"), _task("d"), reader)
    assert ordering_dependencies(plan, reader) is None  # SageMaker infers both from the references
    later = _task("e", after=("d", "a"), reads={"x": TaskOutputParam("a", "x")})
    assert ordering_dependencies(plan, later) == ["d"]
