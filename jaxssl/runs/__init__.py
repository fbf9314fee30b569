"""A run on disk: checkpoints, run identity, the workdir lock, metrics, runs read back, warm starts."""
