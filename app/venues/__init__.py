"""Venues: where orders go. ``paper`` is the deterministic exchange simulator."""
