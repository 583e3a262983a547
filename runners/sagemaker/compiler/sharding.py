"""Tasks on several instances: which may, and the shard count their sharded inputs are written with.

SageMaker's convention for a multi-instance training job: InstanceCount starts the same container on
N hosts, and a channel with ShardedByS3Key gives each host about 1/N of the channel's S3 objects,
whole objects only. So a training task on N instances needs each sharded input written as at least N
objects. The task that writes such an input says it can, with an integer input named
`<output>_shards` (the churn preprocess takes `train_shards` for its `train` output): the compiler
sets it to the instance count, so the two can never disagree. Whatever cannot run on several
instances is refused here, at compile time, naming the task and what to change.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from kubesage.errors import UnsupportedFeatureError
from kubesage.runners.sagemaker.config import SageMakerConfig
from kubesage.runners.sagemaker.ir import Constant, PipelinePlan, TaskOutputArtifact, TaskPlan

SHARDS_SUFFIX = "_shards"


@dataclass(frozen=True)
class ShardedInput:
    """A training task's input channel that each of its instances receives a share of."""

    consumer: str
    channel: str
    instances: int
    producer: str = ""  # "" for an input the pipeline imports: its objects are the user's to lay out
    output: str = ""

    @property
    def parameter(self) -> str:
        """The producer's input that says how many files to write the output as."""
        return f"{self.output}{SHARDS_SUFFIX}"


def check_instance_counts(plan: PipelinePlan, config: SageMakerConfig) -> None:
    """Every task named in `instance_counts` exists, and only training tasks go above one instance."""
    unknown = sorted(set(config.instance_counts) - set(plan.tasks))
    if unknown:
        raise UnsupportedFeatureError(
            f"instance_counts names {unknown}, not tasks of pipeline '{plan.name}' (its tasks: "
            f"{', '.join(sorted(plan.tasks))})"
        )
    for key, count in sorted(config.instance_counts.items()):
        task = plan.tasks[key]
        if count > 1 and (task.kind != "training" or task.fan_out is not None):
            raise UnsupportedFeatureError(
                f"task '{key}' on {count} instances: it runs as a processing job, where every instance runs "
                "the whole component and writes the same outputs. Only a training task (one with a Model "
                f"output, whose component trains across its hosts) runs on several; set instance_counts "
                f"'{key}' to 1"
            )


def sharded_inputs(plan: PipelinePlan, config: SageMakerConfig) -> list[ShardedInput]:
    """The channels of multi-instance training tasks that SageMaker shares out (config.sharded_inputs)."""
    found = []
    for key, task in sorted(plan.tasks.items()):
        count = config.instance_count(key)
        if count <= 1:
            continue
        for channel, source in sorted(task.artifacts.items()):
            if channel not in config.sharded_inputs:
                continue
            if isinstance(source, TaskOutputArtifact):
                found.append(ShardedInput(key, channel, count, source.task, source.key))
            else:
                found.append(ShardedInput(key, channel, count))
    return found


def _writes_shards(producer: TaskPlan, parameter: str) -> bool:
    declared = producer.component.get("inputDefinitions", {}).get("parameters", {})
    return bool(declared.get(parameter, {}).get("parameterType") == "NUMBER_INTEGER")


def shard_plan(plan: PipelinePlan, config: SageMakerConfig) -> tuple[PipelinePlan, list[ShardedInput]]:
    """`plan` with every producer of a sharded input told to write it as one file per instance."""
    check_instance_counts(plan, config)
    found = sharded_inputs(plan, config)
    counts: dict[tuple[str, str], ShardedInput] = {}
    for shard in found:
        if not shard.producer:
            continue
        producer = plan.tasks[shard.producer]
        if not _writes_shards(producer, shard.parameter):
            raise UnsupportedFeatureError(
                f"task '{shard.consumer}' on {shard.instances} instances receives '{shard.channel}' "
                f"ShardedByS3Key, but task '{shard.producer}' writes '{shard.output}' as one object and has no "
                f"integer input '{shard.parameter}' to write it as {shard.instances}: one instance would get "
                f"every row and the others none. Give its component an input `{shard.parameter}: int = 1` that "
                f"writes that many files (as the churn preprocess does), or leave '{shard.channel}' out of "
                "sharded_inputs"
            )
        other = counts.setdefault((shard.producer, shard.parameter), shard)
        if other.instances != shard.instances:
            raise UnsupportedFeatureError(
                f"tasks '{other.consumer}' ({other.instances} instances) and '{shard.consumer}' "
                f"({shard.instances}) both receive '{shard.producer}.{shard.output}' sharded; give them the "
                "same instance count"
            )
        bound = producer.parameters.get(shard.parameter)
        if bound is not None and bound != Constant(shard.instances):
            raise UnsupportedFeatureError(
                f"task '{shard.producer}': the pipeline sets its input '{shard.parameter}', but the compiler "
                f"sets it from task '{shard.consumer}''s instance count ({shard.instances}) so that the two "
                "agree; leave it unset in the pipeline and set instance_counts instead"
            )
    tasks = dict(plan.tasks)
    for (key, parameter), shard in counts.items():
        tasks[key] = dataclasses.replace(
            tasks[key], parameters={**tasks[key].parameters, parameter: Constant(shard.instances)}
        )
    notes = [*plan.notes, *(report_line(shard, config.local_mode) for shard in found)]
    return dataclasses.replace(plan, tasks=tasks, notes=notes), found


def report_line(shard: ShardedInput, local_mode: bool) -> str:
    """The explain report's line for one sharded input."""
    how = (
        "FullyReplicated in local mode (it refuses ShardedByS3Key): every host sees every file and takes the "
        "files at its rank"
        if local_mode
        else "ShardedByS3Key: each instance downloads about 1/n of its objects"
    )
    if not shard.producer:
        return (
            f"task '{shard.consumer}' on {shard.instances} instances: input '{shard.channel}' -> {how}; it is "
            f"imported, so its S3 prefix must hold at least {shard.instances} objects of similar size"
        )
    return (
        f"task '{shard.consumer}' on {shard.instances} instances: input '{shard.channel}' -> {how}; task "
        f"'{shard.producer}' gets {shard.parameter}={shard.instances} (a constant: it writes "
        f"'{shard.output}' as {shard.instances} files)"
    )
