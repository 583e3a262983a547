"""The real-time API: the Lambda handler, its local API Gateway front, packaging and deployment.

Nothing is imported here: the handler's cold start pays only for the modules it names.
"""
