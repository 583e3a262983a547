"""Drift monitoring: SageMaker's data capture, Model Monitor's statistics, constraints and violations.

`capture` writes capture records and `reading` reads them back; `dataset` turns them into raw columns;
`statistics` builds statistics.json and constraints.json; `checks` finds violations and measures drift
(KS, L-infinity, PSI); `drift` runs a whole check into a folder; `report` renders its HTML page;
`publish` records it in MLflow and CloudWatch.
"""
