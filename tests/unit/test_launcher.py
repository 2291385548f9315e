"""Launcher logic that needs no running tritonserver."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import socket
import stat
import sys
from pathlib import Path
from typing import Any

import pytest

from serving.cli import build_parser, settings_from_args
from serving.errors import ServingError, TritonNotFoundError, TritonStartError
from serving.launcher import (
    PYTHON_BACKEND_FILES,
    STUB_NAME,
    TritonInstall,
    TritonServer,
    TritonSettings,
    assemble_backend_dir,
    build_command,
    build_environment,
    find_tritonserver,
    free_ports,
    read_log_errors,
    read_log_tail,
)


@pytest.fixture
def fake_install(tmp_path: Path) -> TritonInstall:
    """An install whose files exist but are placeholders."""
    root = tmp_path / "install"
    python_dir = root / "backends" / "python"
    python_dir.mkdir(parents=True)
    for name in PYTHON_BACKEND_FILES:
        (python_dir / name).write_text(f"fake {name}")
    stub = root / "stubs" / STUB_NAME
    stub.parent.mkdir()
    stub.write_text("#!/bin/sh\n")
    stub.chmod(0o755)
    binary = root / "bin" / "tritonserver"
    binary.parent.mkdir()
    binary.write_text("#!/bin/sh\n")
    return TritonInstall(binary, python_dir, stub, root / "libs")


def make_settings(tmp_path: Path, **overrides: Any) -> TritonSettings:
    settings = TritonSettings(repository=tmp_path / "repo", run_dir=tmp_path / "run")
    return dataclasses.replace(settings, **overrides)


def test_the_command_binds_all_three_endpoints_to_the_configured_host(
    fake_install: TritonInstall, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, host="0.0.0.0", grpc_port=9001, http_port=9003)
    command = build_command(fake_install, settings, tmp_path / "backends")

    assert command[0] == str(fake_install.binary)
    for flag in ("--http-address=0.0.0.0", "--grpc-address=0.0.0.0", "--metrics-address=0.0.0.0"):
        assert flag in command
    assert "--grpc-port=9001" in command
    assert "--http-port=9003" in command
    assert "--metrics-port=8002" in command


def test_the_command_names_every_repository_and_the_backend_directory(
    fake_install: TritonInstall, tmp_path: Path
) -> None:
    repositories = [tmp_path / "a", tmp_path / "b"]
    settings = make_settings(tmp_path, repository=repositories)
    command = build_command(fake_install, settings, tmp_path / "backends")

    assert [arg for arg in command if arg.startswith("--model-repository=")] == [
        f"--model-repository={path.resolve()}" for path in repositories
    ]
    assert f"--backend-directory={(tmp_path / 'backends').resolve()}" in command
    assert not any(arg.startswith("--exit-on-error") for arg in command)


def test_explicit_model_control_loads_only_the_named_models(
    fake_install: TritonInstall, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, model_control_mode="explicit", load_models=["a", "b"])
    command = build_command(fake_install, settings, tmp_path)

    assert "--model-control-mode=explicit" in command
    assert [arg for arg in command if arg.startswith("--load-model=")] == [
        "--load-model=a",
        "--load-model=b",
    ]


def test_naming_models_to_load_without_explicit_control_is_refused(
    fake_install: TritonInstall, tmp_path: Path
) -> None:
    with pytest.raises(ServingError, match="explicit"):
        build_command(fake_install, make_settings(tmp_path, load_models=["a"]), tmp_path)


def test_model_config_name_is_passed_and_extra_args_come_last(
    fake_install: TritonInstall, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, model_config_name="cpu", extra_args=["--log-verbose=1"])
    command = build_command(fake_install, settings, tmp_path)

    assert "--model-config-name=cpu" in command
    assert command[-1] == "--log-verbose=1"


def test_servers_on_different_ports_get_different_shared_memory_prefixes(
    fake_install: TritonInstall, tmp_path: Path
) -> None:
    def shm_flag(port: int) -> str:
        command = build_command(fake_install, make_settings(tmp_path, grpc_port=port), tmp_path)
        return next(arg for arg in command if "shm-region-prefix-name" in arg)

    assert shm_flag(9001) != shm_flag(9011)


def test_the_environment_puts_this_python_first_and_the_triton_libs_on_the_loader_path(
    fake_install: TritonInstall,
) -> None:
    env = build_environment(fake_install, {"PATH": "/usr/bin", "LD_LIBRARY_PATH": "/opt/x"})

    assert env["PATH"].split(os.pathsep)[0] == str(Path(sys.executable).parent)
    assert env["PATH"].endswith("/usr/bin")
    assert env["LD_LIBRARY_PATH"] == f"{fake_install.libs_dir}{os.pathsep}/opt/x"


def test_the_backend_directory_holds_the_python_backend_and_both_of_ours(
    fake_install: TritonInstall, tmp_path: Path
) -> None:
    dest = assemble_backend_dir(fake_install, tmp_path / "backends")

    for name in (*PYTHON_BACKEND_FILES, STUB_NAME):
        copied = dest / "python" / name
        assert copied.is_file()
        assert not copied.is_symlink()  # Triton rejects libraries whose real path escapes
    assert (dest / "python" / STUB_NAME).stat().st_mode & stat.S_IXUSR
    for backend in ("facet_ort", "facet_openvino"):
        assert "class TritonPythonModel" in (dest / backend / "model.py").read_text()
        # Triton lets a backend import only its own folder: the shared core is copied in.
        assert "class BatchingBackend" in (dest / backend / "backend_core.py").read_text()


def test_reassembling_the_backend_directory_drops_stale_files(
    fake_install: TritonInstall, tmp_path: Path
) -> None:
    dest = assemble_backend_dir(fake_install, tmp_path / "backends")
    (dest / "facet_ort" / "stale.py").write_text("old")

    assemble_backend_dir(fake_install, dest)

    assert not (dest / "facet_ort" / "stale.py").exists()


def test_find_tritonserver_uses_the_pytriton_wheel_with_the_stub_for_this_python() -> None:
    install = find_tritonserver()

    assert install.missing_files() == []
    assert f"{sys.version_info.major}.{sys.version_info.minor}" in install.stub.parts
    assert install.libs_dir is not None and install.libs_dir.is_dir()


def test_without_the_wheel_or_a_tritonserver_on_path_a_typed_error_explains_both(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    monkeypatch.setenv("PATH", str(tmp_path))

    with pytest.raises(TritonNotFoundError, match=r"pytriton.*PATH"):
        find_tritonserver()


def test_an_install_reports_the_files_it_lacks(fake_install: TritonInstall) -> None:
    fake_install.stub.unlink()

    assert fake_install.missing_files() == [fake_install.stub]


def test_one_repository_or_several_become_a_list(tmp_path: Path) -> None:
    assert make_settings(tmp_path, repository=tmp_path).repositories == [tmp_path]
    several = [tmp_path / "a", tmp_path / "b"]
    assert make_settings(tmp_path, repository=several).repositories == several


def test_the_log_defaults_to_the_run_directory(tmp_path: Path) -> None:
    assert make_settings(tmp_path).resolved_log_file == tmp_path / "run" / "tritonserver.log"


def test_the_log_tail_keeps_only_the_last_lines(tmp_path: Path) -> None:
    log = tmp_path / "triton.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)))

    assert read_log_tail(log, lines=3) == "line 97\nline 98\nline 99"
    assert "no log" in read_log_tail(tmp_path / "missing.log")


def test_error_lines_are_collected_without_the_cpu_only_cuda_noise(tmp_path: Path) -> None:
    log = tmp_path / "triton.log"
    log.write_text(
        'E1122 21:58:57.278257 1 server.cc:241] "CudaDriverHelper has not been initialized."\n'
        'I1122 21:58:57.279266 1 model_lifecycle.cc:472] "loading: m:1"\n'
        "E1122 21:58:58.916458 1 model_lifecycle.cc:642] \"failed to load 'm'\"\n"
    )

    assert read_log_errors(log) == [
        "E1122 21:58:58.916458 1 model_lifecycle.cc:642] \"failed to load 'm'\""
    ]


def test_a_start_error_message_carries_the_reported_errors_and_the_tail() -> None:
    error = TritonStartError("exited", "tail line", ["E0101 boom"])

    assert str(error).splitlines() == [
        "exited",
        "--- errors reported by tritonserver ---",
        "E0101 boom",
        "--- last lines of the tritonserver log ---",
        "tail line",
    ]


def test_free_ports_are_distinct() -> None:
    ports = free_ports(5)

    assert len(set(ports)) == 5


def test_start_refuses_a_port_that_is_already_listening(
    fake_install: TritonInstall, tmp_path: Path
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        settings = make_settings(tmp_path, http_port=busy.getsockname()[1])
        with pytest.raises(ServingError, match="already in use"):
            TritonServer(settings, install=fake_install).start()


def test_urls_point_clients_at_loopback_when_binding_every_interface(tmp_path: Path) -> None:
    server = TritonServer(make_settings(tmp_path, host="0.0.0.0", grpc_port=9001))

    assert server.grpc_url == "127.0.0.1:9001"
    assert server.http_url == "http://127.0.0.1:8003"
    assert server.metrics_url == "http://127.0.0.1:8002/metrics"


def test_serve_arguments_become_launcher_settings(tmp_path: Path) -> None:
    argv = ["serve", "--repository", "models", "--repository", "more", "--grpc-port", "7001"]
    argv += ["--model-config-name", "cpu", "--log-file", str(tmp_path / "t.log")]
    args = build_parser().parse_args(argv)
    settings = settings_from_args(args)

    assert settings.repositories == [Path("models"), Path("more")]
    assert settings.grpc_port == 7001
    assert settings.http_port == 8003
    assert settings.model_config_name == "cpu"
    assert settings.log_file == tmp_path / "t.log"


def test_free_ports_never_hands_out_a_port_twice_in_one_process() -> None:
    first = set(free_ports(50))
    second = set(free_ports(50))

    assert not first & second
