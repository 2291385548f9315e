"""Gateway launcher logic, run against small stand-ins for `python -m gateway` (no Triton)."""

from __future__ import annotations

import signal
import socket
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from serving.errors import ServingError
from serving.gateway_process import (
    GatewayProcess,
    GatewaySettings,
    build_environment,
    setting_text,
    setting_variable,
)
from serving.launcher import TritonServer, TritonSettings, free_port
from serving.stack import Backoff, StackSettings, gateway_settings, restart_gateway

# Answers /openapi.json on FACET_HOST:FACET_PORT like the gateway does once it is up.
STAND_IN = """
import http.server, os, sys

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/openapi.json" else 404)
        self.end_headers()

    def log_message(self, *args):
        pass

print("stand-in gateway on", os.environ["FACET_PORT"], os.environ.get("FACET_TILE_SIZE"))
address = (os.environ["FACET_HOST"], int(os.environ["FACET_PORT"]))
sys.stdout.flush()
http.server.HTTPServer(address, Handler).serve_forever()
"""
SERVES = [sys.executable, "-c", STAND_IN]
CRASHES = [sys.executable, "-c", "print('settings invalid: job_workers'); raise SystemExit(3)"]
HANGS = [sys.executable, "-c", "import time; time.sleep(60)"]


def make_settings(tmp_path: Path, **overrides: Any) -> GatewaySettings:
    values: dict[str, Any] = {
        "port": free_port(),
        "log_file": tmp_path / "gateway.log",
        "environment": {},
        "start_timeout_s": 20.0,
        "stop_timeout_s": 5.0,
    }
    return GatewaySettings(**{**values, **overrides})


def answers(url: str) -> bool:
    with urllib.request.urlopen(f"{url}/openapi.json", timeout=2) as response:
        return int(response.status) == 200


def test_settings_names_become_facet_variables() -> None:
    assert setting_variable("tile_size") == "FACET_TILE_SIZE"
    assert setting_variable("FACET_TILE_SIZE") == "FACET_TILE_SIZE"
    assert setting_variable("facet_job_workers") == "FACET_JOB_WORKERS"
    with pytest.raises(ServingError, match="not a gateway setting"):
        setting_variable("tile size")


def test_values_are_written_as_the_gateway_reads_them() -> None:
    assert setting_text(True) == "true" and setting_text(False) == "false"
    assert setting_text(0.5) == "0.5" and setting_text(Path("/data")) == "/data"


def test_the_environment_layers_base_then_overrides_then_the_named_fields(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path,
        port=9100,
        host="0.0.0.0",
        triton_grpc_url="127.0.0.1:9001",
        data_dir=tmp_path / "data",
        overrides={"tile_size": 32, "FACET_RATE_LIMITS_ENABLED": False},
        environment={"PATH": "/usr/bin", "FACET_PORT": "1", "FACET_TILE_SIZE": "512"},
    )
    env = build_environment(settings)

    assert env == {
        "PATH": "/usr/bin",
        "FACET_HOST": "0.0.0.0",
        "FACET_PORT": "9100",
        "FACET_TRITON_GRPC_URL": "127.0.0.1:9001",
        "FACET_DATA_DIR": str(tmp_path / "data"),
        "FACET_TILE_SIZE": "32",
        "FACET_RATE_LIMITS_ENABLED": "false",
    }


def test_unset_fields_leave_the_base_environment_alone(tmp_path: Path) -> None:
    base = {"FACET_DATA_DIR": "/srv/jobs", "FACET_TRITON_GRPC_URL": "triton:8001"}
    env = build_environment(make_settings(tmp_path, environment=base))

    assert env["FACET_DATA_DIR"] == "/srv/jobs"
    assert env["FACET_TRITON_GRPC_URL"] == "triton:8001"


def test_without_a_base_the_environment_starts_from_ours(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FACET_MAX_IMAGE_SIDE", "1024")
    env = build_environment(make_settings(tmp_path, environment=None))

    assert env["FACET_MAX_IMAGE_SIDE"] == "1024"


@pytest.mark.parametrize("name", ["port", "FACET_HOST", "data_dir", "triton_grpc_url"])
def test_overrides_may_not_name_what_a_field_sets(tmp_path: Path, name: str) -> None:
    with pytest.raises(ServingError, match="through GatewaySettings"):
        make_settings(tmp_path, overrides={name: "x"})


@pytest.mark.parametrize("port", [0, 70000])
def test_a_port_outside_the_tcp_range_is_refused(tmp_path: Path, port: int) -> None:
    with pytest.raises(ServingError, match="not a TCP port"):
        make_settings(tmp_path, port=port)


def test_the_url_points_clients_at_loopback_when_binding_every_interface(tmp_path: Path) -> None:
    assert GatewayProcess(make_settings(tmp_path, host="0.0.0.0", port=9100)).url == (
        "http://127.0.0.1:9100"
    )
    assert GatewayProcess(make_settings(tmp_path, port=9100)).log_path == tmp_path / "gateway.log"


def test_the_stack_runs_its_gateway_on_tritons_host_pointed_at_its_grpc_port(
    tmp_path: Path,
) -> None:
    triton = TritonSettings(repository=tmp_path, host="0.0.0.0", grpc_port=9001)
    stack = StackSettings(triton=triton, gateway_port=9100, gateway_log=tmp_path / "g.log")
    settings = gateway_settings(stack, TritonServer(triton))

    assert (settings.host, settings.port) == ("0.0.0.0", 9100)
    assert settings.log_file == tmp_path / "g.log"
    assert settings.triton_grpc_url == "127.0.0.1:9001"
    assert settings.data_dir is None  # FACET_DATA_DIR from the operator's environment


def test_the_stack_brings_a_dead_gateway_back_on_its_port(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("serving.stack.FIRST_RESTART_PAUSE_S", 0.0)
    said: list[str] = []
    with GatewayProcess(make_settings(tmp_path), SERVES) as gateway:
        gateway.kill()
        restart_gateway(gateway, gateway.url, Backoff(), said.append)

        assert answers(gateway.url) and gateway.poll() is None
    assert said == [
        f"the gateway exited with code {-signal.SIGKILL}; restarting it",
        f"the gateway is ready again: {gateway.url}",
    ]


def test_start_refuses_a_port_that_is_already_listening(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        gateway = GatewayProcess(make_settings(tmp_path, port=busy.getsockname()[1]), SERVES)
        with pytest.raises(ServingError, match="already in use"):
            gateway.start()
        assert gateway.pid is None


def test_a_gateway_that_exits_at_start_raises_with_its_log(tmp_path: Path) -> None:
    gateway = GatewayProcess(make_settings(tmp_path), CRASHES)

    with pytest.raises(ServingError, match="exited with code 3") as raised:
        gateway.start()
    assert "settings invalid: job_workers" in str(raised.value)
    assert str(tmp_path / "gateway.log") in str(raised.value)
    assert gateway.pid is None and gateway.poll() is None


def test_a_gateway_that_never_answers_is_stopped_after_the_start_timeout(tmp_path: Path) -> None:
    gateway = GatewayProcess(make_settings(tmp_path, start_timeout_s=0.5), HANGS)

    with pytest.raises(ServingError, match="did not answer"):
        gateway.start()
    assert gateway.pid is None


def test_start_kill_start_restart_stop_keep_the_port_and_one_log(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, overrides={"tile_size": 32}, data_dir=tmp_path / "data")
    gateway = GatewayProcess(settings, SERVES)

    gateway.start()
    first = gateway.pid
    assert answers(gateway.url) and gateway.poll() is None
    assert (tmp_path / "data").is_dir()
    with pytest.raises(ServingError, match="already started"):
        gateway.start()

    assert gateway.kill(signal.SIGKILL) == -signal.SIGKILL
    assert gateway.poll() == -signal.SIGKILL  # how it ended stays visible until the next start

    gateway.start()
    second = gateway.pid
    assert answers(gateway.url) and second != first
    gateway.restart()
    assert answers(gateway.url) and gateway.pid not in (first, second)

    gateway.stop()
    assert gateway.pid is None and gateway.poll() is None
    log = gateway.log_path.read_text()
    assert log.count(f"stand-in gateway on {settings.port} 32") == 3


def test_the_context_manager_stops_the_gateway(tmp_path: Path) -> None:
    with GatewayProcess(make_settings(tmp_path), SERVES) as gateway:
        assert answers(gateway.url)
        url = gateway.url
    assert gateway.pid is None
    with pytest.raises(OSError):
        answers(url)
