"""Reading another task's XCom from inside a mapped task group."""

from __future__ import annotations

from typing import Any


def pull_from(context: Any, task_id: str) -> Any:
    """The return value of ``task_id``; inside a mapped task group, that of the same map index."""
    ti = context["ti"]
    map_index = getattr(ti, "map_index", -1)
    if isinstance(map_index, int) and map_index >= 0:
        return ti.xcom_pull(task_ids=task_id, map_indexes=map_index)
    return ti.xcom_pull(task_ids=task_id)
