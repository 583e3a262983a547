"""Deployment to AWS: the CloudFormation template, the Lambda zip, change sets, API keys, the IAM linter."""
