"""OpenLineage RunEvents as a lineage source: what Airflow, Spark and dbt-ol emit.

Events (spec 2-0-2: `run`, `job`, `inputs`, `outputs`) are read from JSON files (one event or
a list) and JSON Lines. Each output dataset's `columnLineage` facet gives the column map: a
DIRECT IDENTITY input is `copied`, DIRECT TRANSFORMATION `transformed`, DIRECT AGGREGATION
`aggregated`; INDIRECT inputs (JOIN, FILTER, GROUP_BY, SORT, WINDOW, CONDITIONAL) make an edge
of kind `filter`. An output without the facet gets a table-level edge from each input (named
as such). Datasets are mapped by namespace and name: `file` namespaces by path, database
namespaces (`postgres://host:5432`, `duckdb`, `sqlite`) by `db.schema.table` as SQL would name
them. Every event, dataset or field that cannot be mapped is named in the problems.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlglot import exp

from optout.connectors import connector_for, schemes
from optout.model.errors import ConfigError
from optout.scanner.catalog import Catalog, DatasetRecord
from optout.scanner.lineage import LineageEdge
from optout.scanner.relations import resolve_table

SUFFIXES = (".json", ".jsonl", ".ndjson")
MAX_BYTES = 256 << 20
KIND = {"IDENTITY": "copied", "TRANSFORMATION": "transformed", "AGGREGATION": "aggregated"}


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class Transformation(_Loose):
    type: str = "DIRECT"
    subtype: str | None = None


class InputField(_Loose):
    namespace: str
    name: str
    field: str
    transformations: list[Transformation] = Field(default_factory=list)


class FieldLineage(_Loose):
    input_fields: list[InputField] = Field(default_factory=list, alias="inputFields")
    transformation_type: str | None = Field(None, alias="transformationType")  # before 1-1


class ColumnLineage(_Loose):
    fields: dict[str, FieldLineage] = Field(default_factory=dict)


class Facets(_Loose):
    column_lineage: ColumnLineage | None = Field(None, alias="columnLineage")


class Dataset(_Loose):
    namespace: str
    name: str
    facets: Facets = Field(default_factory=Facets)


class Job(_Loose):
    namespace: str = ""
    name: str = ""


class RunEvent(_Loose):
    event_type: str | None = Field(None, alias="eventType")
    job: Job = Field(default_factory=Job)
    inputs: list[Dataset] = Field(default_factory=list)
    outputs: list[Dataset] = Field(default_factory=list)


def read_events(path: Path) -> list[tuple[str, RunEvent]]:
    """(where, event) for every event in a file or in the event files below a folder."""
    files = sorted(p for p in path.rglob("*") if p.suffix in SUFFIXES) if path.is_dir() \
        else [path]
    out = []
    for file in files:
        try:
            if file.stat().st_size > MAX_BYTES:
                raise ConfigError(f"{file}: larger than {MAX_BYTES >> 20} MiB")
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{file}: cannot read OpenLineage events ({exc})") from exc
        if file.suffix in (".jsonl", ".ndjson"):
            items = [(f"{file}:{n}", line) for n, line in enumerate(text.splitlines(), 1)
                     if line.strip()]
        else:
            items = [(str(file), text)]
        for where, chunk in items:
            try:
                data = json.loads(chunk)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{where}: not JSON ({exc})") from exc
            for i, event in enumerate(data if isinstance(data, list) else [data]):
                at = where if not isinstance(data, list) else f"{where}[{i}]"
                if not isinstance(event, dict) or "job" not in event or "run" not in event:
                    raise ConfigError(f"{at}: not an OpenLineage RunEvent (no 'run' and 'job')")
                try:
                    out.append((at, RunEvent.model_validate(event)))
                except ValidationError as exc:
                    err = exc.errors()[0]
                    raise ConfigError(f"{at}: not an OpenLineage RunEvent: "
                                      f"{'.'.join(map(str, err['loc']))}: {err['msg']}") from exc
    return out


def dataset_of(namespace: str, name: str, records: list[DatasetRecord],
               ) -> tuple[DatasetRecord | None, str | None]:
    """The catalog dataset an OpenLineage dataset names, or None and why."""
    shown = f"{namespace}/{name}"
    scheme = urlparse(namespace).scheme or namespace.split(":", 1)[0]
    if scheme == "file" or namespace == "file":
        base = urlparse(namespace).path if "://" in namespace else ""
        path = os.path.normpath(name if name.startswith("/") else os.path.join(base or "/", name))
        found = [r for r in records if r.location == path]
        return (found[0], None) if len(found) == 1 else (None, f"{shown}: not in the catalog")
    candidates = records
    served = schemes().get(scheme)
    if served is not None:  # a server (postgres://host:port): its datasets on that host
        host = urlparse(namespace)
        candidates = [r for r in records if r.format == served.key
                      and urlparse(r.location).hostname == host.hostname
                      and (urlparse(r.location).port or served.default_port)
                      == (host.port or served.default_port)]
    elif connector_for(scheme) is not None:  # a database file's format (duckdb, sqlite)
        candidates = [r for r in records if r.format == scheme]
    parts = name.split(".")
    table = exp.Table(this=exp.to_identifier(parts[-1]),
                      db=exp.to_identifier(parts[-2]) if len(parts) > 1 else None,
                      catalog=exp.to_identifier(parts[-3]) if len(parts) > 2 else None)
    record, problem = resolve_table(candidates, table, None)
    if record is None:
        return None, f"{shown}: {problem.removeprefix('it reads ')}"
    return record, None


def _kind(field: InputField, legacy: str | None) -> str | None:
    """What an input field does to the output column; None when only INDIRECT."""
    if not field.transformations:
        return KIND.get((legacy or "IDENTITY").upper(), "transformed")
    direct = [t for t in field.transformations if t.type.upper() == "DIRECT"]
    if not direct:
        return None
    kinds = [KIND.get((t.subtype or "TRANSFORMATION").upper(), "transformed") for t in direct]
    return "aggregated" if "aggregated" in kinds else (
        "transformed" if "transformed" in kinds else "copied")


def openlineage_edges(events: list[tuple[str, RunEvent]], records: list[DatasetRecord],
                      origin_ref: str) -> tuple[list[LineageEdge], list[str]]:
    """Edges from events (the last event about an output wins), and problems."""
    problems: list[str] = []
    edges: dict[tuple[str, str], LineageEdge] = {}

    def ref(ns: str, name: str, where: str) -> str | None:
        record, problem = dataset_of(ns, name, records)
        if record is None:
            problems.append(f"{where}: {problem}")
            return None
        return f"{record.location}#{record.name}"

    for where, event in events:
        for output in event.outputs:
            down = ref(output.namespace, output.name, where)
            if down is None:
                continue
            for key in [k for k in edges if k[1] == down]:
                del edges[key]  # a later run of the job says what the output is now
            inputs = {(d.namespace, d.name) for d in event.inputs}
            lineage = output.facets.column_lineage
            if lineage is not None:
                for column, spec in lineage.fields.items():
                    for field in spec.input_fields:
                        up = ref(field.namespace, field.name, where)
                        if up is None:
                            continue
                        inputs.discard((field.namespace, field.name))
                        edge = edges.setdefault((up, down), LineageEdge(
                            up, down, origin="openlineage", origin_ref=origin_ref))
                        kind = _kind(field, spec.transformation_type)
                        if kind is None:
                            continue
                        entry = edge.columns.setdefault(column, {"from": [], "kind": kind})
                        entry["from"] = sorted({*entry["from"], field.field})
            elif event.inputs:
                problems.append(f"{where}: {output.namespace}/{output.name}: no column lineage "
                                "facet: dataset-level edges only")
            for ns, name in sorted(inputs):
                up = ref(ns, name, where)
                if up is not None:
                    edges.setdefault((up, down), LineageEdge(up, down, origin="openlineage",
                                                             origin_ref=origin_ref))
    return list(edges.values()), problems


def register_openlineage(catalog: Catalog, path: Path) -> tuple[int, list[str]]:
    """Register the lineage OpenLineage events in a file or folder describe: (edges stored,
    problems)."""
    events = read_events(path)
    origin = str(path.resolve())
    edges, problems = openlineage_edges(events, catalog.datasets(), origin)
    unresolved: list[str] = []
    n = catalog.replace_lineage(origin, edges, unresolved=unresolved)
    return n, problems + unresolved

