"""The Lambda function's code: handler, request validation, endpoint call. Nothing heavy (a contract).

The deployment zip is built from this package and what it imports (kubesage.deploy.package); numpy,
pandas, pydantic and MLflow may not be imported from here (import-linter, `make lint`).
"""
