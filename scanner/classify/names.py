"""Column-name hints, in several languages: what a column's name says it holds.

Hints are data. A name is split into lowercase ASCII tokens (`customerEMail` → `customer email`, `E-Mail` → `e mail`,
`Geburtsdatum` → `geburtsdatum`); a hint matches a run of whole tokens, and hints of five letters
or more also match inside a token (German and Dutch compounds: `kundenemail`, `telefonnummer`).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

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
    ),
}

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
    **dict.fromkeys(
        ("country", "currency", "language", "locale", "lang", "timezone", "tz"),
        frozenset({"LOCATION", "PERSON", "NRP"}),
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


@dataclass(frozen=True)
class NameHint:
    """What a column's name says: the entity it suggests, and what it refutes."""

    entity: str | None = None
    matched: str | None = None
    refutes: frozenset[str] = field(default_factory=frozenset)
    weak: bool = False  # a bare `name`: a person only if the values agree

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
            ((tuple(tokens(h)), e) for e, hs in table.items() for h in hs),
            key=lambda p: -len(" ".join(p[0])),
        )

    @property
    def entities(self) -> frozenset[str]:
        """Every entity some hint names."""
        return frozenset(e for _, e in self._hints)

    def hint(self, column: str, dataset: str = "") -> NameHint:
        """The hint for a column of a dataset."""
        toks = tokens(column)
        refutes = frozenset().union(*(REFUTES.get(t, frozenset()) for t in toks))
        for hint_tokens, entity in self._hints:
            if _matches(toks, hint_tokens):
                if entity == "PERSON" and NOT_A_PERSON.intersection(toks):
                    continue
                weak = entity == "PERSON" and hint_tokens == ("name",)
                return NameHint(entity, " ".join(hint_tokens), refutes - {entity}, weak)
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
    "student",
    "applicant",
    "candidate",
)


def _is_person_table(dataset: str) -> bool:
    last = tokens(dataset.rsplit(".", 1)[-1])
    return bool(last) and any(last[-1].startswith(p) for p in _PERSON_TABLES)


def _matches(toks: list[str], hint: tuple[str, ...]) -> bool:
    n = len(hint)
    for i in range(len(toks) - n + 1):
        if tuple(toks[i : i + n]) == hint:
            return True
    if n == 1 and len(hint[0]) >= 5:
        return any(hint[0] in t for t in toks)
    return False
