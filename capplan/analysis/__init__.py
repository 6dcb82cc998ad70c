"""Analyses: pure functions from frames to frames, plus loaders that read their inputs from the store."""
