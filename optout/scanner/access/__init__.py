"""Who is who: principals and tokens, and the audit log. What each may do is the session's
(optout/session/operations.py)."""

from optout.scanner.access.principals import (
    EMBEDDED,
    AccessDenied,
    AuthError,
    Principal,
    PrincipalError,
    acting,
    authenticate,
)

__all__ = ["EMBEDDED", "AccessDenied", "AuthError", "Principal", "PrincipalError", "acting",
           "authenticate"]
