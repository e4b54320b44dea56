"""Column classification: the three signals, the known traps, masking, and the quality floors."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from optout.model.dataset import Sample
from optout.scanner.classify.column import Classifier
from optout.scanner.classify.masking import mask
from optout.scanner.classify.names import NameHints, tokens
from optout.scanner.quality import score

EMAILS = [f"person{i}@example{i % 7}.com" for i in range(60)]
PHONES = [f"+1 415-{200 + i:03d}-{1000 + 7 * i:04d}" for i in range(60)]
NAMES = [
    "Maria Garcia",
    "John Smith",
    "Emily Johnson",
    "Michael Brown",
    "Sarah Davis",
    "David Wilson",
    "Laura Martinez",
    "James Anderson",
    "Anna Taylor",
    "Robert Thomas",
] * 6


def classify_one(classifier: Classifier, name: str, values: list, dataset: str = "data"):
    sample = Sample(pa.table({name: values}), len(values))
    return classifier.classify(dataset, sample)[0]


@pytest.mark.parametrize(
    ("column", "values", "pii", "entity"),
    [
        # the three signals, alone and together
        ("email", EMAILS, True, "EMAIL_ADDRESS"),
        ("c1", EMAILS, True, "EMAIL_ADDRESS"),
        ("attr_7", PHONES, True, "PHONE_NUMBER"),
        ("c2", NAMES, True, "PERSON"),
        ("correo", EMAILS, True, "EMAIL_ADDRESS"),
        ("Telefonnummer", PHONES, True, "PHONE_NUMBER"),
        ("vorname", ["Jürgen", "Anna", "Lukas", "Sophie", "Leon", "Marie"] * 10, True, "PERSON"),
        (
            "iban",
            ["DE89370400440532013000", "GB82WEST12345698765432", "FR1420041010050500013M02606"]
            * 20,
            True,
            "IBAN_CODE",
        ),
        (
            "x",
            ["4111111111111111", "5500005555555559", "340000000000009"] * 20,
            True,
            "CREDIT_CARD",
        ),
        (
            "geburtsdatum",
            ["1980-05-01", "1975-12-31", "2001-01-09", "1962-07-14"] * 15,
            True,
            "DATE_TIME",
        ),
        ("customer_id", list(range(60)), True, "PERSON_ID"),
        # known traps
        ("contact", ["support@example.com"] + ["n/a"] * 999, False, None),  # one email in 1,000
        ("homepage", [f"https://site{i}.example.com/about" for i in range(60)], False, None),
        ("app_version", ["1.2.3.4", "2.10.0.1", "3.1.4.1", "1.0.0.12"] * 15, False, None),
        ("v", ["1.2.3.4", "2.10.0.1", "3.1.4.1", "1.0.0.12"] * 15, False, None),
        (
            "event_ts",
            ["2025-05-01T10:00:00", "2025-06-30T23:59:59", "2024-01-09T08:15:00"] * 20,
            False,
            None,
        ),
        ("created", ["2025-05-01", "2025-06-30", "2024-01-09"] * 20, False, None),
        (
            "event_id",
            ["550e8400-e29b-41d4-a716-446655440000", "6fa459ea-ee8a-3ca4-894e-db77e160355e"] * 30,
            False,
            None,
        ),
        ("c11", [f"{i:064x}" for i in range(10**20, 10**20 + 60)], False, None),
        ("amount", [129.99, 4155550134.0, 3.5, 42.0] * 15, False, None),
        ("amount_text", ["129.99", "4155550134", "3.50", "42.00"] * 15, False, None),
        ("sku", ["A12345678", "B87654321", "K11223344"] * 20, False, None),
        ("c7", ["SKU-AB123456", "SKU-CD654321", "SKU-EF111111"] * 20, False, None),
        ("product_name", ["Classic Kettle", "Eco Chair", "Ultra Desk Lamp"] * 20, False, None),
        ("country_code", ["US", "DE", "FR"] * 20, False, None),
        ("email_sha256", [f"{i:064x}" for i in range(10**30, 10**30 + 60)], False, None),
    ],
)
def test_column_classification(
    classifier: Classifier, column: str, values: list, pii: bool, entity: str | None
) -> None:
    finding = classify_one(classifier, column, values)
    assert (finding.pii, finding.entity) == (pii, entity), finding.entities


def test_free_text_is_flagged_with_its_entities(classifier: Classifier) -> None:
    bodies = [
        "Hi, this is Maria Garcia, my email is maria.garcia@example.com please help me."
    ] * 3 + ["The app crashes every time I open the settings page on my tablet."] * 17
    finding = classify_one(classifier, "body", bodies)
    assert finding.pii and finding.free_text
    assert finding.entities["EMAIL_ADDRESS"] == pytest.approx(0.15)
    assert "PERSON" in finding.entities
    assert not finding.identifier


def test_prose_without_people_is_not_pii(classifier: Classifier) -> None:
    finding = classify_one(
        classifier,
        "description",
        [
            "A compact kettle made from recycled materials, with a two year warranty.",
            "An ergonomic chair that supports your back during long working days at home.",
            "A water bottle that keeps drinks cold for twenty four hours or more.",
        ]
        * 20,
    )
    assert not finding.pii


def test_score_reflects_share_of_values(classifier: Classifier) -> None:
    half = classify_one(classifier, "c", EMAILS[:30] + ["nothing here"] * 30)
    full = classify_one(classifier, "c", EMAILS)
    assert half.entities["EMAIL_ADDRESS"] == pytest.approx(0.5)
    assert full.score == pytest.approx(1.0)
    assert half.score < full.score


def test_identifier_flag(classifier: Classifier) -> None:
    assert classify_one(classifier, "email", EMAILS).identifier
    assert classify_one(classifier, "user_id", list(range(60))).identifier
    assert classify_one(classifier, "id", list(range(60)), dataset="customers").identifier
    assert not classify_one(classifier, "id", list(range(60)), dataset="orders").pii
    assert not classify_one(classifier, "full_name", NAMES).identifier


def test_examples_are_masked(classifier: Classifier) -> None:
    finding = classify_one(classifier, "email", EMAILS)
    assert finding.examples and all("***" in e for e in finding.examples)
    assert not set(finding.examples) & set(EMAILS)


def test_entities_can_be_restricted() -> None:
    from optout.scanner.classify.column import ClassifierSettings

    only_email = Classifier(ClassifierSettings(entities=frozenset({"EMAIL_ADDRESS"})))
    assert not classify_one(only_email, "phone", PHONES).pii
    assert classify_one(only_email, "c1", EMAILS).entity == "EMAIL_ADDRESS"


def test_user_column_hints() -> None:
    from optout.scanner.classify.column import ClassifierSettings

    hinted = Classifier(ClassifierSettings(column_hints=(("PERSON_ID", ("kdnr",)),)))
    assert classify_one(hinted, "kdnr", list(range(60))).entity == "PERSON_ID"


@pytest.mark.parametrize(
    ("value", "entity", "masked"),
    [
        ("john.doe@example.com", "EMAIL_ADDRESS", "j***@e***.com"),
        ("+1 415-555-0134", "PHONE_NUMBER", "+* ***-***-**34"),
        ("Maria García", "PERSON", "M*** G***"),
        ("DE89370400440532013000", "IBAN_CODE", "DE******************00"),
    ],
)
def test_mask(value: str, entity: str, masked: str) -> None:
    assert mask(value, entity) == masked


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("customerEMail", ["customer", "email"]),
        ("E-Mail", ["e", "mail"]),
        ("Straße", ["strasse"]),
        ("Teléfono", ["telefono"]),
        ("customer.email", ["customer", "email"]),
    ],
)
def test_tokens(name: str, expected: list[str]) -> None:
    assert tokens(name) == expected


def test_name_hints_in_several_languages() -> None:
    hints = NameHints()
    assert hints.hint("courriel").entity == "EMAIL_ADDRESS"
    assert hints.hint("direccion").entity == "LOCATION"
    assert hints.hint("nachname").entity == "PERSON"
    assert hints.hint("fecha_de_nacimiento").entity == "DATE_TIME"
    assert hints.hint("product_name").entity is None


def test_quality_floors_on_the_fixture_truth(company_scan, company_dir: Path) -> None:
    report, _ = company_scan
    q = score(company_dir / "truth.json", {r.ref.name: r.findings for r in report.results})
    assert not q.missing, q.missing
    assert q.f1 >= 0.98, q.errors()
    assert q.entity_accuracy >= 0.98, q.errors()
    assert not [f for r in report.results for f in r.findings
                if f.evidence == "name-only" and f.identifier]
    opaque = {col: got for ds, col, _, _, _, got in q.rows if ds == "export_0417"}
    assert opaque["c1"] == "EMAIL_ADDRESS" and opaque["c2"] == "PERSON"
    assert opaque["attr_7"] == "IBAN_CODE" and opaque["attr_8"] == "IP_ADDRESS"


def test_without_a_spacy_model_patterns_still_work(caplog: pytest.LogCaptureFixture) -> None:
    from optout.scanner.classify.column import ClassifierSettings

    with caplog.at_level("WARNING", logger="optout.scanner"):
        patterns_only = Classifier(ClassifierSettings(model="no_such_model_installed"))
        Classifier(ClassifierSettings(model="no_such_model_installed"))
    warnings = [r for r in caplog.records if "is not installed" in r.getMessage()]
    assert len(warnings) == 1
    assert patterns_only.setup.model is None and not patterns_only.setup.ner_recognizers
    assert classify_one(patterns_only, "c1", EMAILS).entity == "EMAIL_ADDRESS"
    assert classify_one(patterns_only, "full_name", NAMES).entity == "PERSON"  # by name


def test_person_keys_are_recognized_by_what_their_values_reference(tmp_path: Path,
                                                                   classifier) -> None:
    """No key is declared: `requester_id` and `PATIENTID` reference the people tables by their
    values, a UUID key included; the controls are a person-named column whose values are not
    those keys, and a column holding those values whose name says no person."""
    import uuid

    from optout.scanner.catalog import Catalog
    from optout.scanner.scan import scan

    ids = [str(uuid.UUID(int=i + 1, version=4)) for i in range(30)]
    (tmp_path / "patients.csv").write_text("Id,FIRST,LAST\n" + "".join(
        f"{u},Ana{i},Silva{i}\n" for i, u in enumerate(ids)))
    (tmp_path / "users.csv").write_text("id,name,email\n" + "".join(
        f"{1000 + i},User {i},u{i}@example.org\n" for i in range(30)))
    (tmp_path / "claims.csv").write_text("claim,PATIENTID,total\n" + "".join(
        f"c{i},{ids[i % 20]},{i * 3.5}\n" for i in range(40)))
    (tmp_path / "tickets.csv").write_text(
        "ticket,requester_id,reviewer_id,batch\n" + "".join(
            f"t{i},{1000 + i % 25},{5000 + i},{1000 + i % 7}\n" for i in range(40)))
    catalog = Catalog(str(tmp_path / "catalog.duckdb"))
    report = scan([str(tmp_path)], catalog, classifier=classifier)
    assert not report.failed
    got = {(d.name, c.name): c for d in catalog.datasets() for c in d.columns}
    assert got[("patients", "Id")].entity == "PERSON_ID"
    assert got[("claims", "PATIENTID")].entity == "PERSON_ID"
    assert "reference by its values" in got[("claims", "PATIENTID")].evidence
    assert got[("tickets", "requester_id")].entity == "PERSON_ID"
    assert not got[("tickets", "reviewer_id")].pii  # a role, but no user has those ids
    assert not got[("tickets", "batch")].pii  # users' ids, but the name says no person
