"""Generate AWX / Automation Controller survey specs from the roles' meta/argument_specs.yml.

    .venv/bin/python awx/surveys.py            # rewrite awx/surveys.generated.yml
    .venv/bin/python awx/surveys.py --check    # exit 1 when it is stale (the unit tests do the same)

Each question of ``gpuinfer_awx_survey_questions`` in awx/config.yml names a role option
(``role.entry_point.option``); its survey type, choices, default and description come from that
option. Questions for secrets are refused: secrets are credentials (awx/config.yml).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

import yaml

AWX_DIR = Path(__file__).resolve().parent
REPO_ROOT = AWX_DIR.parent
CONFIG = AWX_DIR / "config.yml"
GENERATED = AWX_DIR / "surveys.generated.yml"
ROLES = REPO_ROOT / "collections" / "ansible_collections" / "gpuinfer" / "serving" / "roles"

# AWX survey limits for free text when the option gives none.
TEXT_MAX = 1024
SECRET_WORDS = re.compile(r"(token|password|passwd|secret|api_key|apikey|private_key|credential)", re.IGNORECASE)
# A survey variable must be a plain identifier: AWX mishandles dotted names (awx#14848).
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ConfigLoader(yaml.SafeLoader):
    """SafeLoader that reads Ansible's ``!unsafe`` tag as a plain string."""


ConfigLoader.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))


class SurveyError(ValueError):
    pass


class IndentedDumper(yaml.SafeDumper):
    """Indents block sequences under their key (yamllint's and ansible-lint's default style)."""

    def increase_indent(self, flow: bool = False, indentless: bool = False):  # noqa: ARG002
        return super().increase_indent(flow, False)


def load_config(path: Path = CONFIG) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        return yaml.load(fh, Loader=ConfigLoader)  # noqa: S506 - SafeLoader subclass


def load_argument_specs(roles_dir: Path = ROLES) -> dict[str, dict[str, Any]]:
    """{"role.entry_point.option": option spec} for every role."""
    options: dict[str, dict[str, Any]] = {}
    for spec_file in sorted(roles_dir.glob("*/meta/argument_specs.yml")):
        role = spec_file.parent.parent.name
        with open(spec_file, encoding="utf-8") as fh:
            data = yaml.safe_load(fh) or {}
        for entry_point, spec in (data.get("argument_specs") or {}).items():
            for name, option in (spec.get("options") or {}).items():
                options[f"{role}.{entry_point}.{name}"] = option
    return options


def _plain(text: Any) -> str:
    """First sentence of an argument-spec description, ansible-doc markup removed."""
    if isinstance(text, list):
        text = " ".join(str(t) for t in text)
    text = re.sub(r"\b[CIOVEMBU]\(([^)]*)\)", r"\1", str(text or ""))
    text = " ".join(text.split())
    match = re.match(r"(.+?\.)(\s|$)", text)
    return match.group(1) if match else text


def is_secret(variable: str, option: dict[str, Any]) -> bool:
    return bool(option.get("no_log")) or bool(SECRET_WORDS.search(variable))


def question(key: str, entry: dict[str, Any], options: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One AWX survey question for the config entry ``key``."""
    ref = entry.get("spec")
    if ref not in options:
        raise SurveyError(f"survey question {key}: {ref!r} is not an option of any role's meta/argument_specs.yml")
    option = options[ref]
    variable = entry.get("variable", key)
    if not IDENTIFIER.match(variable):
        raise SurveyError(f"survey question {key}: variable {variable!r} is not a plain identifier (awx#14848)")
    if is_secret(variable, option) or is_secret(ref.rsplit(".", 1)[-1], option):
        raise SurveyError(f"survey question {key}: {ref} is a secret; secrets are credentials, never survey answers")

    opt_type = option.get("type", "str")
    choices = option.get("choices")
    default = entry["default"] if "default" in entry else option.get("default")
    out: dict[str, Any] = {
        "question_name": entry.get("question", variable),
        "question_description": entry.get("description") or _plain(option.get("description")),
        "variable": variable,
        "required": default is not None and default != "",
    }
    if choices:
        if opt_type not in ("str", "int"):
            raise SurveyError(f"survey question {key}: choices on a {opt_type} option are not supported")
        out["type"] = "multiplechoice"
        out["choices"] = [str(c) for c in choices]
        out["default"] = "" if default is None else str(default)
        if out["default"] and out["default"] not in out["choices"]:
            raise SurveyError(f"survey question {key}: default {default!r} is not one of {choices}")
    elif opt_type == "bool":
        out["type"] = "multiplechoice"
        out["choices"] = ["true", "false"]
        out["default"] = "" if default is None else str(bool(default)).lower()
    elif opt_type in ("int", "float"):
        out["type"] = "integer" if opt_type == "int" else "float"
        out["min"] = entry.get("min", 0)
        out["max"] = entry.get("max", 2**31 - 1)
        if default is None or default == "":
            out["default"] = ""
        else:
            cast = int if opt_type == "int" else float
            out["default"] = cast(default)
            if not out["min"] <= out["default"] <= out["max"]:
                raise SurveyError(f"survey question {key}: default {default} outside [{out['min']}, {out['max']}]")
    elif opt_type in ("str", "path", "raw"):
        out["type"] = "text"
        out["min"] = 0
        out["max"] = entry.get("max", TEXT_MAX)
        out["default"] = "" if default is None else str(default)
    else:
        raise SurveyError(f"survey question {key}: type {opt_type} of {ref} has no AWX survey type")
    return out


def build_surveys(config: dict[str, Any], options: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """{template or workflow name: AWX survey_spec}."""
    questions = config["gpuinfer_awx_survey_questions"]
    surveys: dict[str, Any] = {}
    for kind, items in (("job template", config["gpuinfer_awx_job_templates"]),
                        ("workflow", config.get("gpuinfer_awx_workflows", []))):
        for item in items:
            keys = item.get("survey") or []
            if not keys:
                continue
            unknown = [k for k in keys if k not in questions]
            if unknown:
                raise SurveyError(f"{kind} {item['name']!r}: unknown survey questions {unknown}")
            spec = [question(k, questions[k], options) for k in keys]
            variables = [q["variable"] for q in spec]
            if len(set(variables)) != len(variables):
                raise SurveyError(f"{kind} {item['name']!r}: a variable is asked twice: {variables}")
            surveys[item["name"]] = {
                "name": item["name"],
                "description": item.get("description", ""),
                "spec": spec,
            }
    return surveys


def render(surveys: dict[str, Any]) -> str:
    header = (
        "---\n"
        "# Generated by awx/surveys.py from the roles' meta/argument_specs.yml and awx/config.yml.\n"
        "# Do not edit: run `.venv/bin/python awx/surveys.py` (make awx-surveys).\n"
    )
    body = yaml.dump({"gpuinfer_awx_surveys": surveys}, Dumper=IndentedDumper, sort_keys=False, width=120,
                     allow_unicode=True)
    return header + body


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when awx/surveys.generated.yml is stale")
    args = parser.parse_args(argv)
    try:
        text = render(build_surveys(load_config(), load_argument_specs()))
    except SurveyError as exc:
        print(f"awx/surveys.py: {exc}", file=sys.stderr)
        return 2
    current = GENERATED.read_text(encoding="utf-8") if GENERATED.is_file() else ""
    if args.check:
        if current != text:
            print("awx/surveys.py: awx/surveys.generated.yml is stale; run .venv/bin/python awx/surveys.py",
                  file=sys.stderr)
            return 1
        return 0
    if current != text:
        GENERATED.write_text(text, encoding="utf-8")
        print(f"awx/surveys.py: wrote {GENERATED.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
