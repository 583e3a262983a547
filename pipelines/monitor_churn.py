"""Drift monitoring for the churn model: captured traffic of a window against its training baseline.

    kubesage run monitor_churn --param captures=captures/ --param model=models:/customer-churn/1

The same check as `kubesage drift`, as a pipeline every runner runs; schedule it as a KFP recurring
run or from EventBridge (README, "Drift monitoring").
"""

from kfp import dsl

from kubesage.components.kfp_components import drift

PIPELINE_NAME = "monitor-churn"


@dsl.pipeline(
    name=PIPELINE_NAME,
    description="Captured endpoint traffic against the churn model's training baseline, in Model Monitor's formats.",
)
def monitor_churn(captures: str, model: str, start: str = "", end: str = "", last: str = "") -> None:
    check = drift(captures=captures, model=model, start=start, end=end, last=last).set_display_name("Drift")
    # Never cached: the same parameters name a capture folder or prefix that keeps growing.
    check.set_caching_options(False)
