"""What the catalog knows, for privacy staff and auditors: datasets and their PII columns
with the classifier's evidence (masked examples only), lineage edges, the identity graph."""

from __future__ import annotations

from fastapi import APIRouter

from optout.engine.graph_json import graph_json
from optout.server.auth import Caller

router = APIRouter(prefix="/v1")


@router.get("/catalog")
def catalog(session: Caller, pii_only: bool = False) -> dict:
    """The catalog as the stable export structure (`optout catalog export`): masked values."""
    exported = session.export_catalog()
    if pii_only:
        exported["datasets"] = [d for d in exported.get("datasets", [])
                                if any(c.get("pii") for c in d.get("columns", []))]
    return exported


@router.get("/lineage")
def lineage(session: Caller) -> dict:
    """Every lineage edge: what each derived dataset is made from, column by column."""
    from optout.session.operations import Operation

    with session.operation(Operation.LINEAGE_SHOW, {"all": True}):
        return {"edges": session.catalog.lineage()}


@router.get("/graph")
def graph(session: Caller) -> dict:
    """The identity graph: key domains with their columns and roles, links with evidence."""
    return graph_json(session.graph())
