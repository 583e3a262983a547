"""The reference model's own logic: the churn feature schema and transform, data validation, the generator.

The generic machinery (kubesage.ir, kubesage.tracking, kubesage.util) never imports this package.
"""
