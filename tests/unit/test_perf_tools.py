"""The perf tooling that needs no server: apt source parsing and the perf_analyzer wrapper,
perf_analyzer's input JSON and CSV, the closed-loop load generator, the no-batching config."""

from __future__ import annotations

import base64
import json
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from perf import install_perf_analyzer as pa
from perf import samples
from perf.loadgen import MeasurementError, run_closed_loop
from perf.machine import Machine, machine_tag
from perf.run_perf_analyzer import command_for, image_input, parse_csv, render_summary
from perf.servers import COMMITTED_REPOSITORY, config_threads, read_config, without_batching

DEB822 = """\
Types: deb
# http://snapshot.example/archive/debian/20250520T000000Z
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://mirror.example/debian
Suites: bookworm
Components: main
"""


def test_deb822_sources_are_parsed() -> None:
    sources = pa.parse_deb822_sources(DEB822)
    assert [s.uri for s in sources] == [
        "http://mirror.example/debian",
        "http://mirror.example/debian-security",
    ]
    assert sources[0].suites == ("bookworm", "bookworm-updates")
    assert sources[0].signed_by == "/usr/share/keyrings/debian-archive-keyring.gpg"


def test_one_line_sources_are_parsed_with_options() -> None:
    text = (
        "# comment\n"
        "deb [arch=amd64 signed-by=/k.gpg] http://m.example/debian bookworm main contrib\n"
        "deb-src http://m.example/debian bookworm main\n"
        "deb http://m.example/debian-security bookworm-security main\n"
    )
    sources = pa.parse_one_line_sources(text)
    assert len(sources) == 2
    assert sources[0].uri == "http://m.example/debian"
    assert sources[0].components == ("main", "contrib")
    assert sources[0].signed_by == "/k.gpg"


def test_the_mirror_of_the_hosts_release_is_picked_and_pointed_at_the_next() -> None:
    mirror = pa.pick_mirror(pa.parse_deb822_sources(DEB822), "bookworm")
    assert mirror.uri == "http://mirror.example/debian"
    line = pa.private_sources_line(mirror)
    assert line == (
        "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
        "http://mirror.example/debian trixie main\n"
    )
    with pytest.raises(pa.InstallError):
        pa.pick_mirror(pa.parse_deb822_sources(DEB822), "trixie")


def test_apt_options_keep_apt_away_from_the_system_state(tmp_path: Path) -> None:
    options = pa.apt_options(pa.Layout(tmp_path))
    assert f"-oDir::Etc::SourceList={tmp_path / 'apt' / 'sources.list'}" in options
    assert "-oDir::Etc::SourceParts=/dev/null" in options
    assert f"-oDir::State::Lists={tmp_path / 'apt' / 'lists'}" in options
    assert f"-oDir::Cache={tmp_path / 'apt' / 'cache'}" in options


def test_the_wrapper_runs_the_binary_through_the_bundled_loader(tmp_path: Path) -> None:
    layout = pa.Layout(tmp_path)
    text = pa.render_wrapper(layout, through_loader=True)
    assert text.startswith("#!/bin/sh\n")
    assert (
        '"$here/glibc/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" --library-path '
        '"$here/glibc/usr/lib/x86_64-linux-gnu:/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu" '
        '"$here/bin/perf_analyzer.real" "$@"'
    ) in text
    assert 'exec "$here/bin/perf_analyzer.real" "$@"' in pa.render_wrapper(layout, False)


def test_a_working_wrapper_is_reused_without_any_download(tmp_path: Path) -> None:
    layout = pa.Layout(tmp_path)
    layout.wrapper.write_text("#!/bin/sh\necho 'Perf Analyzer Version 9.9.9 (fake)'\n")
    layout.wrapper.chmod(0o755)
    assert pa.install(tmp_path, use_path=False) == layout.wrapper
    assert not layout.wheel_dir.exists()


def test_perf_analyzer_json_holds_raw_bytes_and_shapes() -> None:
    tiles = samples.photo_tiles(3, 16)
    assert tiles.shape == (3, 16, 16, 3) and tiles.dtype == np.uint8
    assert len({tile.tobytes() for tile in tiles}) == 3  # distinct crops
    floats = samples.to_nchw_float(tiles)
    document = json.loads(json.dumps(samples.perf_analyzer_json("low_res", floats)))
    entry = document["data"][1]["low_res"]
    assert entry["shape"] == [3, 16, 16]
    decoded = np.frombuffer(base64.b64decode(entry["b64"]), dtype=np.float32).reshape(3, 16, 16)
    np.testing.assert_array_equal(decoded, floats[1])


def test_image_inputs_are_read_from_the_committed_configs() -> None:
    model = image_input(COMMITTED_REPOSITORY, "realesrgan_x4plus")
    ensemble = image_input(COMMITTED_REPOSITORY, "upscale_realesrgan_x4plus")
    assert model is not None and (model.name, model.dtype, model.shape(64)) == (
        "low_res",
        "FP32",
        [3, 64, 64],
    )
    assert ensemble is not None and (ensemble.name, ensemble.dtype, ensemble.shape(64)) == (
        "image",
        "UINT8",
        [64, 64, 3],
    )
    assert image_input(COMMITTED_REPOSITORY, "tensor_to_image") is None
    assert image_input(COMMITTED_REPOSITORY, "image_to_tensor") is None


def test_perf_analyzer_command_and_csv(tmp_path: Path) -> None:
    model = image_input(COMMITTED_REPOSITORY, "upscale_realesr_general_x4v3")
    assert model is not None
    command = command_for(
        Path("pa"), "127.0.0.1:8001", model, tmp_path / "in.json", 64, 4, 8, 3, 1, tmp_path / "o"
    )
    joined = " ".join(command)
    assert "-m upscale_realesr_general_x4v3 -u 127.0.0.1:8001 -i grpc" in joined
    assert "--shape image:64,64,3 --concurrency-range 4" in joined
    assert "--measurement-mode count_windows --measurement-request-count 8" in joined
    csv = tmp_path / "o.csv"
    csv.write_text(
        "Concurrency,Inferences/Second,Client Send,Network+Server Send/Recv,Server Queue,"
        "Server Compute Input,Server Compute Infer,Server Compute Output,Client Recv,"
        "p50 latency,p90 latency,p95 latency,p99 latency\n"
        "4,8.63753,10,2277,339423,85,547421,5910,1,654395,1945265,2125426,2139119\n"
    )
    (row,) = parse_csv(csv, "m")
    assert row.concurrency == 4 and row.throughput == pytest.approx(8.63753)
    assert row.p50_ms == pytest.approx(654.395) and row.p99_ms == pytest.approx(2139.119)
    assert row.queue_ms == pytest.approx(339.423)
    assert row.compute_ms == pytest.approx((85 + 547421 + 5910) / 1000)
    assert "| m | 4 | 8.638 | 654.4 |" in render_summary([row], "# t")


def test_the_no_batching_copy_differs_only_in_its_scheduler(tmp_path: Path) -> None:
    source = tmp_path / "repo"
    (source / "realesrgan_x4plus" / "1").mkdir(parents=True)
    committed = COMMITTED_REPOSITORY / "realesrgan_x4plus" / "config.pbtxt"
    (source / "realesrgan_x4plus" / "config.pbtxt").write_text(committed.read_text())
    (source / "realesrgan_x4plus" / "1" / "model.onnx").write_bytes(b"onnx")
    dest = without_batching(source, "realesrgan_x4plus", tmp_path / "nobatch")
    original = read_config(committed)
    copied = read_config(dest / "realesrgan_x4plus" / "config.pbtxt")
    assert original.HasField("dynamic_batching") and not copied.HasField("dynamic_batching")
    original.ClearField("dynamic_batching")
    assert copied == original
    assert config_threads(copied) == (2, 1)
    assert (dest / "realesrgan_x4plus" / "1" / "model.onnx").read_bytes() == b"onnx"


def test_closed_loop_counts_every_request_and_overlaps_clients() -> None:
    seen: list[int] = []
    lock = threading.Lock()

    def factory():
        def request(index: int) -> None:
            time.sleep(0.02)
            with lock:
                seen.append(index)

        return request

    result = run_closed_loop(factory, concurrency=4, total=12)
    assert sorted(seen) == list(range(12))
    assert result.completed == 12 and len(result.latencies_s) == 12
    assert all(latency >= 0.02 for latency in result.latencies_s)
    # 12 requests of 20 ms on 4 clients: about 3 rounds, far less than 12 in a row.
    assert result.wall_s < 0.2
    assert result.throughput == pytest.approx(12 / result.wall_s)


def test_closed_loop_fails_loudly_on_a_failed_request() -> None:
    def factory():
        def request(index: int) -> None:
            if index == 2:
                raise subprocess.SubprocessError("boom")

        return request

    with pytest.raises(MeasurementError, match="boom"):
        run_closed_loop(factory, concurrency=2, total=6)


def test_machine_tag_avoids_generic_hostnames() -> None:
    machine = Machine("vm", 2, "AMD EPYC 7B13", 23.5, "none", "Debian", "3.11", "0 0 0", {})
    assert machine_tag(machine) == "2core-amd-epyc-7b13"
    named = Machine("Build-Box_01", 2, "x", 1.0, "none", "", "", "", {})
    assert machine_tag(named) == "build-box-01"
