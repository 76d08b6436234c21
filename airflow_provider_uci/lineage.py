"""OpenLineage for the copy and the load: which files and which table a task read and wrote.

The copy and load operators record what they touched as plain ``(namespace, name)`` pairs while they
run; :func:`operator_lineage` turns them into the OpenLineage provider's ``OperatorLineage`` when its
listener asks (``get_openlineage_facets_on_complete``). OpenLineage is imported there and only there,
so the provider works without it, as the OpenLineage provider's guide for operators asks.

Names follow OpenLineage's naming conventions: a service file is named by its URL without the
query (the signature never appears), a file on Azure Blob by ``wasbs://<container>@<account host>``
and its path, a local file by ``file`` and its absolute path, a PostgreSQL table by
``postgres://<host>:<port>`` and ``<database>.<schema>.<table>``, a SQLite table by ``sqlite://<file>``
and the table's name.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

#: (namespace, name) of one dataset
Name = tuple[str, str]


def service_file(url: str) -> Name:
    """A file the service wrote, named by its download URL without the signature (the query)."""
    parts = urlsplit(url)
    path = unquote(parts.path)
    if parts.hostname and parts.hostname.endswith(".blob.core.windows.net"):
        container, _, blob = path.lstrip("/").partition("/")
        return f"wasbs://{container}@{parts.hostname}", blob
    return f"{parts.scheme}://{parts.netloc}", path


def stored_file(location: str) -> Name:
    """A file the copy wrote: a local path, or ``wasb://<container>/<path>``."""
    parts = urlsplit(location)
    if parts.scheme in ("wasb", "wasbs"):
        container, _, account = parts.netloc.partition("@")
        namespace = f"wasbs://{container}@{account}" if account else f"wasbs://{container}"
        return namespace, unquote(parts.path).lstrip("/")
    return "file", str(Path(location).absolute())


def warehouse_table(url: str, table: str) -> Name:
    """The warehouse table of a ``postgresql://`` or ``sqlite:///`` URL (credentials left out)."""
    parts = urlsplit(url)
    if parts.scheme.startswith("postgres"):
        database = parts.path.lstrip("/") or "postgres"
        return f"postgres://{parts.hostname}:{parts.port or 5432}", f"{database}.public.{table}"
    path = url.split("://", 1)[1][1:]  # sqlite:///relative.db, sqlite:////absolute.db
    return f"sqlite://{Path(path).absolute()}", table


def operator_lineage(
    inputs: Iterable[Name],
    outputs: Iterable[Name],
    schemas: dict[Name, Sequence[tuple[str, str]]] | None = None,
) -> Any:
    """The provider's ``OperatorLineage`` of these datasets; ``schemas`` gives columns (name, type) by dataset."""
    from airflow.providers.common.compat.openlineage.facet import (
        Dataset,
        DatasetFacet,
        SchemaDatasetFacet,
        SchemaDatasetFacetFields,
    )
    from airflow.providers.openlineage.extractors import OperatorLineage

    def dataset(name: Name) -> Any:
        columns = (schemas or {}).get(name)
        facets: dict[str, DatasetFacet] = (
            {
                "schema": SchemaDatasetFacet(
                    fields=[SchemaDatasetFacetFields(name=column, type=kind) for column, kind in columns]
                )
            }
            if columns
            else {}
        )
        return Dataset(namespace=name[0], name=name[1], facets=facets)

    return OperatorLineage(
        inputs=[dataset(name) for name in dict.fromkeys(inputs)],
        outputs=[dataset(name) for name in dict.fromkeys(outputs)],
    )
