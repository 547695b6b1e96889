"""Persistence: the append-only event log, its projections, and the codec between them."""
