"""Versioned catalog schema. Each migration runs once, in order, inside one transaction.

Tables have no PRIMARY KEY constraints on purpose: DuckDB checks them eagerly, so a
delete-then-insert of the same key inside one transaction (how every upsert here works)
would fail. Uniqueness is kept by the writers in `store.py`.
"""

from __future__ import annotations

import duckdb

MIGRATIONS: list[tuple[int, str, str]] = [
    (
        1,
        "sources, datasets, columns, findings, scan runs and errors",
        """
    CREATE TABLE sources (
        id VARCHAR NOT NULL, location VARCHAR NOT NULL, kind VARCHAR NOT NULL,
        first_seen TIMESTAMP NOT NULL, last_scanned TIMESTAMP NOT NULL);
    CREATE TABLE scan_runs (
        id VARCHAR NOT NULL, started_at TIMESTAMP NOT NULL, finished_at TIMESTAMP,
        sources JSON NOT NULL, settings JSON NOT NULL, status VARCHAR NOT NULL,
        datasets_scanned INTEGER DEFAULT 0, datasets_skipped INTEGER DEFAULT 0,
        datasets_failed INTEGER DEFAULT 0, pii_columns INTEGER DEFAULT 0,
        rows_sampled BIGINT DEFAULT 0, seconds DOUBLE);
    CREATE TABLE datasets (
        id VARCHAR NOT NULL, source_id VARCHAR NOT NULL, name VARCHAR NOT NULL,
        kind VARCHAR NOT NULL, format VARCHAR NOT NULL, location VARCHAR NOT NULL,
        options JSON, row_count BIGINT, row_count_exact BOOLEAN, schema JSON,
        fingerprint VARCHAR, settings_key VARCHAR, scanned_at TIMESTAMP,
        scan_run_id VARCHAR, status VARCHAR NOT NULL, error VARCHAR);
    CREATE TABLE columns (
        dataset_id VARCHAR NOT NULL, position INTEGER NOT NULL, name VARCHAR NOT NULL,
        type VARCHAR NOT NULL);
    CREATE TABLE findings (
        dataset_id VARCHAR NOT NULL, column_name VARCHAR NOT NULL, pii BOOLEAN NOT NULL,
        entity VARCHAR, score DOUBLE NOT NULL, identifier BOOLEAN NOT NULL,
        free_text BOOLEAN NOT NULL, entities JSON, signals JSON, sample_size INTEGER,
        non_null INTEGER, distinct_count INTEGER, examples JSON);
    CREATE TABLE scan_errors (
        run_id VARCHAR NOT NULL, dataset_id VARCHAR, name VARCHAR, location VARCHAR NOT NULL,
        error VARCHAR NOT NULL, failed_at TIMESTAMP NOT NULL);
    """,
    ),
    (
        2,
        "foreign keys, view and SQL definitions, key sketches, lineage edges",
        """
    CREATE TABLE foreign_keys (
        dataset_id VARCHAR NOT NULL, columns JSON NOT NULL, ref_table VARCHAR NOT NULL,
        ref_columns JSON NOT NULL);
    CREATE TABLE definitions (
        dataset_id VARCHAR NOT NULL, sql VARCHAR NOT NULL, dialect VARCHAR NOT NULL,
        origin VARCHAR NOT NULL, recorded_at TIMESTAMP NOT NULL);
    CREATE TABLE key_sketches (
        dataset_id VARCHAR NOT NULL, column_name VARCHAR NOT NULL, kind VARCHAR NOT NULL,
        hashes JSON NOT NULL);
    CREATE TABLE lineage_edges (
        upstream_id VARCHAR NOT NULL, downstream_id VARCHAR NOT NULL, column_map JSON NOT NULL,
        kind VARCHAR NOT NULL, origin VARCHAR NOT NULL, origin_ref VARCHAR,
        recorded_at TIMESTAMP NOT NULL);
    """,
    ),
    (
        3,
        "erasure requests, their steps, dataset leases, the erasure ledger",
        """
    CREATE TABLE requests (
        id VARCHAR NOT NULL, plan_hash VARCHAR NOT NULL, plan JSON NOT NULL,
        policy VARCHAR NOT NULL, status VARCHAR NOT NULL, principal VARCHAR NOT NULL,
        dry_run BOOLEAN NOT NULL, created_at TIMESTAMP NOT NULL, updated_at TIMESTAMP NOT NULL,
        error VARCHAR);
    CREATE TABLE request_steps (
        request_id VARCHAR NOT NULL, step_no INTEGER NOT NULL, dataset_id VARCHAR NOT NULL,
        dataset VARCHAR NOT NULL, location VARCHAR NOT NULL, action VARCHAR NOT NULL,
        stage INTEGER NOT NULL, status VARCHAR NOT NULL, attempts INTEGER NOT NULL,
        error VARCHAR, staged JSON, rows_before BIGINT, rows_after BIGINT, rows_changed BIGINT,
        checksum_before VARCHAR, checksum_after VARCHAR, residue BIGINT,
        started_at TIMESTAMP, finished_at TIMESTAMP);
    CREATE TABLE leases (
        dataset_id VARCHAR NOT NULL, request_id VARCHAR NOT NULL, pid INTEGER NOT NULL,
        host VARCHAR NOT NULL, acquired_at TIMESTAMP NOT NULL);
    CREATE TABLE ledger (
        subject_hash VARCHAR NOT NULL, subject_key VARCHAR NOT NULL, request_id VARCHAR NOT NULL,
        erased_at TIMESTAMP NOT NULL);
    """,
    ),
    (
        4,
        "value-level keyed hashes of erased subjects, per identifier domain",
        """
    CREATE TABLE ledger_values (
        request_id VARCHAR NOT NULL, domain VARCHAR NOT NULL, hash VARCHAR NOT NULL);
    """,
    ),
    (
        5,
        "principals, tokens (scrypt hashes only), plan approvals, the hash-chained audit log",
        """
    CREATE TABLE principals (
        name VARCHAR NOT NULL, roles VARCHAR[] NOT NULL, created_at TIMESTAMP NOT NULL,
        created_by VARCHAR NOT NULL);
    CREATE TABLE tokens (
        id VARCHAR NOT NULL, principal VARCHAR NOT NULL, salt BLOB NOT NULL, hash BLOB NOT NULL,
        created_at TIMESTAMP NOT NULL, expires_at TIMESTAMP, revoked_at TIMESTAMP);
    CREATE TABLE approvals (
        plan_hash VARCHAR NOT NULL, request_id VARCHAR NOT NULL, approver VARCHAR NOT NULL,
        approved_at TIMESTAMP NOT NULL);
    CREATE TABLE audit_log (
        seq BIGINT NOT NULL, logged_at TIMESTAMP NOT NULL, principal VARCHAR NOT NULL,
        roles VARCHAR NOT NULL, command VARCHAR NOT NULL, args VARCHAR NOT NULL,
        outcome VARCHAR NOT NULL, detail VARCHAR, mac VARCHAR NOT NULL);
    """,
    ),
    (
        6,
        "the worker's requests, cascade outcomes, the webhook outbox (keyed hashes only)",
        """
    CREATE TABLE worker_requests (
        request_id VARCHAR NOT NULL, status VARCHAR NOT NULL, policy VARCHAR NOT NULL,
        identifiers JSON NOT NULL, detail VARCHAR, received_at TIMESTAMP NOT NULL,
        updated_at TIMESTAMP NOT NULL, batch_id VARCHAR);
    CREATE TABLE cascade_steps (
        request_id VARCHAR NOT NULL, target VARCHAR NOT NULL, kind VARCHAR NOT NULL,
        status VARCHAR NOT NULL, attempts INTEGER NOT NULL, error VARCHAR, detail VARCHAR,
        updated_at TIMESTAMP NOT NULL);
    CREATE TABLE outbox (
        request_id VARCHAR NOT NULL, target VARCHAR NOT NULL, url VARCHAR NOT NULL,
        body VARCHAR NOT NULL, status VARCHAR NOT NULL, attempts INTEGER NOT NULL,
        reply_status INTEGER, reply VARCHAR, error VARCHAR, created_at TIMESTAMP NOT NULL,
        delivered_at TIMESTAMP);
    """,
    ),
    (
        7,
        "plans as made: approve and apply read them here, a plan file is only a handle",
        """
    CREATE TABLE plans (
        content_hash VARCHAR NOT NULL PRIMARY KEY, request_id VARCHAR NOT NULL,
        created_by VARCHAR NOT NULL, policy_name VARCHAR, policy_digest VARCHAR,
        approvals INTEGER NOT NULL, created_at TIMESTAMP NOT NULL, body VARCHAR NOT NULL);
    """,
    ),
    (
        8,
        "seals (a MAC under the catalog secret) on the rows that decide access or outcomes",
        """
    ALTER TABLE principals ADD COLUMN mac VARCHAR;
    ALTER TABLE tokens ADD COLUMN mac VARCHAR;
    ALTER TABLE approvals ADD COLUMN mac VARCHAR;
    ALTER TABLE plans ADD COLUMN mac VARCHAR;
    ALTER TABLE requests ADD COLUMN mac VARCHAR;
    ALTER TABLE request_steps ADD COLUMN mac VARCHAR;
    """,
    ),
    (
        9,
        "findings say how sensitive a column is (special categories of GDPR Art. 9) and what "
        "decided them",
        """
    ALTER TABLE findings ADD COLUMN sensitivity VARCHAR;
    ALTER TABLE findings ADD COLUMN category VARCHAR;
    ALTER TABLE findings ADD COLUMN evidence VARCHAR;
    """,
    ),
    (
        10,
        "the deployment's configuration and policy store, set by an admin, and the sealed "
        "schema version",
        """
    CREATE TABLE deployment_configs (
        digest VARCHAR NOT NULL, body VARCHAR NOT NULL, set_by VARCHAR NOT NULL,
        set_at TIMESTAMP NOT NULL, mac VARCHAR);
    CREATE TABLE stored_policies (
        name VARCHAR NOT NULL, digest VARCHAR NOT NULL, body VARCHAR NOT NULL,
        added_by VARCHAR NOT NULL, added_at TIMESTAMP NOT NULL, mac VARCHAR);
    CREATE TABLE catalog_state (
        id INTEGER NOT NULL, schema_version INTEGER NOT NULL, hash_scheme INTEGER NOT NULL,
        mac VARCHAR);
    """,
    ),
    (
        11,
        "keys a project declares outside the database: dbt relationships and unique tests",
        """
    CREATE TABLE declared_keys (
        origin_ref VARCHAR NOT NULL, dataset_id VARCHAR NOT NULL, column_name VARCHAR NOT NULL,
        ref_dataset_id VARCHAR, ref_column VARCHAR, evidence VARCHAR NOT NULL);
    """,
    ),
    (
        12,
        "physical erasure of a request's stores: what was rewritten, read raw, out of reach",
        """
    CREATE TABLE physical_steps (
        request_id VARCHAR NOT NULL, store VARCHAR NOT NULL, format VARCHAR NOT NULL,
        status VARCHAR NOT NULL, attempts INTEGER NOT NULL, error VARCHAR, detail JSON,
        updated_at TIMESTAMP NOT NULL);
    """,
    ),
    (
        13,
        "each request's timeline (every status it passed through, when; details redacted) "
        "its legal clock (jurisdiction, acknowledge by, due, extension with its reason) and "
        "its subject verification (a one-time code's keyed hash, expiry, tries)",
        """
    CREATE TABLE request_events (
        request_id VARCHAR NOT NULL, status VARCHAR NOT NULL, detail VARCHAR,
        happened_at TIMESTAMP NOT NULL, mac VARCHAR);
    CREATE TABLE request_clocks (
        request_id VARCHAR NOT NULL, jurisdiction VARCHAR NOT NULL, kind VARCHAR NOT NULL,
        received_at TIMESTAMP NOT NULL, acknowledge_by TIMESTAMP, due_at TIMESTAMP NOT NULL,
        extended_due TIMESTAMP, extension_reason VARCHAR, extended_by VARCHAR,
        submitted_by VARCHAR NOT NULL, status_token_hash VARCHAR, mac VARCHAR);
    CREATE TABLE request_verifications (
        request_id VARCHAR NOT NULL, method VARCHAR NOT NULL, code_hash VARCHAR NOT NULL,
        sent_at TIMESTAMP NOT NULL, expires_at TIMESTAMP NOT NULL, tries_left INTEGER NOT NULL,
        verified_at TIMESTAMP, mac VARCHAR);
    """,
    ),
]
#: the first version with sealed rows: a catalog older than it holding rows of sealed tables
#: is refused (optout never seals a row it did not write)
SEALED_SINCE = 8
#: the first version with the sealed catalog state (schema version, identifier-key scheme)
DERIVED_SINCE = 10

LATEST = MIGRATIONS[-1][0]


def migrate(con: duckdb.DuckDBPyConnection) -> int:
    """Bring the catalog to the latest schema; returns the version it is at."""
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL, "
        "description VARCHAR, applied_at TIMESTAMP NOT NULL)"
    )
    current = con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchall()[0][0]
    for version, description, ddl in MIGRATIONS:
        if version <= current:
            continue
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(ddl)
            con.execute(
                "INSERT INTO schema_version VALUES (?, ?, (now() AT TIME ZONE 'UTC'))",
                [version, description],
            )
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
        current = version
    return current
