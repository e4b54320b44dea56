"""Progress of the long passes (a plan's rounds over the datasets, apply's steps): the engine
says what it starts and how far it got; whoever runs it (the CLI on a terminal) shows it.
Nothing is shown, and nothing costs more than a function call, when nobody listens."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator
from typing import Protocol


class Listener(Protocol):
    """What shows progress: a pass starts (with how many items, when known), advances, ends."""

    def start(self, description: str, total: int | None) -> object: ...

    def advance(self, task: object, description: str | None, done: int) -> None: ...

    def end(self, task: object) -> None: ...


_LISTENER: contextvars.ContextVar[Listener | None] = contextvars.ContextVar(
    "optout_progress", default=None)


@contextlib.contextmanager
def listening(listener: Listener | None) -> Iterator[None]:
    """Send the passes run inside the block to `listener`."""
    token = _LISTENER.set(listener)
    try:
        yield
    finally:
        _LISTENER.reset(token)


@contextlib.contextmanager
def task(description: str, total: int | None = None) -> Iterator[Callable[..., None]]:
    """A pass: yields `next_item(description=None)`, called as each item starts (the one
    before it is then done; the last is done when the pass ends)."""
    listener = _LISTENER.get()
    if listener is None:
        yield lambda description=None: None
        return
    handle = listener.start(description, total)
    started = False

    def next_item(what: str | None = None) -> None:
        nonlocal started
        listener.advance(handle, what, 1 if started else 0)
        started = True

    try:
        yield next_item
    finally:
        listener.end(handle)
