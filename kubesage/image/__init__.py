"""The xgboost-daal4py image's entry points: `train` (SageMaker's training contract) and `serve`.

The image's /usr/local/bin/train and /usr/local/bin/serve run `python -m kubesage.image train|serve`;
the code they call lives in the package (components, serving), so the image and a laptop run the same.
"""
