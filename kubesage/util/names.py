"""Pipeline names in either spelling: `customer_churn` (the module) and `customer-churn` (KFP's IR name)."""

from __future__ import annotations


def same_pipeline_name(a: str, b: str) -> bool:
    """`customer_churn` and `customer-churn` name the same pipeline (module name vs. KFP's IR name)."""
    return a.replace("_", "-").lower() == b.replace("_", "-").lower()
