"""The churn pipeline's defaults, written once: the seed's split and hyperparameters.

The pipeline's parameter defaults, TrainParams, SplitFractions and the step entry points all read
these, so a change here changes every backend, the SageMaker training contract and the docs' table.
Kept free of heavy imports: the pipeline module reads it at compile time.
"""

SEED = 42
TRAIN_FRACTION = 0.70
VALIDATION_FRACTION = 0.18  # the test split gets the rest (the seed's 70/18/12)

# The seed's XGBoost binary:logistic settings.
MAX_DEPTH = 5
ETA = 0.3
GAMMA = 4.0
MIN_CHILD_WEIGHT = 6.0
SUBSAMPLE = 0.7
NUM_ROUND = 100
EARLY_STOPPING_ROUNDS = 10

DECISION_THRESHOLD = 0.5
MIN_ACCURACY = 0.8
MODEL_NAME = "customer-churn"
