"""Check a KServe InferenceService offline, field by field, with no cluster and no CRD download.

KServe's Python SDK wheel carries one generated model class per API type (`kserve/models/`),
each listing its fields' JSON names (`attribute_map`) and types (`openapi_types`). The wheel's
source is read, never imported (importing kserve pulls in its whole model server). Fields typed
with KServe's own classes (V1beta1…, V1alpha1…) are walked here; fields typed with Kubernetes
classes (V1Toleration, V1ResourceRequirements, V1ObjectMeta, …) are checked against the strict
Kubernetes JSON schemas that the kubernetes-validate package ships.

    python scripts/validate_kserve.py --kserve-wheel kserve-0.21.0-py3-none-any.whl \
        --kubernetes-version 1.30.0 deploy/kserve/inferenceservice.yaml

Exit status 1 and one line per problem when a manifest has an unknown field or a wrong type.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml
from referencing import Registry, Resource

KSERVE_PREFIX = re.compile(r"^V1(alpha|beta)\d+[A-Z]")
KINDS = {("serving.kserve.io/v1beta1", "InferenceService"): "V1beta1InferenceService"}
SCALARS: dict[str, type | tuple[type, ...]] = {
    "str": str,
    "int": int,
    "bool": bool,
    "float": (int, float),
}


@dataclass(frozen=True)
class ModelClass:
    types: dict[str, str]  # python attribute → type expression
    json_names: dict[str, str]  # python attribute → JSON field


def read_kserve_models(wheel: Path) -> dict[str, ModelClass]:
    """Every generated class in the wheel's kserve/models/, read from its source."""
    classes: dict[str, ModelClass] = {}
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            if name.startswith("kserve/models/") and name.endswith(".py"):
                tree = ast.parse(archive.read(name).decode())
                for node in tree.body:
                    if isinstance(node, ast.ClassDef):
                        found = _class_tables(node)
                        if found is not None:
                            classes[node.name] = found
    if not classes:
        raise SystemExit(f"{wheel}: no kserve/models/ classes found")
    return classes


def _class_tables(node: ast.ClassDef) -> ModelClass | None:
    tables: dict[str, dict[str, str]] = {}
    for item in node.body:
        if isinstance(item, ast.Assign) and len(item.targets) == 1:
            target = item.targets[0]
            if isinstance(target, ast.Name) and target.id in ("openapi_types", "attribute_map"):
                tables[target.id] = ast.literal_eval(item.value)
    if set(tables) != {"openapi_types", "attribute_map"}:
        return None
    return ModelClass(tables["openapi_types"], tables["attribute_map"])


class KubernetesTypes:
    """The strict JSON schemas of Kubernetes' own types, from kubernetes-validate's package."""

    def __init__(self, version: str) -> None:
        root = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
        folder = root / f"v{version}-local-strict"
        if not folder.is_dir():
            known = sorted(p.name for p in root.iterdir() if p.name.endswith("-strict"))
            raise SystemExit(f"no strict schemas for Kubernetes {version}; the package has {known}")
        document = json.loads((folder / "_definitions.json").read_text())
        self.base = document["$id"]
        self.names = list(document["$defs"])
        self.registry: Registry = Resource.from_contents(document) @ Registry()

    def check(self, type_name: str, value: Any, where: str) -> Iterator[str]:
        short = type_name.removeprefix("V1")
        candidates = [n for n in self.names if n.endswith(f".v1.{short}")]
        if not candidates:
            yield f"{where}: no Kubernetes schema for {type_name}"
            return
        schema = {"$ref": f"{self.base}#/$defs/{candidates[0]}"}
        validator = jsonschema.Draft202012Validator(schema, registry=self.registry)
        for error in validator.iter_errors(value):
            path = "".join(f".{p}" if isinstance(p, str) else f"[{p}]" for p in error.path)
            yield f"{where}{path}: {error.message}"


class Checker:
    def __init__(self, models: dict[str, ModelClass], kubernetes: KubernetesTypes) -> None:
        self.models = models
        self.kubernetes = kubernetes

    def check(self, type_name: str, value: Any, where: str) -> Iterator[str]:
        if type_name.startswith("list[") and type_name.endswith("]"):
            yield from self._sequence(type_name[5:-1], value, where)
        elif type_name.startswith("dict("):
            yield from self._mapping(type_name[5:-1].split(",", 1)[1].strip(), value, where)
        elif type_name in SCALARS:
            if not isinstance(value, SCALARS[type_name]) or (
                type_name != "bool" and isinstance(value, bool)
            ):
                yield f"{where}: {value!r} is not a {type_name}"
        elif type_name == "object":
            return
        elif KSERVE_PREFIX.match(type_name):
            yield from self._kserve(type_name, value, where)
        else:
            yield from self.kubernetes.check(type_name, value, where)

    def _sequence(self, item_type: str, value: Any, where: str) -> Iterator[str]:
        if not isinstance(value, list):
            yield f"{where}: expected a list"
            return
        for index, item in enumerate(value):
            yield from self.check(item_type, item, f"{where}[{index}]")

    def _mapping(self, value_type: str, value: Any, where: str) -> Iterator[str]:
        if not isinstance(value, dict):
            yield f"{where}: expected a mapping"
            return
        for key, item in value.items():
            yield from self.check(value_type, item, f"{where}.{key}")

    def _kserve(self, type_name: str, value: Any, where: str) -> Iterator[str]:
        model = self.models.get(type_name)
        if model is None:
            yield f"{where}: the wheel has no class {type_name}"
            return
        if not isinstance(value, dict):
            yield f"{where}: expected a mapping ({type_name})"
            return
        by_json = {json_name: attr for attr, json_name in model.json_names.items()}
        for key, item in value.items():
            attribute = by_json.get(key)
            if attribute is None:
                yield f"{where}.{key}: not a field of {type_name}"
            else:
                yield from self.check(model.types[attribute], item, f"{where}.{key}")


def check_file(path: Path, checker: Checker) -> list[str]:
    problems = []
    for index, document in enumerate(yaml.safe_load_all(path.read_text())):
        if document is None:
            continue
        key = (document.get("apiVersion"), document.get("kind"))
        root = KINDS.get(key)
        label = f"{path}#{index} {key[1]}"
        if root is None:
            problems.append(f"{label}: not a kind this check knows ({key[0]})")
            continue
        problems += list(checker.check(root, document, label))
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kserve-wheel", type=Path, required=True)
    parser.add_argument("--kubernetes-version", default="1.30.0")
    parser.add_argument("manifests", type=Path, nargs="+")
    args = parser.parse_args(argv)
    checker = Checker(
        read_kserve_models(args.kserve_wheel), KubernetesTypes(args.kubernetes_version)
    )
    failed = False
    for path in args.manifests:
        problems = check_file(path, checker)
        for problem in problems:
            sys.stdout.write(f"ERROR {problem}\n")
        verdict = "FAILED" if problems else "OK"
        sys.stdout.write(f"{verdict} {path} (KServe {args.kserve_wheel.name})\n")
        failed = failed or bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
