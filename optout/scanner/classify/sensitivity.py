"""How sensitive a finding is: a GDPR Art. 9 special category (with its category), financial
data, an identifier of a person, contact data, or other personal data."""

from __future__ import annotations

from optout.model.dataset import ColumnFinding

#: entity → sensitivity (special categories are set from their category)
SENSITIVITY = {
    "CREDIT_CARD": "financial", "IBAN_CODE": "financial", "US_BANK_NUMBER": "financial",
    "CARD_SECURITY_CODE": "financial", "CRYPTO": "financial",
    "EMAIL_ADDRESS": "contact", "PHONE_NUMBER": "contact", "LOCATION": "contact",
    "URL": "contact",
    "PERSON": "identifier", "PERSON_ID": "identifier", "US_SSN": "identifier",
    "US_PASSPORT": "identifier", "US_DRIVER_LICENSE": "identifier", "IP_ADDRESS": "identifier",
    "UK_NHS": "identifier", "UK_NINO": "identifier",
}


def finish(finding: ColumnFinding) -> None:
    """A finding's sensitivity, from its category or its entity."""
    if not finding.pii:
        finding.sensitivity = None
    elif finding.category:
        finding.sensitivity = "special_category"
    else:
        finding.sensitivity = SENSITIVITY.get(finding.entity or "", "other")
