"""What a dbt project folder holds: its `dbt_project.yml`, its manifest (schema v12, dbt Core
1.8+), which of its folders are what dbt wrote (never data) and which seed files it loads.
The scanner reads lineage and declared keys from these (optout/scanner/dbt.py); the folder
walk leaves out what is not the project's data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from optout.model.errors import ConfigError
from optout.model.yamlfile import read_bounded, refuse_aliases

PROJECT_FILE = "dbt_project.yml"
MANIFEST = "manifest.json"
#: the largest manifest read (real projects' manifests run to tens of MB)
MAX_MANIFEST = 512 << 20
BUILT = ("model", "seed", "snapshot")


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class Project(_Loose):
    """The parts of `dbt_project.yml` optout reads."""

    name: str = ""
    target_path: str = Field("target", alias="target-path")
    packages_install_path: str = Field("dbt_packages", alias="packages-install-path")
    log_path: str = Field("logs", alias="log-path")
    seed_paths: list[str] = Field(default_factory=lambda: ["seeds"], alias="seed-paths")


class Column(_Loose):
    name: str = ""
    meta: dict[str, Any] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)


class NodeConfig(_Loose):
    materialized: str | None = None


class DependsOn(_Loose):
    nodes: list[str] = Field(default_factory=list)


class TestMetadata(_Loose):
    name: str = ""
    namespace: str | None = None
    kwargs: dict[str, Any] = Field(default_factory=dict)


class Node(_Loose):
    """A model, seed, snapshot or source of the manifest."""

    unique_id: str
    resource_type: str
    name: str
    relation_name: str | None = None
    config: NodeConfig = Field(default_factory=NodeConfig)
    depends_on: DependsOn = Field(default_factory=DependsOn)
    compiled_code: str | None = None
    original_file_path: str | None = None
    package_name: str | None = None
    columns: dict[str, Column] = Field(default_factory=dict)
    test_metadata: TestMetadata | None = None
    attached_node: str | None = None
    column_name: str | None = None

    @property
    def materialized(self) -> str:
        return self.config.materialized or ("seed" if self.resource_type == "seed" else "")


class Metadata(_Loose):
    dbt_schema_version: str = ""
    adapter_type: str | None = None


class Manifest(_Loose):
    metadata: Metadata = Field(default_factory=Metadata)
    nodes: dict[str, Node] = Field(default_factory=dict)
    sources: dict[str, Node] = Field(default_factory=dict)

    def node(self, unique_id: str) -> Node | None:
        return self.nodes.get(unique_id) or self.sources.get(unique_id)


def project_of(folder: Path) -> Project | None:
    """The dbt project whose root is `folder`, or None."""
    path = folder / PROJECT_FILE
    if not path.is_file():
        return None
    text = read_bounded(path, ConfigError, "dbt project file")
    try:
        refuse_aliases(text)
        data = yaml.safe_load(text) or {}
        return Project.model_validate(data if isinstance(data, dict) else {})
    except (yaml.YAMLError, ValidationError) as exc:
        raise ConfigError(f"{path}: not a dbt project file ({str(exc).splitlines()[0]})") from exc


def artifact_dirs(folder: Path) -> set[str]:
    """Folders of a dbt project root that hold what dbt wrote (compiled SQL, manifests,
    installed packages, logs): never datasets to scan."""
    try:
        project = project_of(folder)
    except ConfigError:
        project = Project()
    if project is None:
        return set()
    return {project.target_path.strip("/"), project.packages_install_path.strip("/"),
            project.log_path.strip("/")}


def unloaded_seeds(folder: Path) -> set[Path]:
    """CSV files under a dbt project's seed paths that its manifest loads into no table (a
    disabled seed, another warehouse's variant): not this project's warehouse data. Empty
    when the project has no manifest (nothing tells which seeds load)."""
    try:
        project = project_of(folder)
        manifest = read_manifest(folder / project.target_path / MANIFEST) if project else None
    except ConfigError:
        return set()
    if project is None or manifest is None:
        return set()
    loaded = {(folder / (n.original_file_path or "")).resolve()
              for n in manifest.nodes.values() if n.resource_type == "seed"}
    files = {p.resolve() for d in project.seed_paths for p in (folder / d).rglob("*.csv")}
    return files - loaded


def find_projects(folder: Path) -> list[Path]:
    """dbt project roots at or below a folder (not inside another project's artifacts)."""
    return sorted(p.parent for p in folder.rglob(PROJECT_FILE)
                  if not any(part.startswith((".", "_")) for part in p.relative_to(folder).parts)
                  and not any(d in ("target", "dbt_packages") for d in p.parent.parts[
                      len(folder.parts):]))


def manifest_of(path: Path) -> Path:
    """The manifest of a project folder (its target path), or the manifest file given."""
    if path.is_dir():
        project = project_of(path)
        if project is None:
            raise ConfigError(f"{path}: not a dbt project (no {PROJECT_FILE}) and not a "
                              "manifest file")
        manifest = path / project.target_path / MANIFEST
        if not manifest.is_file():
            raise ConfigError(f"{path}: no {project.target_path}/{MANIFEST}: run `dbt build` "
                              "(or `dbt compile`) first")
        return manifest
    return path


def read_manifest(path: Path) -> Manifest:
    """A manifest file, validated (a file that is not one is a one-line error)."""
    try:
        if path.stat().st_size > MAX_MANIFEST:
            raise ConfigError(f"{path}: larger than {MAX_MANIFEST >> 20} MiB")
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: not a readable dbt manifest ({exc})") from exc
    if not isinstance(data, dict) or "nodes" not in data or "metadata" not in data:
        raise ConfigError(f"{path}: not a dbt manifest (no 'metadata' and 'nodes')")
    try:
        manifest = Manifest.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ConfigError(f"{path}: not a dbt manifest: {'.'.join(map(str, err['loc']))}: "
                          f"{err['msg']}") from exc
    version = manifest.metadata.dbt_schema_version.rsplit("/", 1)[-1]
    if version and version[:1] == "v" and version[1:].split(".")[0].isdigit() and \
            int(version[1:].split(".")[0]) < 10:
        raise ConfigError(f"{path}: manifest {version} (dbt Core before 1.6); optout reads "
                          "v10 and later")
    return manifest
