"""The zoo model the export tests use, and the maximum batch its bundles are verified at."""

TINY = "resnet_tiny"
TINY_MAX_BATCH = 8
