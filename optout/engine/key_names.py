"""What key columns' and tables' names say: the row kind a key names (`patient_id`,
`PATIENT`, `PATIENTID` and `patients.Id` name patients), and the role a column gives its person
in a row (`requester_id` owns it, `assignee_id` is somebody else). Words only: whether values
agree is the identity graph's (`optout/engine/graph.py`)."""

from __future__ import annotations

from optout.scanner.classify.names import tokens

KEY_WORDS = {"id", "key", "no", "nr", "fk", "number", "num", "uuid"}
#: words naming a person who acts on someone else's row (the row is not theirs)
AGENT_WORDS = frozenset({
    "employee", "staff", "rep", "agent", "assigned", "assignee", "updated", "modified",
    "manager", "referrer", "referred", "reports", "approver", "approved", "handled", "handler",
    "sales", "salesperson", "seller", "reviewer", "supervisor", "operator", "support",
    "responsible", "broker", "provider", "doctor", "physician", "clinician", "practitioner",
    "nurse", "recruiter", "interviewer", "closed", "resolved", "escalated", "collaborator",
    "follower", "cc"})
#: words naming the person whose row it is (`requester_id`, `customer_id`, `PATIENT`)
SUBJECT_WORDS = frozenset({
    "requester", "customer", "client", "patient", "member", "subscriber", "user", "person",
    "buyer", "guest", "student", "applicant", "candidate", "contact", "account", "holder",
    "beneficiary", "insured", "recipient", "visitor", "participant", "resident", "passenger",
    "citizen", "consumer", "shopper", "subject", "requestor", "enrollee"})
#: words naming who did something in a row: the row's person when no subject word says who
ACTOR_WORDS = frozenset({
    "author", "actor", "sender", "submitter", "reporter", "creator", "created", "owner",
    "poster", "commenter", "by", "requested", "opened", "writer", "uploader", "initiator"})
#: words naming a table of people (its rows are persons), besides tables with person data
PEOPLE_WORDS = SUBJECT_WORDS | {"employee", "staff", "people", "agent", "provider", "doctor",
                                "physician", "clinician", "practitioner", "nurse", "profile"}
def stem(toks: list[str]) -> tuple[str, ...]:
    return tuple(t[:-1] if t.endswith("s") and len(t) > 3 else t
                 for t in toks if t not in KEY_WORDS)


def glued(toks: list[str]) -> list[str]:
    """`PATIENTID` → `patient`, `PersonKEY` → `person`: a key suffix written without a break
    (a name's last token ending in `id`/`key`), besides the tokens as they are."""
    if toks and len(toks[-1]) > 4:
        for suffix in ("id", "key", "uuid"):
            if toks[-1].endswith(suffix):
                return [*toks[:-1], toks[-1][:-len(suffix)]]
    return toks


#: words that qualify a table without saying what its rows are (`customer_list`,
#: `stg_customers`, `dim_customer`, `customers_v`): never the stem `id` is named after
TABLE_QUALIFIERS = frozenset({
    "list", "view", "v", "vw", "info", "detail", "details", "summary", "all", "current",
    "latest", "dim", "fact", "stg", "staging", "raw", "tbl", "table", "data", "history",
    "hist", "snapshot", "archive", "backup", "copy", "export", "extract", "mart", "int",
    "base", "clean", "new", "old", "tmp", "temp"})


def table_stem(dataset: str) -> tuple[str, ...]:
    """What a table's rows are, for its `id`: its last word that is not a qualifier."""
    stems = [t for t in stem(tokens(dataset.rsplit(".", 1)[-1])) if t not in TABLE_QUALIFIERS]
    return tuple(stems[-1:]) or stem(tokens(dataset.rsplit(".", 1)[-1]))[-1:]


def role_word(column: str) -> str | None:
    """The role a column's name gives its person (`requester_id` → requester), if any."""
    toks = glued(tokens(column))
    for words in (AGENT_WORDS, SUBJECT_WORDS, ACTOR_WORDS):
        found = [t for t in toks if t in words]
        if found:
            return found[0]
    return None
