"""Each veto, table-context rule and look-alike check of the classifier, one column (or one
table) at a time: the classes of mistakes that fed wrong erasures on data nobody here wrote."""

from __future__ import annotations

import random

import pyarrow as pa
import pytest

from fixtures.mixed import iso_template
from optout.model.dataset import ForeignKey, Sample
from optout.scanner.classify.column import PROSE_NER_SHARE, Classifier
from optout.scanner.classify.context import link_people, settle
from optout.scanner.classify.mentions import is_name
from optout.scanner.classify.vocab import aba_valid, luhn_valid

rng = random.Random(7)
N = 80
PEOPLE = ["Maria Garcia", "John Smith", "Emily Johnson", "Michael Brown", "Sarah Davis",
          "David Wilson", "Laura Martinez", "James Anderson", "Anna Taylor", "Robert Thomas"]


def table(classifier: Classifier, dataset: str, columns: dict[str, list | pa.Array]):
    """Findings of one table, settled with the table's context, by column name."""
    sample = Sample(pa.table(columns), N)
    return {f.name: f for f in settle(dataset, classifier.classify(dataset, sample))}


def one(classifier: Classifier, dataset: str, column: str, values: list | pa.Array):
    return table(classifier, dataset, {column: values})[column]


def luhn(prefix: str, length: int = 16) -> str:
    body = prefix + "".join(str(rng.randint(0, 9)) for _ in range(length - len(prefix) - 1))
    for d in "0123456789":
        if luhn_valid(body + d):
            return body + d
    raise AssertionError


def aba() -> str:
    while True:
        n = f"{rng.choice([1, 2, 3, 11, 21, 26, 31, 61, 71]):02d}" + "".join(
            str(rng.randint(0, 9)) for _ in range(6))
        for d in "0123456789":
            if aba_valid(n + d):
                return n + d


# -- type vetoes: the name is not trusted over the type ---------------------------------------


@pytest.mark.parametrize(("column", "values"), [
    ("credit_card_amount", pa.array([rng.uniform(1, 900) for _ in range(N)], pa.float64())),
    ("phone_cost", pa.array([rng.uniform(1, 90) for _ in range(N)], pa.float32())),
    ("ssn_verified", pa.array([rng.random() < 0.5 for _ in range(N)])),
    ("customer_name_flag", pa.array([rng.randint(0, 1) for _ in range(N)], pa.int8())),
    ("customer_email_opt_in", pa.array([rng.random() < 0.5 for _ in range(N)])),
])
def test_a_float_or_boolean_column_holds_no_card_phone_ssn_or_person(
        classifier: Classifier, column: str, values: pa.Array) -> None:
    f = one(classifier, "customers", column, values)
    assert not f.pii, f.entities
    assert f.signals.get("veto")


@pytest.mark.parametrize("column", ["billing_address_id", "address_id", "city_key",
                                    "shipping_address_no", "store_id", "country_code_id"])
def test_an_integer_key_is_a_key_of_what_it_names_not_that_thing(
        classifier: Classifier, column: str) -> None:
    f = one(classifier, "customers", column, list(range(1, N + 1)))
    assert not f.pii and "key of" in f.signals["veto"]


def test_a_key_of_a_person_stays_an_identifier_and_kinds_of_people_are_not(
        classifier: Classifier) -> None:
    found = table(classifier, "orders", {
        "support_rep_id": list(range(N)), "customer_type_id": [i % 4 for i in range(N)],
        "customer_order_id": list(range(N)), "manager": list(range(N))})
    assert found["support_rep_id"].entity == "PERSON_ID" and found["support_rep_id"].identifier
    assert found["manager"].entity == "PERSON_ID"  # a person noun holding keys
    assert not found["customer_type_id"].pii and not found["customer_order_id"].pii


def test_a_tier_enum_or_a_flag_is_no_person(classifier: Classifier) -> None:
    found = table(classifier, "customers", {
        "customer_tier": [rng.choice(["gold", "silver", "bronze"]) for _ in range(N)],
        "name_flag": [str(rng.randint(0, 1)) for _ in range(N)],
        "first_name": [rng.choice(PEOPLE).split()[0] for _ in range(N)]})
    assert not found["customer_tier"].pii and not found["name_flag"].pii
    assert found["first_name"].entity == "PERSON"


# -- table context: generic names read with the table's name ----------------------------------


PRODUCTS = ["Classic Kettle", "Eco Chair", "Ultra Desk Lamp", "Aero Mouse", "Nimbus Pillow",
            "Terra Mug", "Polar Bottle", "Zen Mat"]


@pytest.mark.parametrize(("dataset", "values", "entity"), [
    ("product", PRODUCTS, None),
    ("report", ["Quarterly Revenue", "Churn Overview", "Daily Orders", "Sales by Region"], None),
    ("customer", PEOPLE, "PERSON"),
    ("employee", PEOPLE, "PERSON"),
    ("payment_card", PEOPLE, "PERSON"),  # the cardholder
])
def test_a_name_column_is_read_with_its_table(classifier: Classifier, dataset: str,
                                              values: list[str], entity: str | None) -> None:
    f = one(classifier, dataset, "name", [rng.choice(values) for _ in range(N)])
    assert (f.pii, f.entity) == (entity is not None, entity), f.evidence


def test_a_place_word_is_an_address_in_an_address_table_not_an_orders_state(
        classifier: Classifier) -> None:
    address = table(classifier, "address", {
        "house": [str(rng.randint(1, 200)) + rng.choice(["", "a", "b"]) for _ in range(N)],
        "state": [rng.choice(["CA", "NY", "TX", "WA", "OR"]) for _ in range(N)],
        "district": [rng.choice(["Alberta", "QLD", "Texas", "Nagasaki", "Gujarat"])
                     for _ in range(N)]})
    assert {c: f.entity for c, f in address.items()} == dict.fromkeys(address, "LOCATION")
    orders = table(classifier, "orders", {
        "order_id": list(range(N)), "customer_id": list(range(N)),
        "state": [rng.choice(["shipped", "pending", "cancelled"]) for _ in range(N)],
        "region": [rng.choice(["EMEA", "APAC", "AMER"]) for _ in range(N)]})
    assert not orders["state"].pii and not orders["region"].pii
    assert orders["customer_id"].entity == "PERSON_ID"


def test_a_cards_code_is_a_security_code(classifier: Classifier) -> None:
    found = table(classifier, "payment_card", {
        "number": [luhn("4") for _ in range(N)],
        "code": [f"{rng.randint(0, 999):03d}" for _ in range(N)]})
    assert found["code"].entity == "CARD_SECURITY_CODE"
    assert found["code"].sensitivity == found["number"].sensitivity == "financial"
    assert found["number"].entity == "CREDIT_CARD"


def test_firms_in_a_name_column_are_organizations(classifier: Classifier) -> None:
    firms = ["Vins et alcools Chevalier", "Richter Supermarkt", "Wellington Importadora",
             "Ernst Handel", "Rattlesnake Canyon Grocery", "Split Rail Beer & Ale",
             "Old World Delicatessen", "Hanari Carnes", "Lonesome Pine Restaurant"]
    found = table(classifier, "orders", {
        "customer_id": list(range(N)), "ship_name": [rng.choice(firms) for _ in range(N)],
        "ship_address": [f"{rng.randint(1, 99)} Main Street" for _ in range(N)]})
    assert found["ship_name"].entity == "ORGANIZATION"


def test_a_reference_to_a_list_of_firms_is_not_a_person(classifier: Classifier) -> None:
    tables = {
        "suppliers": list(table(classifier, "suppliers", {
            "supplier_id": list(range(N)),
            "company_name": [rng.choice(["Exotic Liquids", "Tokyo Traders", "Pavlova, Ltd."])
                             for _ in range(N)],
            "contact_name": [rng.choice(PEOPLE) for _ in range(N)]}).values()),
        "staff": list(table(classifier, "staff", {"staff_id": list(range(N)),
                                                  "email": [f"s{i}@x.org" for i in range(N)]
                                                  }).values()),
        "products": list(table(classifier, "products", {
            "supplier_id": list(range(N)), "curator": list(range(N))}).values()),
    }
    link_people(tables, {"products": [ForeignKey(("supplier_id",), "suppliers", ("supplier_id",)),
                                      ForeignKey(("curator",), "staff", ("staff_id",))]})
    products = {f.name: f for f in tables["products"]}
    assert not products["supplier_id"].pii
    assert products["curator"].entity == "PERSON_ID"
    assert products["curator"].evidence.startswith("reference")


# -- name-only findings ------------------------------------------------------------------------


@pytest.mark.parametrize(("column", "values"), [
    ("email", pa.array([None] * N, pa.string())),
    ("passport_number", pa.array([None] * N, pa.string())),
])
def test_a_finding_from_the_name_alone_is_marked_scored_low_and_never_an_identifier(
        classifier: Classifier, column: str, values) -> None:
    f = one(classifier, "customers", column, values)
    assert f.pii and f.evidence == "name-only"
    assert f.score < 0.5 and not f.identifier


def test_a_name_its_values_contradict_is_not_pii(classifier: Classifier) -> None:
    """Issue 31: name-only evidence never makes a column PII when the values contradict it
    (an `ssn` of statuses, a `card_number` of order codes). Control: digits under that name."""
    f = one(classifier, "customers", "ssn",
            [rng.choice(["pending", "on file", "requested"]) for _ in range(N)])
    assert not f.pii, (f.entity, f.evidence)
    f = one(classifier, "orders", "credit_card_approval_code",
            [f"{rng.randint(10**5, 10**6)}Vi{rng.randint(1000, 99999)}" for _ in range(N)])
    assert not f.pii, (f.entity, f.evidence)
    f = one(classifier, "customers", "ssn", [f"{rng.randint(100, 899)}{rng.randint(10, 99)}"
                                             f"{rng.randint(1000, 9999)}" for _ in range(N)])
    assert f.pii and f.entity == "US_SSN"


# -- look-alikes -------------------------------------------------------------------------------


def test_card_numbers_are_cards_not_phones(classifier: Classifier) -> None:
    f = one(classifier, "t", "c1", [luhn(rng.choice(["4", "51", "37"]), 16) for _ in range(N)])
    assert f.entity == "CREDIT_CARD", f.entities


def test_routing_numbers_are_not_phones(classifier: Classifier) -> None:
    f = one(classifier, "t", "c2", [aba() for _ in range(N)])
    assert not f.pii or f.entity not in ("PHONE_NUMBER", "US_BANK_NUMBER"), f.entities
    phones = one(classifier, "t", "c3", [f"415{rng.randint(2000000, 9999999)}" for _ in range(N)])
    assert phones.entity == "PHONE_NUMBER"  # ten digits: the check does not eat real phones


@pytest.mark.parametrize(("column", "values"), [
    ("c4", [f"{rng.randint(1, 3)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}.{rng.randint(0, 30)}"
            for _ in range(N)]),
    ("build", [f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
               for _ in range(N)]),
])
def test_dotted_versions_are_not_ip_addresses(classifier: Classifier, column: str,
                                              values: list[str]) -> None:
    f = one(classifier, "releases", column, values)
    assert f.entity != "IP_ADDRESS", f.entities


def test_client_ips_are_still_ip_addresses(classifier: Classifier) -> None:
    f = one(classifier, "events", "c5", [f"{rng.randint(11, 223)}.{rng.randint(0, 255)}."
                                         f"{rng.randint(0, 255)}.{rng.randint(1, 254)}"
                                         for _ in range(N)])
    assert f.entity == "IP_ADDRESS"


REVIEWS = ["Great product, arrived quickly.", "Works as described. Would buy again.",
           "The Blue Kettle is lovely but the lid is loose.", "Not worth the price. Returned it.",
           "Excellent Quality and Fast Shipping, thank you!", "Customer Service was helpful.",
           "Battery lasts all day on a single charge.", "Monday Delivery as promised, good."]
#: a third of the rows name a product or a brand in capitals: the model reads some as people
CAPITALIZED = ["Bought the Zen Mat for my yoga class and it is perfect for it.",
               "The Polar Bottle keeps water cold all day, even in the hot car.",
               "Gave the Terra Mug to Aunt Clara as a gift and she loved it.",
               "Customer Service from Nimbus Home replied within an hour, great help."]
PLAIN = ["Arrived quickly and works as described, would buy again from this shop.",
         "Not worth the price in my opinion, the lid is loose and it leaks.",
         "Battery lasts all day on a single charge, very happy with it so far.",
         "Good value for money, my kids use it every day after school now."]


def test_reviews_with_capitalized_words_are_not_people(classifier: Classifier) -> None:
    r = random.Random(3)
    reviews = [r.choice(CAPITALIZED) if r.random() < 0.35 else r.choice(PLAIN)
               for _ in range(200)]
    f = one(classifier, "product_reviews", "review", reviews)
    assert not f.pii, f.entities


def test_prose_naming_people_is_free_text_pii(classifier: Classifier) -> None:
    notes = [f"Call back tomorrow. {rng.choice(PEOPLE)} asked about the refund for order "
             f"{rng.randint(100, 999)} and was happy with the answer." for _ in range(N // 4)]
    notes += [rng.choice(REVIEWS) + " Nothing else to add here today." for _ in range(N)]
    f = one(classifier, "tickets", "note", notes)
    assert f.pii and f.free_text and f.entity == "PERSON", f.entities
    assert f.entities["PERSON"] >= PROSE_NER_SHARE


@pytest.mark.parametrize(("span", "name"), [
    ("Steven Buchanan", True), ("Mary-Jane O'Neil", True), ("Nancy", False),
    ("Great Product", False), ("Monday Morning", False), ("BA MBA", False),
    ("The Art", False), ("University College", False),
])
def test_only_validated_person_spans_count_in_prose(span: str, name: bool) -> None:
    assert is_name(span) is name


# -- honest names and special categories ------------------------------------------------------


def test_profile_urls_are_personal(classifier: Classifier) -> None:
    found = table(classifier, "members", {
        "email": [f"m{i}@example.org" for i in range(N)],
        "linkedin": [f"https://www.linkedin.com/in/member-{i}" for i in range(N)]})
    assert found["linkedin"].pii and found["linkedin"].entity == "URL"


@pytest.mark.parametrize(("column", "values", "category"), [
    ("c8", ["Catholic", "Muslim", "Jewish", "Hindu", "Buddhist", "Protestant"], "religion"),
    ("konfession", ["römisch-katholisch", "evangelisch", "konfessionslos"], "religion"),
    ("c9", ["German", "French", "Brazilian", "Japanese", "Nigerian"], "nationality"),
    ("ethnicity", ["Asian", "Black", "White", "Hispanic", "Mixed"], "ethnic_origin"),
    ("c10", ["A+", "O-", "B+", "AB-", "O+"], "health"),
    ("c11", ["E11.9", "J45.909", "I10", "F32.A", "M54.5"], "health"),
    ("diagnosis", ["mild asthma", "type 2 diabetes", "hypertension"], "health"),
    ("partei", ["SPD", "CDU", "Grüne", "FDP"], "political_opinion"),
    ("sexual_orientation", ["heterosexual", "gay", "bisexual"], "sexual_orientation"),
    ("gewerkschaft", ["ver.di", "IG Metall", "none"], "trade_union"),
    ("fingerprint_template", [iso_template(rng) for _ in range(8)], "biometric"),
    ("genotype", ["AA", "AG", "GG", "CT", "TT"], "genetic"),
    ("face_embedding", [str([round(rng.uniform(-1, 1), 4) for _ in range(128)])
                        for _ in range(8)], "biometric"),
])
def test_special_categories_are_flagged_with_their_category(
        classifier: Classifier, column: str, values: list[str], category: str) -> None:
    f = one(classifier, "members", column, [rng.choice(values) for _ in range(N)])
    assert f.pii and f.sensitivity == "special_category" and f.category == category, (
        f.entity, f.entities, f.evidence)


@pytest.mark.parametrize(("column", "values"), [
    # a device's or a file's SHA-256 "fingerprint" is a hash: no value says biometric
    ("fingerprint", pa.array([f"{rng.getrandbits(256):064x}" for _ in range(N)])),
    ("fingerprint_template", pa.array([f"{rng.getrandbits(160):040x}" for _ in range(N)])),
    ("kundentyp", pa.array([rng.choice(["A", "B", "C"]) for _ in range(N)])),
    ("units_on_order", pa.array([rng.choice([0, 10, 70]) for _ in range(N)])),
    ("c12", pa.array([rng.choice(["none", "None"]) for _ in range(N)])),
    ("union_id", pa.array(list(range(N)))),
])
def test_codes_and_flags_are_not_special_categories(classifier: Classifier, column: str,
                                                   values: pa.Array) -> None:
    f = one(classifier, "customers", column, values)
    assert not f.category, (f.entity, f.entities)
