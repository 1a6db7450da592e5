"""Bounds on the long-lived streams of one kind, so that they cannot hold every call slot."""

from __future__ import annotations

import contextlib
from typing import AsyncIterator

import grpc


class OpenStreams:
    """A bound on open streams of one kind (`what`: "health watchers and reflection streams").
    Each open stream holds one of `max_concurrent_rpcs`: unbounded, a process with no token held
    them all (found by a tester with health watchers; another with recommendation streams, which
    a read token opens), and every CheckTrade was turned away."""

    def __init__(self, limit: int, what: str) -> None:
        self.limit = limit
        self._what = what
        self._open = 0

    @contextlib.asynccontextmanager
    async def slot(self, context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
        """Hold one for the stream's life; RESOURCE_EXHAUSTED when none is left."""
        if self._open >= self.limit:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, f"at most {self.limit} {self._what} at once")
        self._open += 1
        try:
            yield
        finally:
            self._open -= 1
