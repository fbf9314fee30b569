"""Helpers every layer may use: config errors, run directories, the console, XLA flags, argparse."""
