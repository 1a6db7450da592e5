"""Errors of the store layer."""


class StoreError(Exception):
    """The store could not make a change durable; the change was not applied."""
