"""The roles a principal may hold (what each allows is the session's role table,
optout/session/operations.py)."""

ROLES = ("viewer", "scanner", "requester", "approver", "operator", "auditor", "admin")
