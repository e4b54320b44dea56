"""Staging the changed versions of the datasets a plan changes, before anything is committed.

File targets whose files no other step touches stage side by side on two threads: a Parquet
rewrite spends its time in pyarrow, which encodes and compresses without the GIL, so two
files take about as long as the larger. Everything else stages one at a time, in the plan's
order. Nothing here commits: a failure leaves what was staged in `staged`, for the caller to
roll back, and is raised once every running stage has ended.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from optout.engine.targets import Staged, Target

#: file targets staged at once
WORKERS = 2


def side_by_side(order: list[int], targets: dict[int, Target]) -> list[int]:
    """The steps that may stage beside another: their target stages alone
    (`Target.stages_alone`) and no earlier one of them has any of their files."""
    out: list[int] = []
    seen: set[str] = set()
    for i in order:
        target = targets.get(i)
        if target is None or not target.stages_alone:
            continue
        files = {os.path.realpath(f) for f in target.files()}
        if files & seen:
            continue
        seen |= files
        out.append(i)
    return out


def stage(order: list[int], targets: dict[int, Target], staged: dict[int, Staged],
          record: Callable[[int], None], advance: Callable[..., None]) -> None:
    """Prepare the targets of `order` (those in `targets`), filling `staged` and calling
    `record(i)` in the plan's order as each is staged; the first failure is raised after the
    others ended, with what they staged in `staged`."""
    parallel = side_by_side(order, targets)
    pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="optout-stage") \
        if len(parallel) > 1 else None
    futures: dict[int, Future[Staged]] = {}
    failure: BaseException | None = None
    try:
        if pool is not None:
            futures = {i: pool.submit(targets[i].prepare) for i in parallel}
        for i in order:
            if i not in targets:
                continue
            advance(f"apply: staging {targets[i].step.dataset}")
            if i in futures:
                error = futures[i].exception()
                if error is not None:
                    failure = failure or error
                    continue
                staged[i] = futures[i].result()
            elif failure is None:
                try:
                    staged[i] = targets[i].prepare()
                except Exception as exc:  # raised below, once the others ended
                    failure = exc
                    continue
            else:
                continue
            record(i)
    finally:
        if pool is not None:
            pool.shutdown(wait=True)
    if failure is not None:
        raise failure
