"""The deployment files keep their promises: docker-compose.yml, the Dockerfiles, the Helm
chart (as rendered into deploy/helm/rendered/ by scripts/render_chart.py; scripts/check_deploy.sh
fails when that copy is stale) and the KServe InferenceService. Parsed with PyYAML only: no
Docker, Helm or cluster is needed."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from gateway.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
CHART = DEPLOY / "helm" / "facet"
RENDERED = DEPLOY / "helm" / "rendered" / "facet-default.yaml"
ONE_SHOT_STEPS = {"export", "trt-plans"}
EXPORTER_PACKAGES = {"torch", "torchvision", "onnx", "onnxruntime", "ncnn", "transformers"}
GPU_CONFIGS = {"gpu_trt_plan", "gpu_ort_trt"}


@cache
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def service(name: str) -> dict[str, Any]:
    services: dict[str, Any] = compose()["services"]
    return services[name]


@cache
def rendered_objects() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(RENDERED.read_text()) if d]


def rendered(kind: str, component: str) -> dict[str, Any]:
    for item in rendered_objects():
        labels = item["metadata"].get("labels", {})
        if item["kind"] == kind and labels.get("app.kubernetes.io/component") == component:
            return item
    raise AssertionError(f"the rendered chart has no {kind} for {component}")


def container(component: str) -> dict[str, Any]:
    pod = rendered("Deployment", component)["spec"]["template"]["spec"]
    (only,) = pod["containers"]
    return dict(only)


def port_number(spec: dict[str, Any], name: str) -> int:
    return next(p["containerPort"] for p in spec["ports"] if p["name"] == name)


def instructions(dockerfile: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the final stage, continuation lines joined."""
    text = (DEPLOY / dockerfile).read_text().replace("\\\n", " ")
    steps = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            steps.append((word.upper(), rest.strip()))
    start = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[start:]


def arguments(dockerfile: str, instruction: str) -> list[str]:
    return [args for word, args in instructions(dockerfile) if word == instruction]


def imported_local_packages(package: str) -> set[str]:
    """Top-level packages of this repository that the code under `package` imports."""
    local = {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()}
    found: set[str] = set()
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    return found & local


def copied_paths(dockerfile: str) -> set[str]:
    sources: set[str] = set()
    for args in arguments(dockerfile, "COPY"):
        words = [w for w in args.split() if not w.startswith("--")]
        sources.update(w.strip("/").split("/")[0] for w in words[:-1])
    return sources


def pinned_packages(requirements: Path) -> Iterator[str]:
    for line in requirements.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("-r "):
            yield from pinned_packages(requirements.parent / line[3:].strip())
        elif line:
            yield re.split(r"[=<>~!\[ ]", line, maxsplit=1)[0].lower()


def seconds(duration: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)([smh])", duration))


# docker-compose.yml


def test_triton_publishes_no_port_outside_the_inference_network() -> None:
    triton = service("triton")

    assert "ports" not in triton
    assert triton["networks"] == ["inference"]
    assert compose()["networks"]["inference"]["internal"] is True


def test_the_trt_plans_step_reaches_no_network_but_the_internal_one() -> None:
    assert service("trt-plans")["networks"] == ["inference"]


def test_postgres_and_redis_sit_on_an_internal_network_only() -> None:
    for name in ("postgres", "redis"):
        (network,) = service(name)["networks"]
        assert compose()["networks"][network]["internal"] is True
        assert "ports" not in service(name)


def test_gateway_is_published_on_the_loopback_address_by_default() -> None:
    (published,) = service("gateway")["ports"]

    assert published.startswith("${FACET_GATEWAY_BIND:-127.0.0.1}:")
    assert published.endswith(":8000")


def test_every_long_running_service_restarts_and_the_one_shot_steps_do_not() -> None:
    for name, spec in compose()["services"].items():
        if name in ONE_SHOT_STEPS:
            assert spec.get("restart", "no") == "no", name
        else:
            assert spec.get("restart") in ("unless-stopped", "always"), name


def test_every_long_running_service_has_a_healthcheck() -> None:
    for name, spec in compose()["services"].items():
        if name in ONE_SHOT_STEPS:
            continue
        built_from = spec.get("build", {}).get("dockerfile")
        if "healthcheck" not in spec:
            assert built_from, f"{name} has no healthcheck"
            assert arguments(Path(built_from).name, "HEALTHCHECK"), name


def test_triton_healthcheck_asks_for_readiness_and_waits_out_engine_builds() -> None:
    check = service("triton")["healthcheck"]

    assert any("/v2/health/ready" in part for part in check["test"])
    assert ":8000/" in " ".join(check["test"])
    assert "--http-port=8000" in service("triton")["command"]
    assert seconds(check["start_period"]) >= 300


def test_triton_serves_the_gpu_config_named_by_facet_triton_config() -> None:
    command = service("triton")["command"]
    (option,) = [c for c in command if c.startswith("--model-config-name=")]
    default = re.fullmatch(r"--model-config-name=\$\{FACET_TRITON_CONFIG:-(\w+)\}", option)

    assert default is not None and default.group(1) in GPU_CONFIGS
    for configs in (ROOT / "model_repository").glob("*/configs"):
        assert (configs / f"{default.group(1)}.pbtxt").is_file(), configs.parent.name


def test_triton_runs_the_image_built_from_its_dockerfile_on_the_ngc_base() -> None:
    triton = service("triton")
    (base,) = arguments("triton.Dockerfile", "FROM")

    assert triton["build"] == {"context": ".", "dockerfile": "deploy/triton.Dockerfile"}
    assert triton["image"] == "${FACET_TRITON_IMAGE:-facet/triton:0.1.0}"
    assert base == service("trt-plans")["image"]  # the plans are built on the TensorRT it serves
    assert base.startswith("nvcr.io/nvidia/tritonserver:") and base.endswith("-py3")


def test_triton_image_installs_tokenizers_at_the_serving_pin() -> None:
    runs = " ".join(arguments("triton.Dockerfile", "RUN"))
    pins = {
        line.split("#")[0].strip()
        for line in (ROOT / "requirements" / "serving.txt").read_text().splitlines()
    }
    installed = set(re.findall(r"\b[\w.-]+==[\w.]+", runs))

    assert "tokenizers==0.23.3" in installed
    assert installed <= pins, "every package the image adds is pinned as requirements/serving.txt"
    assert "--no-cache-dir" in runs


def test_the_plan_builder_runs_the_stdlib_only_build_from_the_read_only_checkout() -> None:
    plans = service("trt-plans")
    command = plans["command"]

    assert command[:3] == ["python3", "-m", "export.trt_build"]
    assert "--repository=/models" in command
    (cache,) = [c.split("=", 1)[1] for c in command if c.startswith("--timing-cache=")]
    assert any(v.endswith(f":{cache}") and not v.startswith((".", "/")) for v in plans["volumes"])
    assert ".:/src:ro" in plans["volumes"] and plans["environment"]["PYTHONPATH"] == "/src"
    assert (ROOT / "export" / "trt_build.py").is_file()


def test_triton_and_the_plan_builder_reserve_a_gpu() -> None:
    for name in ("triton", "trt-plans"):
        (device,) = service(name)["deploy"]["resources"]["reservations"]["devices"]
        assert device["capabilities"] == ["gpu"], name


def test_the_steps_run_in_order_export_then_plans_then_triton_then_the_gateway() -> None:
    assert service("trt-plans")["depends_on"] == {
        "export": {"condition": "service_completed_successfully"}
    }
    assert service("triton")["depends_on"] == {
        "trt-plans": {"condition": "service_completed_successfully"}
    }
    assert service("gateway")["depends_on"] == {
        name: {"condition": "service_healthy"} for name in ("triton", "postgres", "redis")
    }


def test_the_api_token_and_database_password_must_be_set_to_start() -> None:
    gateway, postgres = service("gateway")["environment"], service("postgres")["environment"]

    assert gateway["FACET_API_TOKEN"].startswith("${FACET_API_TOKEN:?")
    assert "${FACET_POSTGRES_PASSWORD:?" in gateway["FACET_POSTGRES_URL"]
    assert postgres["POSTGRES_PASSWORD"].startswith("${FACET_POSTGRES_PASSWORD:?")


def test_gateway_variables_in_compose_are_settings_the_gateway_reads() -> None:
    fields = {f"FACET_{name.upper()}" for name in Settings.model_fields}

    assert set(service("gateway")["environment"]) <= fields
    assert service("gateway")["environment"]["FACET_TRITON_GRPC_URL"] == "triton:8001"


# The Dockerfiles


def test_gateway_image_runs_as_a_non_root_user() -> None:
    user = arguments("gateway.Dockerfile", "USER")[-1]

    assert user.split(":")[0] not in ("root", "0")


def test_export_image_runs_as_a_non_root_user() -> None:
    user = arguments("export.Dockerfile", "USER")[-1]

    assert user.split(":")[0] not in ("root", "0")


def test_gateway_image_installs_no_torch() -> None:
    runs = " ".join(arguments("gateway.Dockerfile", "RUN"))
    copied = " ".join(arguments("gateway.Dockerfile", "COPY"))

    assert "requirements/gateway.txt" in copied
    assert not re.search(r"\b(torch|onnx|requirements/export)", runs + copied)
    assert not EXPORTER_PACKAGES & set(pinned_packages(ROOT / "requirements" / "gateway.txt"))


def test_gateway_image_copies_every_local_package_the_gateway_imports() -> None:
    needed = imported_local_packages("gateway") | imported_local_packages("triton_core")

    assert needed <= copied_paths("gateway.Dockerfile")
    assert "export" not in copied_paths("gateway.Dockerfile")


def test_export_image_copies_every_local_package_the_exporter_imports() -> None:
    assert imported_local_packages("export") <= copied_paths("export.Dockerfile")


def test_gateway_image_binds_every_interface_and_checks_its_health_route() -> None:
    env = " ".join(arguments("gateway.Dockerfile", "ENV"))
    (healthcheck,) = arguments("gateway.Dockerfile", "HEALTHCHECK")

    assert "FACET_HOST=0.0.0.0" in env
    assert arguments("gateway.Dockerfile", "EXPOSE") == ["8000"]
    assert "/health" in healthcheck and "8000" in healthcheck
    assert arguments("gateway.Dockerfile", "CMD") == ['["python", "-m", "gateway"]']


def test_export_image_builds_the_whole_repository_into_a_volume() -> None:
    entrypoint = (DEPLOY / "export-entrypoint.sh").read_text()

    assert arguments("export.Dockerfile", "CMD") == ['["all"]']
    assert "FACET_REPOSITORY=/models" in " ".join(arguments("export.Dockerfile", "ENV"))
    assert 'exec python -m export "$@"' in entrypoint
    assert "/app/model_repository/." in entrypoint  # configs, ensembles, BLS sources first


def test_build_context_leaves_generated_model_files_out() -> None:
    ignored = (ROOT / ".dockerignore").read_text().splitlines()

    assert "model_repository/*/[0-9]*/*" in ignored
    assert "model_repository/*/manifest.json" in ignored
    assert ignored.index("*") < ignored.index("!gateway/")  # an allowlist: .venv, run/ stay out


# The Helm chart


def test_rendered_chart_has_every_template_of_the_chart() -> None:
    text = RENDERED.read_text()

    for template in (CHART / "templates").glob("*.yaml"):
        assert f"# Source: facet/templates/{template.name}" in text, template.name


def test_triton_service_is_reachable_inside_the_cluster_only() -> None:
    spec = rendered("Service", "triton")["spec"]

    assert spec["type"] == "ClusterIP"
    assert all("nodePort" not in p for p in spec["ports"])


def test_triton_probes_ask_tritons_health_endpoints_on_its_http_port() -> None:
    triton = container("triton")
    http = port_number(triton, "http")

    assert f"--http-port={http}" in triton["args"]
    assert triton["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
    assert triton["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": "http"}
    assert triton["startupProbe"]["httpGet"]["port"] == "http"


def test_triton_startup_probe_waits_at_least_five_minutes_for_engine_builds() -> None:
    startup = container("triton")["startupProbe"]

    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300


def test_triton_pods_get_a_gpu_and_land_on_gpu_nodes() -> None:
    pod = rendered("Deployment", "triton")["spec"]["template"]["spec"]

    assert int(container("triton")["resources"]["limits"]["nvidia.com/gpu"]) >= 1
    assert pod["nodeSelector"]
    assert any(f"--model-config-name={name}" in container("triton")["args"] for name in GPU_CONFIGS)


def test_triton_reads_the_model_repository_read_only() -> None:
    (mount,) = [m for m in container("triton")["volumeMounts"] if m["mountPath"] == "/models"]

    assert mount["readOnly"] is True


def test_gateway_probes_point_at_its_http_port() -> None:
    gateway = container("gateway")
    env = {e["name"]: e.get("value") for e in gateway["env"]}

    assert str(port_number(gateway, "http")) == env["FACET_PORT"]
    assert gateway["readinessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    # Not /health: it answers 503 whenever Triton is down, and a restart mends nothing then.
    assert gateway["livenessProbe"]["httpGet"] == {"path": "/openapi.json", "port": "http"}


def test_gateway_reaches_triton_through_its_service_grpc_port() -> None:
    env = {e["name"]: e.get("value") for e in container("gateway")["env"]}
    triton = rendered("Service", "triton")
    grpc = next(p["port"] for p in triton["spec"]["ports"] if p["name"] == "grpc")

    assert env["FACET_TRITON_GRPC_URL"] == f"{triton['metadata']['name']}:{grpc}"


def test_gateway_reads_its_token_and_database_url_from_a_secret() -> None:
    gateway = container("gateway")
    (source,) = gateway["envFrom"]
    secret = rendered("Secret", "gateway")

    assert source["secretRef"]["name"] == secret["metadata"]["name"]
    assert {"FACET_API_TOKEN", "FACET_POSTGRES_URL"} <= set(secret["stringData"])
    assert not {"FACET_API_TOKEN", "FACET_POSTGRES_URL"} & {e["name"] for e in gateway["env"]}


def test_gateway_settings_in_the_chart_are_settings_the_gateway_reads() -> None:
    fields = {f"FACET_{name.upper()}" for name in Settings.model_fields}

    assert {e["name"] for e in container("gateway")["env"]} <= fields
    assert set(rendered("Secret", "gateway")["stringData"]) <= fields


def test_gateway_pods_run_as_the_images_non_root_user() -> None:
    pod = rendered("Deployment", "gateway")["spec"]["template"]["spec"]
    uid = arguments("gateway.Dockerfile", "USER")[-1].split(":")[0]

    assert pod["securityContext"]["runAsNonRoot"] is True
    assert str(pod["securityContext"]["runAsUser"]) == uid


def test_triton_autoscaler_scales_the_triton_deployment_on_its_queue_time() -> None:
    hpa = rendered("HorizontalPodAutoscaler", "triton")["spec"]
    (metric,) = hpa["metrics"]

    assert hpa["scaleTargetRef"]["name"] == rendered("Deployment", "triton")["metadata"]["name"]
    assert "replicas" not in rendered("Deployment", "triton")["spec"]  # the HPA owns it
    assert metric["type"] == "Pods" and "queue" in metric["pods"]["metric"]["name"]


def test_only_the_gateway_reaches_tritons_inference_ports() -> None:
    policy = rendered("NetworkPolicy", "triton")["spec"]
    inference = next(rule for rule in policy["ingress"] if "from" in rule)
    (peer,) = inference["from"]

    assert peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "gateway"
    assert {p["port"] for p in inference["ports"]} == {"http", "grpc"}


def test_model_repository_and_shared_claims_are_read_write_many() -> None:
    claims = [o for o in rendered_objects() if o["kind"] == "PersistentVolumeClaim"]

    assert len(claims) == 2
    assert all(c["spec"]["accessModes"] == ["ReadWriteMany"] for c in claims)


def test_chart_values_say_the_autoscaler_needs_prometheus_adapter() -> None:
    assert "prometheus-adapter" in (CHART / "values.yaml").read_text()
    assert "prometheus-adapter" in (CHART / "README.md").read_text()


# KServe


def test_kserve_service_serves_the_repository_with_the_triton_runtime() -> None:
    service_ = yaml.safe_load((DEPLOY / "kserve" / "inferenceservice.yaml").read_text())
    model = service_["spec"]["predictor"]["model"]

    assert service_["kind"] == "InferenceService"
    assert model["modelFormat"]["name"] == "triton"
    assert "REPLACE-ME" in model["storageUri"]
    assert int(model["resources"]["limits"]["nvidia.com/gpu"]) >= 1
