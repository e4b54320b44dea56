"""Who may do what: principals and tokens, the role each command needs, the audit log."""

from optout.scanner.access.gate import COMMAND_ROLES, AccessDenied, authorize
from optout.scanner.access.principals import AuthError, Principal, PrincipalError, authenticate

__all__ = ["COMMAND_ROLES", "AccessDenied", "AuthError", "Principal", "PrincipalError",
           "authenticate", "authorize"]
