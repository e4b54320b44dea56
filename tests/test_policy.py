"""Policies: the shipped ones load and say what they promise; bad ones fail with file, key, line."""

from __future__ import annotations

from pathlib import Path

import pytest

from optout.engine.policy import PolicyError, load_policy

POLICIES = Path(__file__).resolve().parent.parent / "policies"


def test_gdpr_erasure() -> None:
    policy = load_policy(POLICIES / "gdpr-erasure.yaml")
    assert policy.default_action == "delete_rows"
    retain = policy.rule_for("payments", set(), {"CREDIT_CARD"}, ["card_number"], None, False)
    assert retain.action == "retain" and retain.legal_basis and retain.anonymize.action == "hash"
    aggregate = policy.rule_for("daily_revenue", set(), set(), ["day"], "aggregated", False)
    assert aggregate.action == "recompute"
    assert policy.rule_for("tickets", set(), set(), ["body"], None, True).action == "redact"
    assert policy.rule_for("customers", set(), {"EMAIL_ADDRESS"}, ["email"], None, False) is None


def test_ccpa_opt_out() -> None:
    policy = load_policy(POLICIES / "ccpa-opt-out.yaml")
    assert policy.rule_for("leads", {"marketing"}, set(), [], None, False).action == "delete_rows"
    analytics = policy.rule_for("events", {"analytics"}, set(), [], None, False)
    assert analytics.action == "hash" and "IP_ADDRESS" in analytics.entities
    account = policy.rule_for("customers", set(), {"EMAIL_ADDRESS"}, [], None, False)
    assert account.action == "retain" and "1798.120" in account.legal_basis


def test_anonymize_only() -> None:
    policy = load_policy(POLICIES / "anonymize-only.yaml")
    rule = policy.rule_for("customers", set(), {"PERSON"}, ["first_name"], None, False)
    assert rule.action == "hash" and rule.per_entity["PERSON"] == "null"
    assert all(r.action != "delete_rows" for r in policy.rules)
    assert policy.default_action != "delete_rows"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "name: p\nidentifiers: [email]\nrulez: []\n",
            "line 3: rulez: Extra inputs are not permitted",
        ),
        ("name: p\nidentifiers: email\n", "line 2: identifiers: Input should be a valid list"),
        (
            "name: p\nidentifiers: [email]\nrules:\n  - name: keep\n    action: retain\n",
            "line 4: rules.0: a retain rule needs a legal_basis",
        ),
        (
            "name: p\nidentifiers: [email]\nrules:\n  - name: x\n    action: shred\n",
            "line 5: rules.0.action: Input should be",
        ),
        (
            "name: p\nidentifiers: [email]\nrules:\n  - name: x\n    action: null\n    match: {tag: [a]}\n",
            "line 6: rules.0.match.tag: Extra inputs are not permitted",
        ),
        ("name: p\nidentifiers: []\n", "line 2: identifiers: List should have at least 1 item"),
        ("name: p\nidentifiers: [email\n", "not valid YAML"),
        ("- just\n- a list\n", "line 1: expected a mapping"),
    ],
)
def test_bad_policy_names_file_key_and_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(PolicyError) as err:
        load_policy(path)
    assert str(err.value).startswith(f"{path}:")
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_policy(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read policy"):
        load_policy(tmp_path / "nope.yaml")
