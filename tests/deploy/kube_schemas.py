"""Strict schema checks for rendered objects: Kubernetes' own OpenAPI schemas (the data of
kubernetes-validate, strict: unknown fields are errors) for built-in kinds, and the
openAPIV3Schema of the published CRDs (crds/, see SOURCES.md) for custom resources. A CRD's
schema is made strict the way the API server's field validation is: an object that lists its
properties accepts no others unless it says it preserves unknown fields. CEL rules
(x-kubernetes-validations) are not evaluated."""

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import referencing
import yaml
from kubernetes_validate import utils

KUBE_VERSIONS = ("1.33", "1.34", "1.35", "1.36")
CRDS = Path(__file__).parent / "crds"
CUSTOM_KINDS = {"ScaledObject", "ServiceMonitor", "PrometheusRule"}
Validators = dict[tuple[str, str], jsonschema.protocols.Validator]


def _strict(node: Any) -> Any:
    if isinstance(node, list):
        return [_strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    strict = {key: _strict(value) for key, value in node.items()}
    closed = "properties" in node and "additionalProperties" not in node
    if closed and not node.get("x-kubernetes-preserve-unknown-fields"):
        strict["additionalProperties"] = False
    return strict


def crd_validators() -> Validators:
    """(apiVersion, kind) -> a validator of that custom resource's served schema."""
    validators: Validators = {}
    for path in sorted(CRDS.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schema = _strict(version["schema"]["openAPIV3Schema"])
            validators[(f"{group}/{version['name']}", kind)] = jsonschema.Draft7Validator(schema)
    return validators


def custom_errors(obj: dict[str, Any], validators: Validators) -> list[str]:
    validator = validators.get((obj["apiVersion"], obj["kind"]))
    if validator is None:
        return [f"no CRD kept for {obj['apiVersion']} {obj['kind']}"]
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(obj)]


class BuiltinSchemas:
    """Kubernetes' strict schemas from kubernetes-validate's data, each file read once (the
    package's own validate() re-reads megabytes of definitions on every call)."""

    def __init__(self) -> None:
        self._definitions: dict[str, referencing.Registry[Any]] = {}
        self._validators: dict[tuple[str, str, str], jsonschema.protocols.Validator] = {}

    def _folder(self, version: str) -> str:
        full = [v for v in utils.all_versions() if utils.major_minor(v) == version][-1]
        return f"kubernetes-json-schema/v{full}-local-strict"

    def _registry(self, version: str) -> "referencing.Registry[Any]":
        if version not in self._definitions:
            path = f"{self._folder(version)}/_definitions.json"
            resource = referencing.Resource.from_contents(utils.schema_contents(path, version))
            self._definitions[version] = resource @ referencing.Registry()
        return self._definitions[version]

    def validator(self, obj: dict[str, Any], version: str) -> jsonschema.protocols.Validator:
        key = (version, obj["apiVersion"], obj["kind"])
        if key not in self._validators:
            group = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", obj["apiVersion"])
            path = f"{self._folder(version)}/{obj['kind'].lower()}-{group}.json"
            schema = utils.schema_contents(path, version)
            registry = referencing.Resource.from_contents(schema) @ self._registry(version)
            self._validators[key] = jsonschema.Draft202012Validator(schema, registry=registry)
        return self._validators[key]

    def errors(self, obj: dict[str, Any]) -> list[str]:
        return [
            f"{version} {list(e.absolute_path)}: {e.message}"
            for version in KUBE_VERSIONS
            for e in self.validator(obj, version).iter_errors(obj)
        ]


@dataclass
class Checker:
    """Both kinds of check behind one call."""

    builtin: BuiltinSchemas = field(default_factory=BuiltinSchemas)
    custom: Validators = field(default_factory=crd_validators)

    def errors(self, obj: dict[str, Any]) -> list[str]:
        """Everything wrong with `obj` on any supported Kubernetes version (empty: valid)."""
        if obj["kind"] in CUSTOM_KINDS:
            return custom_errors(obj, self.custom)
        return self.builtin.errors(obj)
