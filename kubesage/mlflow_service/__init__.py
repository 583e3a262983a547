"""`kubesage mlflow up|down|status|user add`: MLflow as a team service on one machine.

PostgreSQL (Debian's package) holds runs, the model registry and basic-auth's users; an S3 bucket
holds artifacts, proxied by the server so clients need only tracking credentials (moto in server
mode stands in for S3 here); MLflow runs with basic-auth on, `NO_PERMISSIONS` by default. Everything
lives in one state folder (`layout.py`), so `down` keeps the data and `up` finds it again.
"""
