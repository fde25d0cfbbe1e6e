"""The taxi features the model uses, and how each one is encoded.

Every feature is a CSV column of the same name; serving requests carry exactly these
(RAW_FEATURE_KEYS). The label is declared in models/label.py.
"""

# Skewed, non-negative amounts: log1p, then z-score.
NUMERIC_FEATURE_KEYS = ["fare", "trip_miles", "trip_seconds"]

# Coordinates: quantile buckets.
BUCKET_FEATURE_KEYS = ["pickup_latitude", "pickup_longitude", "dropoff_latitude", "dropoff_longitude"]
BUCKET_COUNT = 10

# String categories: a vocabulary with out-of-vocabulary buckets, so values never seen in
# training still map to a valid index.
VOCABULARY_FEATURE_KEYS = ["payment_type", "company"]
VOCAB_TOP_K = 1000
OOV_BUCKETS = 10

# Integer codes with a fixed range (the curated schema's int_domain): index value - low + 1, and
# index 0 for anything outside the range. Unlike a vocabulary, this needs no pass over the data.
INTEGER_CATEGORY_RANGES = {
    "trip_start_hour": (0, 23),
    "trip_start_day": (1, 7),
    "trip_start_month": (1, 12),
    "pickup_community_area": (1, 77),
    "dropoff_community_area": (1, 77),
}

CATEGORICAL_FEATURE_KEYS = VOCABULARY_FEATURE_KEYS + list(INTEGER_CATEGORY_RANGES)
RAW_FEATURE_KEYS = NUMERIC_FEATURE_KEYS + BUCKET_FEATURE_KEYS + CATEGORICAL_FEATURE_KEYS


def transformed_name(key: str) -> str:
    return f"{key}_xf"


def integer_category_buckets(key: str) -> int:
    """How many indices an integer category takes: one per value in range, plus index 0."""
    low, high = INTEGER_CATEGORY_RANGES[key]
    return high - low + 2
