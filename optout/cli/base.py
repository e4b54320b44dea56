"""What every command shares: the `optout` group, the caller's context (catalog path,
config, login to a `Session`), and the errors-to-exit-status mapping. Who may do what is the
session's (optout/session/operations.py); a command only names its operation."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from optout.model.runtime import RUNTIMES
from optout.session.operations import Operation

if TYPE_CHECKING:
    from rich.console import Console

    from optout.session import Session

DEFAULT_CATALOG = "optout.duckdb"
TOKEN_ENV = "OPTOUT_TOKEN"
#: the width of piped output (COLUMNS, when set, wins)
PIPED_WIDTH = 100

#: exit statuses, as `optout --help` explains them
EXIT_STATUSES = """Exit statuses: 0 done; 1 an error (one line on stderr, naming what was
wrong); 2 a usage error; 3 not authenticated, not authorized, or refused by four eyes;
4 needs review (a plan or an applied request that may leave data of the subject: `optout
review PLAN` lists what and why)."""


def console(stderr: bool = False) -> Console:
    """A console for this call: the terminal's width, COLUMNS when set, else a sane width
    when piped (never 200-character lines)."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    columns = os.environ.get("COLUMNS", "")
    wide = int(columns) if columns.isdigit() else (None if stream.isatty() else PIPED_WIDTH)
    return Console(file=stream, stderr=stderr, width=wide)


class Context:
    """What every command receives: the catalog path, the local config, and --debug."""

    def __init__(self, catalog: str, config: str | None, debug: bool) -> None:
        self.catalog_path = catalog
        self.config_path = config
        self.debug = debug

    def login(self, operation: str, args: dict[str, Any]) -> Session:
        """A session for the caller of OPTOUT_TOKEN (or a prompt on a terminal); a failure
        is logged under `operation` and denied."""
        from optout.session import Session

        token = os.environ.get(TOKEN_ENV)
        if not token and sys.stdin.isatty() and os.path.exists(self.catalog_path):
            token = click.prompt("optout token", hide_input=True, err=True)
        return Session.login(self.catalog_path, token, operation=operation, args=args,
                             config_path=self.config_path)


#: `--engine`, the same on every command that reads or changes data
def engine_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--engine", "engine", type=click.Choice(RUNTIMES), default=None,
        help="What reads and changes the data: duckdb (in this process) or spark (spark.master "
             "in the deployment's configuration; default local[2]). Default: the deployment's "
             "engine:, else duckdb.")(fn)


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
            from optout.engine.approvals import ApprovalError
            from optout.scanner.access import AccessDenied, AuthError
            from optout.session import failure

            ctx = click.get_current_context()
            if ctx.find_object(Context) and ctx.find_object(Context).debug:
                raise
            if isinstance(exc, AccessDenied | AuthError | ApprovalError):
                raise Denied(shown(str(exc))) from None
            raise click.ClickException(shown(failure(exc))) from None

    return wrapper


def shown(text: str) -> str:
    """A message as the terminal gets it: no passwords or addresses, no control characters."""
    from optout.model.redaction import printable, redact

    return printable(redact(text))


def session_command(operation: Operation) -> Callable[..., Any]:
    """Decorate a command body `fn(session, ...)`: log the caller in (for `operation`) and
    map errors to exit statuses. The session authorizes and audits each call it makes."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        @click.pass_obj
        @errors_to_exit
        @functools.wraps(fn)
        def wrapper(obj: Context, *args: Any, **kwargs: Any) -> Any:
            params = dict(click.get_current_context().params)
            return fn(obj.login(operation, params), *args, **kwargs)

        return wrapper

    return decorate


#: `--format text|json` of every listing command
format_option = click.option("--format", "fmt", type=click.Choice(["text", "json"]),
                             default="text", show_default=True,
                             help="text for people, json for scripts.")


def say(text: str, err: bool = False) -> None:
    """A line for the person at the terminal (data in it shown as plain text)."""
    from optout.model.redaction import printable

    click.echo(printable(text), err=err)


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, epilog=EXIT_STATUSES)
@click.option("--catalog", envvar="OPTOUT_CATALOG", default=DEFAULT_CATALOG, show_default=True,
              help="Catalog file (DuckDB). Env: OPTOUT_CATALOG.")
@click.option("--config", "config", envvar="OPTOUT_CONFIG", default=None,
              help="Your local config: only scan.sample_rows and scan.seed (default: "
                   "./optout.yaml if present). Env: OPTOUT_CONFIG.")
@click.option("--debug", is_flag=True, envvar="OPTOUT_DEBUG", help="Show tracebacks.")
@click.version_option(package_name="optout")
@click.pass_context
def cli(ctx: click.Context, catalog: str, config: str | None, debug: bool) -> None:
    """optout: find personal data across tables and files, and erase a person from all of it.

    Start with `optout init` (a new catalog) or `optout scan PATH` (with OPTOUT_TOKEN set).
    Shell completion: eval "$(_OPTOUT_COMPLETE=bash_source optout)" (zsh_source, fish_source).
    """
    ctx.obj = Context(catalog, config, debug)
