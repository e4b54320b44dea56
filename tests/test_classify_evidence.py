"""Evidence that carries across domains (issue 31): persons' names read by a lexicon whatever
their case or digit suffix, words glued in column names split apart, a code column as
sensitive as the special-category column it stands for, biometric data only by its values.
Each test has its control: the input that must not pass."""

from __future__ import annotations

import random

import polars as pl
import pyarrow as pa
import pytest

from optout.model.dataset import Sample
from optout.scanner.classify.column import Classifier
from optout.scanner.classify.context import pair_codes, settle
from optout.scanner.classify.glued import unglue
from optout.scanner.classify.lexicon import MIN_DISTINCT, is_name, name_share

rng = random.Random(31)
N = 120


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    return Classifier()


def _classify(classifier: Classifier, dataset: str, columns: dict[str, list]):
    table = pa.table(columns)
    findings = settle(dataset, classifier.classify(dataset, Sample(table=table,
                                                                   row_count=table.num_rows)))
    return table, {f.name: f for f in findings}


@pytest.mark.parametrize(("text", "name"), [
    ("Jana548", True),             # Synthea's digit suffixes
    ("OKAFOR", True),              # capitals, as a card is embossed
    ("JANA OKAFOR", True),
    ("Okafor, Jana", True),
    ("Dr. Jana Okafor3", True),
    ("Lindqvist", True),
    ("GENERAL PRACTICE", False),   # a speciality
    ("Metformin 500 MG", False),
    ("DEV-004213", False),
    ("Acute bronchitis", False),
])
def test_the_lexicon_reads_names_as_data_holds_them(text: str, name: bool) -> None:
    assert is_name(text) is name


def test_a_column_needs_many_distinct_names() -> None:
    colours = pl.DataFrame({"value": ["Rose", "Olive", "Amber", "Violet", "Ruby"],
                            "n": [10] * 5})
    assert len(colours) < MIN_DISTINCT and name_share(colours) == 0.0  # the control
    names = pl.DataFrame({"value": [f"Jana{i}" for i in range(MIN_DISTINCT)],
                          "n": [1] * MIN_DISTINCT})
    assert name_share(names) == 1.0


def test_names_in_capitals_or_with_digits_are_persons(classifier: Classifier) -> None:
    given = ["JANA", "KOFI", "GORAN", "ELIF", "MATEO", "LENA", "OMAR", "ROSA", "SVEN", "TARA"]
    family = ["Okafor", "Moreau", "Novak", "Haddad", "Schmidt", "Costa", "Nguyen", "Silva"]
    _, found = _classify(classifier, "patients", {
        "FIRST": [f"{rng.choice(given).title()}{rng.randint(100, 999)}" for _ in range(N)],
        "LAST": [f"{rng.choice(family)}{rng.randint(100, 999)}" for _ in range(N)],
        "holder": [f"{rng.choice(given)} {rng.choice(family).upper()}" for _ in range(N)],
        "SKU": [f"SKU{rng.randint(100, 999)}" for _ in range(N)],  # the control: codes
    })
    for column in ("FIRST", "LAST", "holder"):
        assert found[column].pii and found[column].entity == "PERSON", found[column].signals
    assert not found["SKU"].pii


@pytest.mark.parametrize(("token", "words"), [
    ("businessentityid", ["business", "entity", "id"]),
    ("phonenumbertypeid", ["phone", "number", "type", "id"]),
    ("PROVIDERID".lower(), ["provider", "id"]),
    ("salespersonid", ["sales", "person", "id"]),
    ("jobcandidate", ["job", "candidate"]),
    # controls: words of other languages, codes and words themselves stay whole
    ("konfession", ["konfession"]),
    ("strasse", ["strasse"]),
    ("geburtsdatum", ["geburtsdatum"]),
    ("kdnr", ["kdnr"]),
    ("rowguid", ["rowguid"]),
    ("android", ["android"]),
])
def test_glued_words_are_split_apart(token: str, words: list[str]) -> None:
    assert unglue(token) == words


def test_a_glued_key_of_a_thing_is_no_phone_or_address(classifier: Classifier) -> None:
    _, found = _classify(classifier, "personphone", {
        "phonenumbertypeid": [rng.randint(1, 3) for _ in range(N)],
        "billtoaddressid": [rng.randint(1, 20000) for _ in range(N)],
        "phonenumber": [f"{rng.randint(200, 999)}-555-{rng.randint(1000, 9999)}"
                        for _ in range(N)],  # the control: the phone itself
    })
    assert not found["phonenumbertypeid"].pii and not found["billtoaddressid"].pii
    assert found["phonenumber"].pii and found["phonenumber"].entity == "PHONE_NUMBER"


DRUGS = [("860975", "Metformin 500 MG"), ("314076", "Lisinopril 10 MG"),
         ("308182", "Amoxicillin 250 MG"), ("198405", "Ibuprofen 400 MG")]
VISITS = [("185349003", "Encounter for check up"), ("162673000", "General examination"),
          ("50849002", "Emergency room admission")]


def test_a_code_is_as_sensitive_as_the_drug_it_stands_for(classifier: Classifier) -> None:
    drugs = [rng.choice(DRUGS) for _ in range(N)]
    table, found = _classify(classifier, "medications", {
        "CODE": [c for c, _ in drugs], "DESCRIPTION": [d for _, d in drugs],
        "DISPENSES": [str(rng.randint(1, 9)) for _ in range(N)]})
    assert found["DESCRIPTION"].category == "health"
    assert not found["CODE"].pii  # before the pairing: a number says nothing
    pair_codes(list(found.values()), table)
    assert found["CODE"].pii and found["CODE"].category == "health", found["CODE"].evidence
    assert not found["DISPENSES"].pii  # not one per drug


def test_codes_beside_visit_types_or_unique_rows_stay_codes(classifier: Classifier) -> None:
    visits = [rng.choice(VISITS) for _ in range(N)]
    table, found = _classify(classifier, "encounters", {
        "CODE": [c for c, _ in visits], "DESCRIPTION": [d for _, d in visits]})
    pair_codes(list(found.values()), table)
    assert not found["CODE"].pii and not found["DESCRIPTION"].pii  # no special column
    # a row id pairs one-to-one with unique descriptions: codes must repeat to count
    rows = [f"{rng.choice(DRUGS)[1]} x{i}" for i in range(40)]
    table, found = _classify(classifier, "prescriptions", {
        "id": [str(1000 + i) for i in range(40)], "drug": rows})
    assert found["drug"].category == "health"
    pair_codes(list(found.values()), table)
    assert not found["id"].category


def test_a_template_is_biometric_a_hash_is_not(classifier: Classifier) -> None:
    from fixtures.mixed import iso_template

    _, found = _classify(classifier, "members", {
        "member_id": list(range(N)),
        "fingerprint_template": [iso_template(rng) for _ in range(N)]})
    assert found["fingerprint_template"].category == "biometric"
    _, found = _classify(classifier, "devices", {
        "device_id": list(range(N)),
        "fingerprint": [f"{rng.getrandbits(256):064x}" for _ in range(N)]})
    assert not found["fingerprint"].pii, found["fingerprint"].evidence
