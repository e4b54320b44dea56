"""The identity graph as data: what `optout graph --format json` prints and the HTTP API's
`/v1/graph` answers."""

from __future__ import annotations

from optout.engine.graph import IdentityGraph


def graph_json(graph: IdentityGraph) -> dict:
    """`optout graph --format json`: domains with their columns and roles, every link with
    its evidence, and the identifier columns that are not match keys."""
    domains: dict[str, list[dict]] = {}
    for column, domain in sorted(graph.domains.items()):
        domains.setdefault(domain, []).append(
            {"column": graph.name(column), "role": graph.roles.get(column)})
    return {
        "domains": domains,
        "links": [{"from": graph.name(x.a), "to": graph.name(x.b), "kind": x.kind,
                   "status": x.status, "evidence": x.evidence, "ratio": x.ratio}
                  for x in graph.links],
        "not_match_keys": {graph.name(c): why for c, why in sorted(graph.vetoed.items())},
    }
