"""The taxi features the model uses, and how each one is encoded."""

LABEL_KEY = "tips"
FARE_KEY = "fare"
# A trip is a "big tip" when the tip is more than this share of the fare.
BIG_TIP_SHARE = 0.2

# Skewed, non-negative amounts: log1p, then z-score.
NUMERIC_FEATURE_KEYS = ["fare", "trip_miles", "trip_seconds"]

# Coordinates: quantile buckets.
BUCKET_FEATURE_KEYS = ["pickup_latitude", "pickup_longitude", "dropoff_latitude", "dropoff_longitude"]
BUCKET_COUNT = 10

# Categories (strings or integer codes): a vocabulary with out-of-vocabulary buckets, so values
# never seen in training still map to a valid index.
CATEGORICAL_FEATURE_KEYS = [
    "payment_type",
    "company",
    "trip_start_hour",
    "trip_start_day",
    "trip_start_month",
    "pickup_community_area",
    "dropoff_community_area",
]
VOCAB_TOP_K = 1000
OOV_BUCKETS = 10

RAW_FEATURE_KEYS = NUMERIC_FEATURE_KEYS + BUCKET_FEATURE_KEYS + CATEGORICAL_FEATURE_KEYS


def transformed_name(key: str) -> str:
    return f"{key}_xf"


LABEL_XF = transformed_name(LABEL_KEY)
