"""The people of a deployment, for tests that act as them through the command line: an admin,
a requester, an approver and an operator, each a principal with a token of their own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from optout.scanner.access.principals import add_principal, create_token, init_catalog
from optout.scanner.catalog import Catalog

OPTOUT = [sys.executable, "-m", "optout.cli.main"]
ROLES = ("requester", "approver", "operator")


class Staff:
    """An initialized catalog's principals and their tokens."""

    def __init__(self, catalog: Catalog, admin_token: str | None = None) -> None:
        self.catalog = catalog
        self.tokens = {"admin": admin_token or init_catalog(catalog)}
        for role in ROLES:
            add_principal(catalog, role, [role], "admin")
            self.tokens[role] = create_token(catalog, role)[1]

    def cli(self, role: str | None, *argv: str, cwd: Path | None = None,
            env: dict[str, str] | None = None, timeout: float = 300
            ) -> subprocess.CompletedProcess:
        """`optout ARGV` as `role` (None: no token), in `cwd`, with nothing of the test's
        own optout settings in the environment."""
        base = {k: v for k, v in os.environ.items()
                if k not in ("OPTOUT_TOKEN", "OPTOUT_CONFIG", "OPTOUT_CATALOG")}
        if role is not None:
            base["OPTOUT_TOKEN"] = self.tokens[role]
        return subprocess.run([*OPTOUT, "--catalog", self.catalog.path, *argv],
                              env={**base, **(env or {})}, capture_output=True, text=True,
                              cwd=cwd or Path(self.catalog.path).parent, timeout=timeout)


def error_line(done: subprocess.CompletedProcess) -> str:
    """The one `Error: ...` line a refused command prints."""
    lines = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, (done.returncode, done.stdout[-2000:], done.stderr[-2000:])
    return lines[0]
