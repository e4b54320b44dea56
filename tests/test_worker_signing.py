"""Request messages are signed by their producer: who may sign, and what a signature binds."""

from __future__ import annotations

from pathlib import Path

import pytest

from optout.scanner.access.principals import add_principal, init_catalog
from optout.scanner.catalog import Catalog
from optout.worker.messages import MessageError
from optout.worker.signing import SIGNATURE_HEADER, producer_of, signed_headers

BODY = b'{"request_id": "r-1", "identifiers": {"email": "ana@example.org"}, "policy": "x"}'


@pytest.fixture()
def catalog(tmp_path: Path) -> Catalog:
    catalog = Catalog(str(tmp_path / "c.duckdb"))
    init_catalog(catalog)
    add_principal(catalog, "crm", ["requester"], "admin")
    add_principal(catalog, "dash", ["viewer"], "admin")
    return catalog


def test_a_requester_signs_and_the_signature_binds_the_body(catalog: Catalog) -> None:
    headers = signed_headers(catalog, "crm", BODY)
    assert producer_of(catalog, headers, BODY).name == "crm"
    with pytest.raises(MessageError, match="signature of 'crm' does not match"):
        producer_of(catalog, headers, BODY.replace(b"ana", b"bob"))


@pytest.mark.parametrize(("headers", "reason"), [
    (None, "unauthenticated: no Optout-Producer"),
    ({"Optout-Producer": "ghost", SIGNATURE_HEADER: "sha256=00"}, "no producer named 'ghost'"),
])
def test_unsigned_and_unknown_producers_are_refused(catalog: Catalog, headers, reason) -> None:
    with pytest.raises(MessageError, match=reason):
        producer_of(catalog, headers, BODY)


def test_a_principal_without_the_requester_role_cannot_produce(catalog: Catalog) -> None:
    with pytest.raises(MessageError, match="'dash' does not hold the role 'requester'"):
        producer_of(catalog, signed_headers(catalog, "dash", BODY), BODY)


def test_keys_differ_per_producer_and_per_catalog(catalog: Catalog, tmp_path: Path) -> None:
    other = Catalog(str(tmp_path / "other.duckdb"))
    init_catalog(other)
    add_principal(other, "crm", ["requester"], "admin")
    mine = signed_headers(catalog, "crm", BODY)
    assert signed_headers(other, "crm", BODY) != mine
    with pytest.raises(MessageError, match="does not match"):
        producer_of(other, mine, BODY)


def test_producer_key_prints_the_key_a_producer_signs_with(tmp_path: Path) -> None:
    import hashlib
    import hmac

    from click.testing import CliRunner

    from optout.cli.main import cli

    catalog = Catalog(str(tmp_path / "c.duckdb"))
    token = init_catalog(catalog)
    add_principal(catalog, "crm", ["requester"], "admin")
    runner = CliRunner(env={"OPTOUT_TOKEN": token})
    result = runner.invoke(cli, ["--catalog", catalog.path, "producer-key", "crm"])
    assert result.exit_code == 0, result.output
    key = bytes.fromhex(result.output.strip())
    signature = "sha256=" + hmac.new(key, BODY, hashlib.sha256).hexdigest()
    headers = {"Optout-Producer": "crm", SIGNATURE_HEADER: signature}
    assert producer_of(catalog, headers, BODY).name == "crm"
    result = runner.invoke(cli, ["--catalog", catalog.path, "producer-key", "admin-less"])
    assert result.exit_code == 1 and "no principal 'admin-less' with the requester role" \
        in result.output
