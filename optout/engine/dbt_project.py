"""What a dbt project apply runs is made of: the files dbt reads, their digests, the hooks
that run SQL of the project's own, and the environment dbt is given.

A plan that rebuilds a model with `dbt build` binds the project's content, not only its path:
every file dbt reads (models, macros, tests, snapshots, properties, `dbt_project.yml`,
installed packages, the profile) is recorded with its sha256 when the plan is made, and
checked again right before the build; a change after approval refuses the build, naming the
file. Hooks (`on-run-start`/`on-run-end`, model pre/post hooks) run whatever SQL the project
says, so they are refused unless the deployment's configuration allows them. dbt runs with a
minimal environment: never optout's token or secret.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from optout.connectors.target import file_checksum

#: the files of a project dbt reads (seeds' CSV are data: the erasure itself changes them)
READ_SUFFIXES = (".sql", ".yml", ".yaml", ".py", ".jinja", ".j2", ".md")
#: folders dbt writes or never reads
SKIPPED_DIRS = {"target", "logs", ".git", ".venv", "venv", "node_modules", "__pycache__"}
#: the most files one project may hold (a folder that large is not a dbt project)
MAX_FILES = 20_000
HOOK = re.compile(r"^\s*[+]?(on-run-start|on-run-end|pre[-_]hook|post[-_]hook)\s*:\s*\S"
                  r"|\b(pre_hook|post_hook)\s*=", re.MULTILINE)
#: environment variables dbt keeps (besides DBT_* and the admin's `dbt.env`)
BASE_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "VIRTUAL_ENV",
            "PYTHONHASHSEED")


class ProjectError(Exception):
    """The project cannot be read whole."""


def profiles_file(project: Path, args: list[str]) -> Path | None:
    """The profiles.yml dbt will read: `--profiles-dir` of the args, else the project's own,
    else DBT_PROFILES_DIR's, else ~/.dbt's."""
    dirs = [Path(args[i + 1]) for i, a in enumerate(args[:-1]) if a == "--profiles-dir"]
    dirs += [project]
    if os.environ.get("DBT_PROFILES_DIR"):
        dirs.append(Path(os.environ["DBT_PROFILES_DIR"]))
    dirs.append(Path.home() / ".dbt")
    return next((d / "profiles.yml" for d in dirs if (d / "profiles.yml").is_file()), None)


def project_files(project: Path, args: list[str]) -> dict[str, str]:
    """Every file of the project dbt reads, by path relative to it, with its sha256 (the
    profile under `profiles.yml@<its folder>` when it lives elsewhere)."""
    out: dict[str, str] = {}
    for root, dirs, files in os.walk(project):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)
        for name in sorted(files):
            if not name.endswith(READ_SUFFIXES):
                continue
            path = Path(root) / name
            out[str(path.relative_to(project))] = file_checksum(str(path))
            if len(out) > MAX_FILES:
                raise ProjectError(f"{project}: more than {MAX_FILES} files: not a dbt project")
    profile = profiles_file(project, args)
    if profile is not None and not profile.resolve().is_relative_to(project.resolve()):
        out[f"profiles.yml@{profile.parent}"] = file_checksum(str(profile))
    return out


def changed_files(recorded: dict[str, str], now: dict[str, str]) -> list[str]:
    """Files added, removed or changed since `recorded`, sorted."""
    return sorted(p for p in recorded.keys() | now.keys() if recorded.get(p) != now.get(p))


def hooks(project: Path) -> list[str]:
    """Where the project declares hooks (`file: on-run-start`), from the files dbt reads."""
    found = []
    for rel in project_files(project, []):
        if rel.startswith("profiles.yml@"):
            continue
        text = (project / rel).read_text(encoding="utf-8", errors="replace")
        for m in HOOK.finditer(text):
            found.append(f"{rel}: {m.group(1) or m.group(2)}")
    return found


def dbt_env(extra: list[str]) -> dict[str, str]:
    """The environment dbt runs with: PATH, HOME, locale and time zone, DBT_* and the names
    the deployment's configuration adds (`dbt.env`); never OPTOUT_*."""
    keep = set(BASE_ENV) | set(extra)
    return {k: v for k, v in os.environ.items()
            if (k in keep or k.startswith("DBT_")) and not k.upper().startswith("OPTOUT_")}
