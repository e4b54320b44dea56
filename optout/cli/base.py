"""What every command shares: the `optout` group, the caller's context (catalog, config,
login), the errors-to-exit-status mapping and the audited guard."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any

import click
from rich.console import Console

from optout.engine import EngineError
from optout.engine.approvals import ApprovalError
from optout.model.errors import ScannerError
from optout.model.redaction import printable, redact
from optout.model.runtime import RUNTIMES
from optout.scanner.access import (
    AccessDenied,
    AuthError,
    Principal,
    audit,
    authenticate,
    authorize,
)
from optout.scanner.access.principals import has_principals
from optout.scanner.catalog import Catalog
from optout.scanner.config import Config
from optout.scanner.deployment import effective_config

DEFAULT_CATALOG = "optout.duckdb"
TOKEN_ENV = "OPTOUT_TOKEN"


def console(stderr: bool = False) -> Console:
    """A console for this call; piped output gets wide lines instead of folded cells."""
    stream = sys.stderr if stderr else sys.stdout
    return Console(file=stream, stderr=stderr, width=None if stream.isatty() else 200)


class Context:
    """What every command receives: the catalog, the config, and (once logged in) the caller."""

    def __init__(self, catalog: str, config: str | None, debug: bool) -> None:
        self.catalog = Catalog(catalog)
        self.config_path = config
        self.debug = debug
        self.caller: Principal | None = None

    def config(self) -> Config:
        """The deployment's configuration (from the catalog), with the caller's own scan
        sample from their local config (`--config`, `OPTOUT_CONFIG` or ./optout.yaml)."""
        return effective_config(self.catalog, self.config_path)

    def login(self, command: str, args: dict[str, Any]) -> Principal:
        """Authenticate the caller by OPTOUT_TOKEN (or a prompt on a terminal); a failure is
        logged and denied."""
        if not os.path.exists(self.catalog.path) or not has_principals(self.catalog):
            raise AccessDenied(f"{self.catalog.path}: not initialized; run `optout init` first "
                               "(it prints the first admin token)")
        token = os.environ.get(TOKEN_ENV)
        if not token and sys.stdin.isatty():
            token = click.prompt("optout token", hide_input=True, err=True)
        try:
            self.caller = authenticate(self.catalog, token)
        except AuthError as exc:
            audit.append(self.catalog, "(unauthenticated)", (), command, args, "denied", str(exc))
            raise
        return self.caller


#: `--engine`, the same on every command that reads or changes data
engine_option = click.option(
    "--engine", "engine", type=click.Choice(RUNTIMES), default=None,
    help="What reads and changes the data: duckdb (in this process) or spark (spark.master in "
         "the deployment's configuration; default local[2]). Default: the deployment's "
         "engine:, else duckdb.")

#: `optout plan`'s exit status when the plan has review items or stopped subjects
NEEDS_REVIEW = 4


class Denied(click.ClickException):
    """Not authenticated, not authorized, or refused by four eyes: exit status 3."""

    exit_code = 3


def errors_to_exit(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the libraries' errors into `Error: ...` and exit status 1 (3 for access denied;
    traceback with --debug)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (click.ClickException, click.exceptions.Abort, click.exceptions.Exit):
            raise
        except Exception as exc:
            ctx = click.get_current_context()
            if ctx.find_object(Context) and ctx.find_object(Context).debug:
                raise
            if isinstance(exc, AccessDenied | AuthError | ApprovalError):
                raise Denied(shown(str(exc))) from None
            raise click.ClickException(shown(failure(exc))) from None

    return wrapper


def failure(exc: BaseException) -> str:
    """A one-line reason for an error: the library's own message, or, for anything else (a
    bug, an engine's error that escaped), its type and first line (redacted)."""
    if isinstance(exc, ScannerError | EngineError):
        return str(exc)
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return redact(f"internal error ({type(exc).__name__}: {first[:300]}); run with --debug "
                  "for the traceback", engine=True)


def shown(text: str) -> str:
    """A message as the terminal gets it: no passwords or addresses, no control characters."""
    return printable(redact(text))


def guarded(command: str, by_api: bool = False,
            name_of: Callable[[dict[str, Any]], str] | None = None) -> Callable[..., Any]:
    """Authenticate the caller, authorize `command` (unless the library entry point it calls
    does: `by_api`), and log how it ended. Every call leaves audit entries."""

    fixed = command

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            ctx = click.get_current_context()
            obj = ctx.find_object(Context)
            params = dict(ctx.params)
            command = name_of(params) if name_of else fixed
            caller = obj.login(command, params)
            if not by_api:
                authorize(obj.catalog, caller, command, params)
            try:
                result = fn(*args, **kwargs)
            except AccessDenied:
                raise  # the library entry point logged the denial
            except click.exceptions.Abort:
                audit.append(obj.catalog, caller.name, caller.roles, command, params, "failed",
                             "aborted at the confirmation")
                raise
            except Exception as exc:  # every way a command can end is logged
                ended = "denied" if isinstance(exc, ApprovalError) else "failed"
                reason = exc.format_message() if isinstance(exc, click.ClickException) \
                    else failure(exc)
                audit.append(obj.catalog, caller.name, caller.roles, command, params, ended,
                             redact(reason, obj.catalog.hasher())[:500])
                raise
            except SystemExit as exc:
                audit.append(obj.catalog, caller.name, caller.roles, command, params,
                             "ok" if exc.code in (None, 0, NEEDS_REVIEW) else "failed",
                             f"exit status {exc.code}")
                raise
            audit.append(obj.catalog, caller.name, caller.roles, command, params, "ok")
            return result

        return wrapper

    return decorate


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--catalog",
    envvar="OPTOUT_CATALOG",
    default=DEFAULT_CATALOG,
    show_default=True,
    help="Catalog file (DuckDB). Env: OPTOUT_CATALOG.",
)
@click.option(
    "--config",
    "config",
    envvar="OPTOUT_CONFIG",
    default=None,
    help="Config file (default: ./optout.yaml if present). Env: OPTOUT_CONFIG.",
)
@click.option("--debug", is_flag=True, envvar="OPTOUT_DEBUG", help="Show tracebacks.")
@click.version_option(package_name="optout")
@click.pass_context
def cli(ctx: click.Context, catalog: str, config: str | None, debug: bool) -> None:
    """optout: find personal data across tables and files, and erase a person from all of it."""
    ctx.obj = Context(catalog, config, debug)
