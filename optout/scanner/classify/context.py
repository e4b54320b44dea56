"""Table context: a column is read with its table's name and its sibling columns, and with the
foreign keys of its source. Values alone cannot tell a person's `state` from an order's, a
customer's `name` from a product's, a contact person's employer from a shipping company.

Per table:
- a table *of people* (its name is a kind of person, or a column names or reaches one: a
  name, an email, a key of a person) keeps what its columns say about that person;
- a *list of places* (`city`, `country`, `us_states`, `territories` with nobody in them) holds
  places, not anybody's address: no LOCATION;
- a *company's own record* (a company name, no person) holds the company's contact data: no
  phone, address or employer there;
- weak names (`name`, `state`, `region`, `company`) count only in a table of people, an
  address table, or beside a column that says the same with a strong name;
- a column whose name is a thing (`store`, `product`) describes that thing, not a person, and
  a person named only by NER outside a table of people (a track's composer, an artist) is not
  a data subject of the table.
Across tables (foreign keys): a key that references a table of people is a key of a person.
"""

from __future__ import annotations

import re

import pyarrow as pa

from optout.model.dataset import ColumnFinding, ForeignKey
from optout.scanner.classify.names import (
    _PERSON_TABLES,
    KEY_WORDS,
    NOT_A_PERSON,
    PERSON_NOUNS,
    THING_NOUNS,
    _is_person_table,
    _named_by_person,
    words,
)
from optout.scanner.classify.sensitivity import finish

#: tables whose rows are places (lookup lists)
PLACE_TABLES = frozenset({"city", "cities", "country", "countries", "region", "regions",
                          "state", "states", "territory", "territories", "province",
                          "provinces", "district", "districts", "zone", "zones", "area",
                          "areas", "county", "counties", "language", "languages", "currency",
                          "currencies", "location", "locations", "place", "places"})
#: tables whose rows are addresses (of whoever points at them)
ADDRESS_TABLES = frozenset({"address", "addresses", "adresse", "adressen", "direccion",
                            "direcciones", "indirizzo", "indirizzi"})
#: tables whose rows are machines or things that stand somewhere (their place is nobody's)
MACHINE_TABLES = frozenset({"device", "machine", "asset", "equipment", "station", "sensor",
                            "server", "host", "printer", "scanner", "terminal", "kiosk",
                            "vehicle", "meter", "site", "warehouse", "store"})
#: entities that show a row is about a person
PERSON_EVIDENCE = frozenset({"PERSON", "EMAIL_ADDRESS", "PERSON_ID", "US_SSN", "US_PASSPORT",
                             "US_DRIVER_LICENSE"})
_STRONG_LOCATION = re.compile(r"address|street|city|zip|post|plz|ort|ciudad|ville|calle")


def settle(dataset: str, findings: list[ColumnFinding]) -> list[ColumnFinding]:
    """The findings of one table, read with the table's name and its other columns."""
    toks = words(dataset.rsplit(".", 1)[-1])
    people = _is_person_table(dataset) or any(
        f.pii and f.entity in PERSON_EVIDENCE and not _weak(f) and not _ner_only(f)
        for f in findings)
    rows_are_people = _rows_are_people(dataset, findings)
    places = not people and bool(PLACE_TABLES & set(toks[-1:]))
    addresses = bool(ADDRESS_TABLES & set(toks))
    company = not people and any(f.pii and f.entity == "ORGANIZATION" for f in findings)
    strong_location = any(f.pii and f.entity == "LOCATION" and not _weak(f) and
                          _STRONG_LOCATION.search(" ".join(words(f.name))) for f in findings)
    for f in findings:
        why = _drop(f, people, places, addresses, company, strong_location, dataset,
                    rows_are_people)
        if why:
            _clear(f, why)
    return findings


def _drop(f: ColumnFinding, people: bool, places: bool, addresses: bool, company: bool,
          strong_location: bool, dataset: str, rows_are_people: bool) -> str | None:
    """Why the table says a finding is nobody's personal data, or None."""
    if not f.pii or f.free_text:
        return None
    said = set(words(f.name))
    if f.entity == "LOCATION":
        if places:
            return "a list of places: nobody's address"
        if company and not addresses:
            return "a company's own address"
        if not people and MACHINE_TABLES & {t.rstrip("s") for t in words(dataset)[-1:]}:
            return "where a machine stands, not anybody's address"
        if (THING_NOUNS | NOT_A_PERSON) & said - {"city", "country", "region", "state",
                                                    "street"} and not f.signals.get("name"):
            return f"describes a {sorted((THING_NOUNS | NOT_A_PERSON) & said)[0]}, not a person"
        if _weak(f) and not (rows_are_people or addresses or strong_location):
            return "a place word outside a person's record or address"
    if f.entity in ("PHONE_NUMBER", "EMAIL_ADDRESS", "URL") and company:
        return "a company's own contact data"
    if f.entity == "ORGANIZATION" and not people:
        return "a company with no person in the row"
    if f.entity == "ORGANIZATION" and f.distinct < MIN_DISTINCT:
        return "the same company in every row: the table's owner, nobody's own"
    if f.entity == "PERSON":
        if _weak(f) and not (people or _named_by_person(dataset)):
            return f"a name in a table of {dataset}, not of people"
        if _ner_only(f) and not people:
            return "names found by NER outside a table of people (not its data subjects)"
    if f.entity == "PHOTO" and not (people or _named_by_person(dataset)):
        return "a picture in a table that is not about people"
    return None


def _rows_are_people(dataset: str, findings: list[ColumnFinding]) -> bool:
    """A table whose rows are people, not things that point at people: its name is a kind
    of person, or it holds a person's own name or contact (not a key of someone else) and
    is not a company's record (`suppliers` with a contact name is a list of firms)."""
    if _is_person_table(dataset):
        return True
    if any(f.pii and f.entity == "ORGANIZATION" for f in findings):
        return False
    return any(f.pii and f.entity in OWN_EVIDENCE and not _weak(f) and not _ner_only(f)
               for f in findings)


#: entities that show a row is a person (a PERSON_ID may be a key of someone else's)
OWN_EVIDENCE = PERSON_EVIDENCE - {"PERSON_ID"}


def _weak(f: ColumnFinding) -> bool:
    return bool(f.signals.get("weak_name"))


def _ner_only(f: ColumnFinding) -> bool:
    """Found by NER alone: no column name said it, no lexicon validated its names."""
    return not f.signals.get("name") and not f.signals.get("lexicon") and \
        f.entity in f.signals.get("ner", [])


def _clear(f: ColumnFinding, why: str) -> None:
    f.pii = f.identifier = False
    f.entity = None
    f.score = 0.0
    f.examples = []
    f.evidence = f"table: {why}"
    finish(f)


def link_people(tables: dict[str, list[ColumnFinding]],
                keys: dict[str, list[ForeignKey]]) -> None:
    """Across the tables of one source: a column with a foreign key into a table of people is
    a key of a person (`support_rep_id` → `employee`)."""
    people = {name for name, findings in tables.items() if _rows_are_people(name, findings)}
    for name, fks in keys.items():
        columns = {f.name: f for f in tables.get(name, [])}
        for fk in fks:
            target = fk.ref_table.rsplit(".", 1)[-1]
            if target not in {p.rsplit(".", 1)[-1] for p in people} or len(fk.columns) != 1:
                continue
            f = columns.get(fk.columns[0])
            if f is not None and not (f.pii and f.entity == "PERSON_ID"):
                f.pii = f.identifier = True
                f.entity = "PERSON_ID"
                f.score = max(f.score, 0.9)
                f.evidence = f"reference: a key of {target}, a table of people"
                finish(f)


#: words naming the role a person plays in a row (`requester_id`, `assignee_id`)
ROLE_NOUNS = frozenset({"requester", "submitter", "assignee", "reporter", "creator",
                        "approver", "reviewer", "sender", "recipient", "commenter"})
#: at least this many distinct values before values say a column references a key
MIN_DISTINCT = 3


def link_by_values(tables: dict[str, tuple[list[ColumnFinding], pa.Table, int]]) -> None:
    """Across the tables of one source, references nobody declared, read from the values: a
    table of people's (named for them) own key (unique in a sample that holds every row) is a key of a person,
    whatever its type (an integer, a UUID, a code); a column of another table whose name says
    a person or a role (`requester_id`, `author_id`, `PATIENT`) and whose values all are
    values of that key references it, so it is a key of a person too."""
    people: dict[str, tuple[set[str], str]] = {}
    for name, (findings, sample, rows) in tables.items():
        # a table named for people (a table holding someone's email may be of tickets or
        # cards, its key theirs) whose sample holds every row
        if not (_of_people(name) or _names_its_rows(name, findings)) or \
                sample.num_rows < rows:
            continue
        if any(f.pii and f.entity == "PERSON_ID" and (f.evidence or "").startswith("reference:")
               for f in findings):
            continue  # a declared key to a table of people says whose rows these are
        own = _own_key(name, findings, sample)
        if own is not None:
            f, values = own
            people[name] = (values, name.rsplit(".", 1)[-1])
            if not f.pii:
                _person_key_found(f, f"the key of {name}, a table of people")
    for name, (findings, sample, _) in tables.items():
        for f in findings:
            if f.pii or f.name not in sample.column_names:
                continue
            said = set(words(f.name)) - KEY_WORDS
            said |= {w[:-2] for w in said if w.endswith("id") and len(w) > 4}  # PATIENTID
            values = _distinct(sample, f.name)
            if len(values) < MIN_DISTINCT:
                continue
            for target, (keys, table) in people.items():
                stems = {t.rstrip("s") for t in words(table)}
                named = said & (PERSON_NOUNS | ROLE_NOUNS) or {w.rstrip("s") for w in said} \
                    & stems
                if target != name and named and values <= keys:
                    _person_key_found(f, f"reference by its values: a key of {target}, a "
                                         "table of people")
                    break


def pair_codes(findings: list[ColumnFinding], sample: pa.Table) -> None:
    """A code column that stands for a special-category column of its table, one code per
    value and one value per code (`CODE` beside the drug names of `DESCRIPTION`), says the
    same and is as sensitive. The evidence is the other column's values and the pairing read
    from the sample; a unique key pairs with anything unique, so the codes must repeat."""
    special = [f for f in findings if f.pii and f.category and not f.free_text
               and f.name in sample.column_names]
    for f in special:
        described = _distinct(sample, f.name)
        for g in findings:
            if g.pii or g.name == f.name or g.name not in sample.column_names:
                continue
            codes = _distinct(sample, g.name)
            if not MIN_DISTINCT <= len(codes) == len(described) or \
                    len(codes) > REPEATS * sample.num_rows:
                continue
            pairs = {(str(a), str(b)) for a, b in zip(sample.column(g.name).to_pylist(),
                                                       sample.column(f.name).to_pylist(),
                                                       strict=True)
                     if a is not None and b is not None}
            if len(pairs) == len(codes):
                g.pii = True
                g.entity, g.category = f.entity, f.category
                g.score = f.score
                g.evidence = f"the code of {f.name}: one {f.name} per code and one code per " \
                             f"{f.name} in the sample"
                finish(g)


#: codes of a vocabulary repeat: at most this share of the sampled rows are distinct codes
REPEATS = 0.5


def _of_people(name: str) -> bool:
    """A table whose head noun is a kind of person (`patients`, `Customer`; not
    `customer_notes`, a table of notes)."""
    toks = words(name.rsplit(".", 1)[-1])
    head = toks[-1].rstrip("s") if toks else ""
    return _is_person_table(name) and (head in {p.rstrip("s") for p in PERSON_NOUNS}
                                       or any(head.startswith(p) for p in _PERSON_TABLES))


#: words of a column that holds the row's own name (`NAME`, `full_name`, `FIRST`)
OWN_NAME_WORDS = frozenset({"name", "names", "first", "last", "full", "given", "family",
                            "surname", "forename", "middle", "display"})


def _names_its_rows(name: str, findings: list[ColumnFinding]) -> bool:
    """A table whose rows are named people, whatever the table is called (`providers`): a
    column named only a name, whose values the lexicon reads as persons' names; not a table
    named for a thing (`payment_card`: a card's `name` is its holder's, the row a card)."""
    toks = words(name.rsplit(".", 1)[-1])
    if {t.rstrip("s") for t in toks} & (THING_NOUNS | NOT_A_PERSON):
        return False
    return any(f.pii and f.entity == "PERSON" and f.signals.get("lexicon")
               and set(words(f.name)) <= OWN_NAME_WORDS for f in findings)


def _distinct(sample: pa.Table, column: str) -> set[str]:
    return {str(v) for v in sample.column(column).to_pylist() if v is not None and v != ""}


def _own_key(name: str, findings: list[ColumnFinding], sample: pa.Table
             ) -> tuple[ColumnFinding, set[str]] | None:
    """A table's own key: a column named `id` (or `<table>_id`, `<table>_code`,
    `<table>_no`) whose sampled values are unique."""
    stem = {t.rstrip("s") for t in words(name.rsplit(".", 1)[-1])}
    for f in findings:
        toks = words(f.name)
        if toks != ["id"] and not (toks[-1:] and toks[-1] in KEY_WORDS and len(toks) > 1
                                   and {t.rstrip("s") for t in toks[:-1]} <= stem):
            continue
        if f.name not in sample.column_names:
            continue
        values = [v for v in sample.column(f.name).to_pylist() if v is not None]
        if len(values) >= MIN_DISTINCT and len({str(v) for v in values}) == len(values):
            return f, {str(v) for v in values}
    return None


def _person_key_found(f: ColumnFinding, why: str) -> None:
    f.pii = f.identifier = True
    f.entity = "PERSON_ID"
    f.score = max(f.score, 0.9)
    f.evidence = why
    finish(f)
