"""Composition root: settings, build, run, signals; and the command line."""
