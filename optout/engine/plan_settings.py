"""The configuration a plan was made under, recorded in it (and in its digest) and shown to
approvers: everything of the deployment's configuration that decides what apply does.

Identity links, foreign keys the data lost and resolution bounds decide who the subject is;
dataset tags decide which rule applies; the dbt section is the command apply runs; the Spark
section is where and how Spark runs. Apply refuses a plan whose recorded settings differ from
the configuration in force, naming the sections that changed.
"""

from __future__ import annotations

from typing import Any

from optout.engine import EngineError
from optout.scanner.config import Config

#: the sections of the configuration that decide what a plan does and what apply runs
SECTIONS = ("identity", "datasets", "dbt", "spark")


class SettingsChanged(EngineError):
    """The configuration in force is not the one the plan was made and approved under."""


def plan_settings(config: Config, accept_ambiguous: bool) -> dict[str, Any]:
    """What the plan records of the configuration, and whether widening was accepted."""
    dumped = config.model_dump(mode="json")
    return {**{s: dumped[s] for s in SECTIONS}, "accept_ambiguous": accept_ambiguous}


def check_settings(recorded: dict[str, Any], config: Config) -> None:
    """Refuse when the configuration in force differs from what the plan recorded."""
    if not recorded:
        raise SettingsChanged("the plan records no configuration (made by an older optout): "
                              "plan again")
    now = plan_settings(config, bool(recorded.get("accept_ambiguous")))
    changed = [s for s in SECTIONS if recorded.get(s) != now[s]]
    if changed:
        raise SettingsChanged(
            f"the deployment's configuration changed since the plan was made and approved "
            f"({', '.join(changed)}): refused; plan again under the configuration in force")


def settings_lines(recorded: dict[str, Any]) -> list[str]:
    """The recorded settings an approver must see, one line each."""
    if not recorded:
        return ["no configuration recorded (an older plan)"]
    identity, dbt, spark = recorded["identity"], recorded["dbt"], recorded["spark"]
    lines = [f"resolution bounds: max_keys {identity['max_keys']}, max_emails "
             f"{identity['max_emails']}, max_phones {identity['max_phones']}"]
    if recorded.get("accept_ambiguous"):
        lines.append("ACCEPTS AMBIGUOUS SUBJECTS (--accept-ambiguous): subjects the bounds "
                     "would stop are planned")
    for kind in ("links", "references", "reject"):
        lines += [f"identity {kind[:-1] if kind != 'reject' else 'rejected link'}: "
                  f"{' = '.join(x['columns'])}" for x in identity[kind]]
    if dbt["rebuild"] == "command":
        lines.append(f"dbt rebuild runs: {' '.join(dbt['command'])} build --select MODEL "
                     f"{' '.join(dbt['args'])}".rstrip())
        lines.append(f"dbt hooks: {'allowed' if dbt['allow_hooks'] else 'refused'}; dbt "
                     f"environment adds: {', '.join(dbt['env']) or 'nothing'}")
    else:
        lines.append("dbt models: rebuilt from their compiled SQL inside the atomic unit")
    lines.append(f"spark: master {spark['master']}"
                 + "".join(f", {k}={v}" for k, v in sorted(spark["conf"].items())))
    lines += [f"dataset {name}: tags {', '.join(d['tags'])}"
              for name, d in sorted(recorded["datasets"].items())]
    return lines
