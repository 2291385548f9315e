"""Lint and render a Helm chart offline with Helm's own Go SDK, without the helm binary.

The `helm-python-sdk` wheel (requirements/deploy-check.txt) carries Helm v4's SDK compiled as a C
library; this calls its lint (`helm lint --strict`) and its template rendering (`helm template`)
and prints the rendered objects as one multi-document YAML stream, like `helm template` does.

    python scripts/render_chart.py deploy/helm/facet \
        --values deploy/helm/facet/ci/default-values.yaml

Exit status 1 (and the reason on stderr) when the chart does not lint cleanly or does not render.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import helm_python as helm
import yaml

WARNING = 2  # helm lint's severities: 1 info, 2 warning, 3 error
HEADER = (
    "# Rendered by scripts/render_chart.py (Helm's Go SDK). The copy in deploy/helm/rendered/\n"
    "# is what tests/unit/test_deploy_files.py reads; scripts/check_deploy.sh fails when it is\n"
    "# stale.\n"
)


def merged_values(files: list[Path]) -> dict[str, Any]:
    """The values files merged in order, later keys winning, as `helm -f a -f b` does."""
    merged: dict[str, Any] = {}
    for path in files:
        _merge(merged, yaml.safe_load(path.read_text()) or {})
    return merged


def _merge(into: dict[str, Any], update: dict[str, Any]) -> None:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def lint_problems(chart: Path, values: dict[str, Any], kube_version: str) -> list[str]:
    report = helm.lint(chart, values, strict=True, kube_version=kube_version)
    problems = [
        f"{m['path']}: {m['error']}" for m in report["messages"] if m["severity"] >= WARNING
    ]
    return problems + list(report.get("errors") or [])


def render(chart: Path, values: dict[str, Any], release: str, namespace: str) -> str:
    with helm.Chart.load(chart) as loaded:
        manifests = loaded.render(values, name=release, namespace=namespace, is_install=True)
    documents = []
    for source in sorted(manifests):
        text = manifests[source].strip()
        if text and not source.endswith("NOTES.txt"):
            documents.append(f"# Source: {source}\n{text}\n")
    return HEADER + "---\n" + "---\n".join(documents)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("chart", type=Path)
    parser.add_argument("--values", type=Path, action="append", default=[])
    parser.add_argument("--release", default="facet")
    parser.add_argument("--namespace", default="facet")
    parser.add_argument("--kube-version", default="v1.30.0")
    parser.add_argument("--no-lint", action="store_true")
    args = parser.parse_args(argv)
    values = merged_values(args.values)
    try:
        if not args.no_lint:
            problems = lint_problems(args.chart, values, args.kube_version)
            if problems:
                sys.stderr.write("helm lint --strict:\n  " + "\n  ".join(problems) + "\n")
                return 1
        sys.stdout.write(render(args.chart, values, args.release, args.namespace))
    except helm.HelmError as error:
        sys.stderr.write(f"helm: {error}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
