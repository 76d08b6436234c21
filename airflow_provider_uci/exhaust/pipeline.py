"""Work on a stream of items by threads at once, the results in the items' order."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any


def in_order(
    function: Callable[[Any], Any], items: Iterator[Any], workers: int
) -> Generator[Any, None, None]:
    """``function`` of each item, in the items' order, computed by ``workers`` threads at once (pyarrow
    and numpy let go of the GIL while they work); one item more than there are workers is taken ahead."""
    if workers <= 1:
        yield from map(function, items)
        return
    with ThreadPoolExecutor(workers, thread_name_prefix="uci-arrow") as pool:
        pending: deque[Future[Any]] = deque()
        try:
            for item in items:
                pending.append(pool.submit(function, item))
                if len(pending) > workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()
