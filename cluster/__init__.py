"""Wiring: config, Ray placement, the driver loop, curriculum, tracking and the `rlvr` command line."""
