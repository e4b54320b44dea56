"""Column-name hints, in several languages: what a column's name says it holds.

Hints are data. A name is split into lowercase ASCII tokens (`customerEMail` → `customer email`, `E-Mail` → `e mail`,
`Geburtsdatum` → `geburtsdatum`); a hint matches a run of whole tokens, and hints of five letters
or more also match inside a token (German and Dutch compounds: `kundenemail`, `telefonnummer`).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass, field

from optout.scanner.classify.glued import unglue

#: entity → hints. PERSON_ID is optout's entity for keys that denote a person (customer ids).
HINTS: dict[str, tuple[str, ...]] = {
    "EMAIL_ADDRESS": (
        "email",
        "e mail",
        "mail",
        "mail address",
        "correo",
        "courriel",
        "emailadresse",
        "mailadresse",
        "posta elettronica",
    ),
    "PHONE_NUMBER": (
        "phone",
        "tel",
        "telephone",
        "telefono",
        "telefon",
        "telefonnummer",
        "mobile",
        "mobil",
        "cell",
        "cellphone",
        "handy",
        "movil",
        "portable",
        "fax",
        "msisdn",
        "numero de telephone",
        "rufnummer",
    ),
    "PERSON": (
        "first name",
        "last name",
        "full name",
        "firstname",
        "lastname",
        "fullname",
        "given name",
        "family name",
        "surname",
        "middle name",
        "maiden name",
        "customer name",
        "contact name",
        "person",
        "nom",
        "prenom",
        "nom de famille",
        "nombre",
        "apellido",
        "apellidos",
        "vorname",
        "nachname",
        "familienname",
        "cognome",
        "voornaam",
        "achternaam",
        "name",
        "author",
        "recipient",
        "cardholder",
        "holder name",
        "employee name",
        "actor",
        "actors",
        "manager",
        "manager name",
    ),
    "LOCATION": (
        "address",
        "street",
        "street address",
        "adresse",
        "anschrift",
        "strasse",
        "direccion",
        "calle",
        "domicilio",
        "indirizzo",
        "rue",
        "city",
        "ciudad",
        "ville",
        "stadt",
        "ort",
        "wohnort",
        "citta",
        "zip",
        "zipcode",
        "zip code",
        "postcode",
        "postal code",
        "plz",
        "postleitzahl",
        "codigo postal",
        "code postal",
        "cap",
        "home address",
        "billing address",
        "shipping address",
    ),
    "DATE_TIME": (
        "dob",
        "birth",
        "birthday",
        "birthdate",
        "date of birth",
        "geburtsdatum",
        "geburtstag",
        "fecha de nacimiento",
        "nacimiento",
        "date de naissance",
        "naissance",
        "data di nascita",
        "geboortedatum",
    ),
    "US_SSN": ("ssn", "social security", "social security number"),
    "PHOTO": ("photo", "picture", "avatar", "portrait", "headshot", "selfie", "foto", "bild",
              "photo path", "photo url", "avatar url", "profile picture", "profile photo"),
    "URL": ("profile url", "profile link", "linkedin", "twitter", "facebook", "instagram",
            "social profile", "personal website"),
    "ORGANIZATION": ("company", "company name", "employer", "organization", "organisation",
                     "firm", "firma", "empresa", "societe", "arbeitgeber", "business name",
                     "employer name"),
    "CARD_SECURITY_CODE": ("cvv", "cvc", "cvv2", "cvc2", "card verification",
                           "security code", "card code"),
    "IBAN_CODE": ("iban",),
    "CREDIT_CARD": (
        "credit card",
        "card number",
        "cc number",
        "pan",
        "kreditkarte",
        "kartennummer",
        "tarjeta",
        "numero de carte",
    ),
    "IP_ADDRESS": (
        "ip",
        "ip address",
        "ipaddr",
        "ip addr",
        "client ip",
        "remote addr",
        "remote ip",
        "ipv4",
        "ipv6",
    ),
    "US_PASSPORT": ("passport", "passport number", "reisepass", "pasaporte", "passeport"),
    "US_DRIVER_LICENSE": (
        "driver license",
        "drivers license",
        "driving licence",
        "license number",
        "licence number",
        "fuhrerschein",
    ),
    "US_BANK_NUMBER": ("bank account", "account number", "kontonummer"),
    "MEDICAL_LICENSE": ("dea", "dea number", "dea no", "medical license", "medical licence",
                        "medical license number", "medical licence number"),
    "ES_NIF": ("nif", "dni", "nie"),
    "UK_NINO": ("nino", "national insurance"),
    "UK_NHS": ("nhs", "nhs number"),
    "IT_FISCAL_CODE": ("codice fiscale",),
    "PERSON_ID": (
        "customer id",
        "customerid",
        "user id",
        "userid",
        "client id",
        "clientid",
        "account id",
        "member id",
        "memberid",
        "employee id",
        "employeeid",
        "patient id",
        "person id",
        "subscriber id",
        "kunden id",
        "kundennummer",
        "kundenid",
        "id cliente",
        "cliente id",
        "mitarbeiter id",
        "personalnummer",
        "emp id",
        "cust id",
        "contact id",
        "lead id",
        "buyer id",
        "owner id",
        "kdnr",
        "kundennr",
        "username",
        "user name",
        "login name",
        "screen name",
        "nickname",
        "benutzername",
        "reports to",
        "handle",
        "user handle",
    ),
}

#: place words that name a column of a person's address only in context (an `address` table,
#: a table of people, a sibling street or city column): `state` is also an order's state
WEAK_LOCATION: tuple[str, ...] = (
    "state", "province", "county", "region", "district", "prefecture", "country", "land",
    "pays", "provincia", "bundesland", "departement", "canton", "kanton", "house",
    "house number", "building", "suburb", "neighborhood", "neighbourhood", "territory",
)

#: GDPR Art. 9 special categories: category → (entity, name hints in several languages)
SPECIAL: dict[str, tuple[str, tuple[str, ...]]] = {
    "religion": ("NRP", ("religion", "religious", "religion affiliation", "faith",
                         "denomination", "confession", "konfession", "religionszugehorigkeit",
                         "religione", "confesion", "culte")),
    "ethnic_origin": ("NRP", ("ethnicity", "ethnic", "ethnic origin", "ethnic group", "race",
                              "racial", "etnia", "ethnie", "herkunft", "etnico", "origen etnico")),
    "nationality": ("NRP", ("nationality", "citizenship", "staatsangehorigkeit",
                            "staatsangehoerigkeit", "nacionalidad", "nationalite",
                            "nazionalita")),
    "political_opinion": ("NRP", ("political", "political party", "party affiliation",
                                  "political affiliation", "political opinion", "partido",
                                  "partei", "parteizugehorigkeit", "vote intention")),
    "sexual_orientation": ("NRP", ("sexual orientation", "orientation", "sexuality",
                                   "orientacion", "orientacion sexual", "sexuelle orientierung",
                                   "orientation sexuelle")),
    "trade_union": ("NRP", ("trade union", "union membership", "union member", "union",
                            "sindical", "sindicato", "afiliacion sindical", "gewerkschaft",
                            "syndicat")),
    "health": ("MEDICAL", ("diagnosis", "diagnoses", "diagnostico", "diagnose", "icd", "icd10",
                           "medical condition", "condition", "disease", "illness", "medication",
                           "allergy", "allergies", "blood type", "blood group",
                           "grupo sanguineo", "blutgruppe", "disability", "health status",
                           "medical", "symptoms", "krankheit", "enfermedad", "pregnancy")),
    "biometric": ("BIOMETRIC", ("biometric", "fingerprint", "fingerprint template",
                                "face template", "face embedding", "iris", "retina",
                                "voiceprint")),
    "genetic": ("BIOMETRIC", ("dna", "genome", "genotype", "genetic", "gene")),
}
for _category, (_entity, _hints) in SPECIAL.items():
    HINTS.setdefault(_entity, ())
    HINTS[_entity] = (*HINTS[_entity], *_hints)
HINTS["LOCATION"] = (*HINTS["LOCATION"], *WEAK_LOCATION)

#: words naming a kind of person: `<word> id`, `<word> no`, `id <word>` are keys of people
PERSON_NOUNS = frozenset({
    "customer", "customers", "client", "clients", "user", "users", "member", "members",
    "employee", "employees", "staff", "actor", "actors", "patient", "patients", "person",
    "people", "contact", "subscriber", "manager", "rep", "representative", "agent", "owner",
    "buyer", "seller", "driver", "student", "teacher", "doctor", "physician", "nurse",
    "author", "guest", "passenger", "tenant", "applicant", "candidate", "player", "worker",
    "supervisor", "kunde", "kunden", "kd", "cliente", "paciente", "usuario", "empleado",
    "mitarbeiter", "utilisateur", "benutzer", "personne", "salarie", "socio", "mitglied",
    "emp", "cust", "pax", "resident", "donor", "volunteer", "voter", "citizen", "holder",
})
#: words that make a name a key (`customer_id`, `staff_no`, `id_paciente`)
KEY_WORDS = frozenset({"id", "key", "no", "nr", "num", "number", "nummer", "numero", "code",
                       "ref", "fk", "pk", "uuid", "guid"})

#: words that make `<word>_code`/`<word>_number` a value, not a key of a thing: a postal code
#: is an address, a card number a card
NOT_A_KEY = frozenset({"card", "credit", "phone", "tax", "ssn", "passport", "license", "dea",
                       "licence", "iban", "account", "bank", "routing", "social", "security",
                       "national", "insurance", "postal", "zip", "post", "plz", "postleitzahl",
                       "verification", "cvv", "cvc", "telefon", "mobile", "fax"})
#: last words that make a name a row's key whatever it names (`credit_card_id`)
PURE_KEYS = frozenset({"id", "key", "ref", "fk", "pk", "uuid", "guid"})
#: words that make `<word>_id` a person's identifier, not a row's key (`tax_id`)
IDENTITY_WORDS = frozenset({"tax", "national", "ssn", "passport", "license", "licence",
                            "social", "security", "insurance", "nino", "dea"})
#: words that make a key one of a kind of person, not of a person (`customer_type_id`)
KIND_WORDS = frozenset({"type", "kind", "group", "status", "segment", "tier", "class", "level",
                        "demo", "demographic", "demographics", "role", "category", "typ",
                        "tipo", "grade", "band", "cohort"})

#: tokens that, next to a PERSON hint, say the name is not a person's (`product_name`)
NOT_A_PERSON = frozenset(
    {
        "product",
        "company",
        "file",
        "filename",
        "table",
        "column",
        "app",
        "item",
        "campaign",
        "event",
        "category",
        "city",
        "street",
        "domain",
        "host",
        "hostname",
        "brand",
        "sku",
        "org",
        "organization",
        "store",
        "shop",
        "team",
        "project",
        "plan",
        "country",
        "region",
        "state",
        "source",
        "user",
        "username",
        "display",
        "page",
        "job",
        "bucket",
        "dataset",
        "schema",
        "field",
        "tag",
        "label",
        "model",
        "device",
    }
)

#: tokens saying a column is not about a person whatever its values look like, and the
#: entities each one refutes ("*" = every weak, unvalidated entity)
REFUTES: dict[str, frozenset[str]] = {
    **dict.fromkeys(
        ("version", "ver", "release", "build", "firmware", "semver"),
        frozenset({"IP_ADDRESS", "DATE_TIME", "PHONE_NUMBER"}),
    ),
    **dict.fromkeys(
        (
            "amount",
            "price",
            "total",
            "cost",
            "qty",
            "quantity",
            "balance",
            "revenue",
            "subtotal",
            "tax",
            "discount",
            "betrag",
            "importe",
            "montant",
            "fee",
            "weight",
            "score",
            "count",
        ),
        frozenset(
            {
                "PHONE_NUMBER",
                "US_BANK_NUMBER",
                "US_SSN",
                "US_DRIVER_LICENSE",
                "US_PASSPORT",
                "DATE_TIME",
                "CREDIT_CARD",
            }
        ),
    ),
    **dict.fromkeys(
        (
            "sku",
            "product",
            "item",
            "part",
            "serial",
            "model",
            "article",
            "ean",
            "upc",
            "isbn",
            "asin",
            "barcode",
        ),
        frozenset(
            {
                "US_PASSPORT",
                "US_DRIVER_LICENSE",
                "US_BANK_NUMBER",
                "PHONE_NUMBER",
                "PERSON",
                "UK_NHS",
            }
        ),
    ),
    **dict.fromkeys(
        (
            "uuid",
            "guid",
            "hash",
            "sha",
            "sha1",
            "sha256",
            "md5",
            "checksum",
            "digest",
            "trace",
            "span",
            "request",
            "nonce",
            "etag",
            "commit",
        ),
        frozenset({"*"}),
    ),
    **dict.fromkeys(("country",), frozenset({"PERSON"})),
    **dict.fromkeys(
        ("currency", "language", "locale", "lang", "timezone", "tz"),
        frozenset({"LOCATION", "PERSON", "NRP", "ORGANIZATION"}),
    ),
    **dict.fromkeys(
        (
            "created",
            "updated",
            "modified",
            "timestamp",
            "ts",
            "occurred",
            "event",
            "logged",
            "processed",
            "ingested",
            "loaded",
            "shipped",
            "ordered",
            "paid",
            "expires",
            "deleted",
        ),
        frozenset({"DATE_TIME"}),
    ),
}

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def tokens(name: str) -> list[str]:
    """Lowercase ASCII tokens of a column name."""
    name = name.replace("ß", "ss")
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return [t for t in _NON_ALNUM.split(_CAMEL.sub(" ", ascii_name).lower()) if t]


def words(name: str) -> list[str]:
    """The classifier's tokens of a name: `tokens`, with words glued together
    (`businessentityid`, `phonenumbertypeid`, `jobcandidate`) split apart (glued.py)."""
    return list(_words(name))


@functools.lru_cache(maxsize=65536)
def _words(name: str) -> tuple[str, ...]:
    return tuple(w for t in tokens(name) for w in unglue(t))


@dataclass(frozen=True)
class NameHint:
    """What a column's name says: the entity it suggests, and what it refutes."""

    entity: str | None = None
    matched: str | None = None
    refutes: frozenset[str] = field(default_factory=frozenset)
    #: a bare `name`, a `state`, a `company`: the entity only where values or the table agree
    weak: bool = False
    category: str | None = None  # a GDPR Art. 9 special category the name says
    #: `address_id`, `store_no`: a key of a thing (what the key names): never that thing's
    #: entity (an address id is not an address), nor a person
    key_of: str | None = None

    def refuted(self, entity: str) -> bool:
        """True when the name says the column cannot hold `entity`."""
        return entity in self.refutes or ("*" in self.refutes and entity != self.entity)


class NameHints:
    """The hint table, with user additions from the config file."""

    def __init__(self, extra: dict[str, list[str]] | None = None) -> None:
        table = {k: list(v) for k, v in HINTS.items()}
        for entity, hints in (extra or {}).items():
            table.setdefault(entity, []).extend(hints)
        # Longest hints first: `ip address` wins over `address`, `first name` over `name`.
        self._hints = sorted(
            ((tuple(words(h)), e) for e, hs in table.items() for h in hs),
            key=lambda p: -len(" ".join(p[0])),
        )

    @property
    def entities(self) -> frozenset[str]:
        """Every entity some hint names."""
        return frozenset(e for _, e in self._hints)

    def hint(self, column: str, dataset: str = "") -> NameHint:
        """The hint for a column of a dataset."""
        toks = words(column)
        refutes = frozenset().union(*(REFUTES.get(t, frozenset()) for t in toks))
        # a person key by its name alone is read from the words as written, not unglued: a
        # `jobcandidateid` beside a declared key of the same person would make the planner
        # read the row as two people's (a known miss, docs/benchmarks.md)
        key = _person_key(tokens(column), dataset)
        if key is not None:
            return NameHint("PERSON_ID", key, refutes - {"PERSON_ID"})
        if toks in (["name"], ["full", "name"]) and _named_by_person(dataset):
            return NameHint("PERSON", "name of a person's " + dataset, refutes)
        if toks == ["code"] and _is_card_table(dataset):
            return NameHint("CARD_SECURITY_CODE", "code of a card", refutes)
        if len(toks) > 1 and (toks[-1] in KEY_WORDS or toks[0] in ("id", "fk")):
            thing = " ".join(t for t in toks if t not in KEY_WORDS)
            # `credit_card_id`, `phone_number_type_id`: a row's key, though `card_number` is
            # a card; `tax_id`, `national_id` are a person's identifiers
            pure = toks[-1] in PURE_KEYS and not IDENTITY_WORDS & set(toks)
            if thing and (pure or not NOT_A_KEY & set(toks)):
                return NameHint(None, None, frozenset({"*"}), key_of=thing)
        for hint_tokens, entity in self._hints:
            if _matches(toks, hint_tokens):
                if entity == "PERSON" and NOT_A_PERSON.intersection(toks):
                    continue
                if entity == "PERSON" and KIND_WORDS.intersection(toks):
                    continue  # `persontype`, `customer_category`: a kind of person
                text = " ".join(hint_tokens)
                weak = (entity == "PERSON" and hint_tokens == ("name",)) or (
                    entity == "LOCATION" and text in WEAK_LOCATION) or entity == "ORGANIZATION"
                return NameHint(entity, text, refutes - {entity}, weak, _CATEGORY.get(text))
        if toks == ["id"] and _is_person_table(dataset):
            return NameHint("PERSON_ID", "id of a person table", refutes)
        return NameHint(None, None, refutes)


_PERSON_TABLES = (
    "customer",
    "user",
    "client",
    "member",
    "employee",
    "patient",
    "person",
    "people",
    "contact",
    "lead",
    "subscriber",
    "account",
    "kunde",
    "cliente",
    "mitarbeiter",
    "staff",
    "actor",
    "student",
    "applicant",
    "candidate",
)


#: tables of things that carry one person's name (`payment_card.name` is the cardholder)
_NAMED_BY_PERSON = ("card", "passport", "licence", "license", "membership")
#: hint text → special category
_CATEGORY = {" ".join(words(h)): c for c, (_, hs) in SPECIAL.items() for h in hs}


def _is_person_table(dataset: str) -> bool:
    """A table whose rows are people: its name (any word of it) is a kind of person, and
    not a kind of people (`customer_demographics`, `user_types`)."""
    toks = words(dataset.rsplit(".", 1)[-1])
    if KIND_WORDS & set(toks) or any(t.rstrip("s") in KIND_WORDS for t in toks):
        return False
    return any(t.startswith(p) for t in toks for p in _PERSON_TABLES) or bool(
        PERSON_NOUNS & set(toks))


def _is_card_table(dataset: str) -> bool:
    return any(t.startswith("card") for t in words(dataset.rsplit(".", 1)[-1]))


def _named_by_person(dataset: str) -> bool:
    toks = words(dataset.rsplit(".", 1)[-1])
    return _is_person_table(dataset) or any(t.startswith(p) for t in toks
                                            for p in _NAMED_BY_PERSON)


def _person_key(toks: list[str], dataset: str) -> str | None:
    """How a column name says it holds a key of a person (`support_rep_id`, `staff_no`,
    `id_paciente`, `manager_staff_id`), or None."""
    if len(toks) < 2:
        return None
    words = [t for t in toks if t not in KEY_WORDS]
    if not words or words == toks:
        return None
    keyed = toks[-1] in KEY_WORDS or toks[0] in KEY_WORDS
    if keyed and PERSON_NOUNS & set(words) and not (THING_NOUNS | KIND_WORDS) & set(words):
        return " ".join(toks)
    return None


#: words that make a key one of a thing even beside a person's word (`product_owner_id` is
#: still a person; `customer_order_id` is an order)
THING_NOUNS = frozenset({"product", "company", "item", "order", "invoice", "category", "file",
                         "event", "campaign", "device", "app", "page", "project", "team",
                         "org", "organization", "transaction", "txn", "session", "ticket",
                         "address", "card", "account", "payment", "shipment"})


#: hints that match whole tokens only (`actors` is not in `factors`, `handle` not `handler`)
WHOLE_TOKEN = frozenset({"actor", "actors", "manager", "handle", "union", "orientation",
                         "condition", "political", "genetic", "race", "racial"})


def _matches(toks: list[str], hint: tuple[str, ...]) -> bool:
    n = len(hint)
    for i in range(len(toks) - n + 1):
        if tuple(toks[i : i + n]) == hint:
            return True
    if n == 1 and len(hint[0]) >= 5 and hint[0] not in WHOLE_TOKEN:
        return any(hint[0] in t for t in toks)
    return False
