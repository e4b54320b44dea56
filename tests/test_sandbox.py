"""The rebuild sandbox reads the relations it is handed and nothing else (issue 11, attack 3),
and the rebuild SQL is bound to catalog datasets when the plan is made."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from optout.connectors.readers import reader_sql
from optout.engine.rebuild import bind
from optout.model.sandbox import Relation, SandboxError, run_select
from optout.scanner.catalog.store import DatasetRecord


@pytest.fixture()
def upstream(tmp_path: Path) -> dict[str, Relation]:
    path = tmp_path / "people.parquet"
    pq.write_table(pa.table({"id": [1, 2, 3], "email": ["a@x.org", "b@x.org", "c@x.org"]}), path)
    (tmp_path / "secret.key").write_text("the catalog secret")
    return {"optout_upstream_0": Relation(reader_sql("parquet", [str(path)], {}), (str(path),)),
            "optout_upstream_1": Relation(arrow=pa.table({"id": [1, 3], "total": [5, 7]}))}


def test_the_sandbox_reads_what_it_was_given(upstream: dict[str, Relation]) -> None:
    out = run_select('SELECT p.id, p.email, o.total FROM "optout_upstream_0" p JOIN '
                     '"optout_upstream_1" o USING (id) ORDER BY id', upstream)
    assert out.to_pylist() == [{"id": 1, "email": "a@x.org", "total": 5},
                               {"id": 3, "email": "c@x.org", "total": 7}]


@pytest.mark.parametrize("attack", [
    "SELECT content FROM read_text('{root}/secret.key')",
    "SELECT content FROM read_text('/proc/self/environ')",
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM glob('{root}/*')",
    "SELECT getenv('HOME')",
    "SELECT * FROM read_parquet('{root}/*.parquet')",
])
def test_the_sandbox_reads_nothing_else(upstream: dict[str, Relation], tmp_path: Path,
                                        attack: str) -> None:
    with pytest.raises(SandboxError):
        run_select(attack.format(root=tmp_path), upstream)


@pytest.mark.parametrize("attack", [
    "ATTACH '{root}/other.duckdb'", "COPY (SELECT 1) TO '{root}/out.csv'",
    "SET enable_external_access = true", "INSTALL httpfs",
])
def test_the_sandbox_writes_nothing(upstream: dict[str, Relation], tmp_path: Path,
                                    attack: str) -> None:
    with pytest.raises(SandboxError):
        run_select(attack.format(root=tmp_path), upstream)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["people.parquet", "secret.key"]


def _record(ident: str, name: str, location: str) -> DatasetRecord:
    return DatasetRecord(ident, name, "table", "duckdb", location, 1, "ok", None, None, None,
                         None)


RECORDS = [_record("d1", "orders", "/w/shop.duckdb"), _record("d2", "customers", "/w/shop.duckdb"),
           _record("d3", "customers", "/other/crm.duckdb"),
           _record("d4", "staging.orders", "/w/shop.duckdb"),
           _record("t", "ltv", "/w/shop.duckdb")]


@pytest.mark.parametrize(("sql", "tables", "problem"), [
    ("CREATE TABLE ltv AS SELECT c.id FROM customers c JOIN orders o ON o.cid = c.id",
     {"d2", "d1"}, None),
    ('CREATE TABLE ltv AS SELECT * FROM "shop"."main"."orders"', {"d1"}, None),
    ("CREATE TABLE ltv AS SELECT * FROM crm.main.customers", {"d3"}, None),
    ("CREATE TABLE ltv AS SELECT * FROM staging.orders", {"d4"}, None),
    ("CREATE TABLE ltv AS WITH orders AS (SELECT * FROM customers) SELECT * FROM orders",
     {"d2"}, None),
    ("CREATE TABLE other AS SELECT 1; CREATE TABLE ltv AS SELECT * FROM orders", {"d1"}, None),
    ("CREATE TABLE ltv AS SELECT * FROM nowhere", None, "which is not in the catalog"),
    ("CREATE TABLE ltv AS SELECT * FROM ltv", None, "it reads ltv itself"),
    ("CREATE TABLE ltv AS SELECT * FROM read_text('x')", None, "catalog datasets only"),
    ("CREATE TABLE x AS SELECT 1", None, "no SELECT that builds ltv"),
    ("CREATE TABLE ltv AS SELEC FROM", None, "does not parse"),
])
def test_rebuild_sql_is_bound_to_catalog_datasets(sql: str, tables: set | None,
                                                  problem: str | None) -> None:
    rebuild = bind(sql, RECORDS[-1], RECORDS)
    if tables is None:
        assert rebuild.sql is None and problem in rebuild.problem, rebuild
        return
    assert {ident for _, ident in rebuild.tables} == tables, rebuild
    assert "optout_upstream_0" in rebuild.sql and rebuild.problem is None
