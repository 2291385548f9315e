"""Server-side paths a client names (`image_path`, `directory_path`, `upload_dir`) resolve only
inside the configured media roots.

A path is resolved the way the operating system would open it (symlinks followed, `..`
collapsed) and must land inside one root's real path; a relative path is taken relative to the
first root. What is refused, with the reason in the error: paths outside every root (absolute,
`..`, or a symlink leading out), NUL bytes, names that are not UTF-8 text (they could not be
sent back in JSON), and anything that is not a regular file or a directory (devices, FIFOs,
sockets: opening a FIFO would block a worker). The check is made on the resolved path, and
files are then opened from that path, so a link swapped after the check can at most point at
another file inside the roots' real paths."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from gateway.errors import BadRequest, Forbidden, NotFound

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")
MAX_PATH_CHARS = 4096


@dataclass(frozen=True)
class MediaRoots:
    roots: tuple[Path, ...]  # real (resolved) paths, the first is where relative paths start

    @classmethod
    def create(cls, roots: Sequence[Path]) -> MediaRoots:
        """The roots, created when missing (the default `media/` on a fresh checkout)."""
        if not roots:
            raise ValueError("at least one media root is needed")
        resolved = []
        for root in roots:
            root.mkdir(parents=True, exist_ok=True)
            resolved.append(root.resolve(strict=True))
        return cls(tuple(resolved))

    def resolve(self, name: str, *, field: str = "path") -> Path:
        """`name` as a real path inside a root (it need not exist yet)."""
        if not name or len(name) > MAX_PATH_CHARS:
            raise BadRequest(f"{field}: give a path of 1 to {MAX_PATH_CHARS} characters")
        if "\x00" in name:
            raise BadRequest(f"{field}: a path cannot contain a NUL character")
        if not is_utf8(name):
            raise BadRequest(f"{field}: a path must be valid Unicode text (no lone surrogates)")
        # os.path's expanduser, not Path's: `~nosuchuser` stays as written (as in a shell)
        # where Path.expanduser raises.
        candidate = Path(os.path.expanduser(name))
        if not candidate.is_absolute():
            candidate = self.roots[0] / candidate
        real = Path(os.path.realpath(candidate))
        if not any(real == root or real.is_relative_to(root) for root in self.roots):
            raise Forbidden(
                f"{field}: {name!r} is outside the media roots this server may read "
                f"(FACET_MEDIA_ROOTS); copy the files into one of them"
            )
        if not is_utf8(str(real)):
            raise BadRequest(f"{field}: {name!r} leads to a file name that is not UTF-8")
        return real

    def existing_file(self, name: str, *, field: str = "image_path") -> Path:
        path = self.resolve(name, field=field)
        mode = _mode(path, name, field)
        if not stat.S_ISREG(mode):
            kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
            raise BadRequest(f"{field}: {name!r} is {kind}")
        return path

    def existing_directory(self, name: str, *, field: str = "directory_path") -> Path:
        path = self.resolve(name, field=field)
        if not stat.S_ISDIR(_mode(path, name, field)):
            raise BadRequest(f"{field}: {name!r} is not a directory")
        return path

    def directory_for_writing(self, name: str, *, field: str = "upload_dir") -> Path:
        """A directory inside the roots, created when missing."""
        path = self.resolve(name, field=field)
        try:
            if not stat.S_ISDIR(_mode(path, name, field)):
                raise BadRequest(f"{field}: {name!r} exists and is not a directory")
        except NotFound:
            try:
                path.mkdir(parents=True, exist_ok=True)
            except OSError as exc:  # a file on the way, a link loop, a name too long
                raise BadRequest(f"{field}: {name!r} cannot be created ({exc.strerror})") from None
        return path

    def contains(self, path: Path) -> bool:
        real = Path(os.path.realpath(path))
        return any(real == root or real.is_relative_to(root) for root in self.roots)

    def shown(self, path: Path) -> str:
        """The path as answers show it: relative to the first root when inside it."""
        root = self.roots[0]
        return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def is_utf8(text: str) -> bool:
    """Whether `text` encodes as UTF-8: a name read from disk that was not UTF-8 holds
    surrogate escapes, which neither JSON answers nor the vector store can carry."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _mode(path: Path, name: str, field: str) -> int:
    try:
        return path.stat().st_mode
    except FileNotFoundError:
        raise NotFound(f"{field}: {name!r} does not exist") from None
    except OSError as exc:
        raise BadRequest(f"{field}: {name!r} cannot be read ({exc.strerror})") from None


def image_files(
    roots: MediaRoots, directory: Path, *, recursive: bool, limit: int
) -> Iterator[Path]:
    """Image files in `directory` (by suffix), sorted, each confined like a named path: a
    symlink inside the directory that leads out of the roots is skipped, never followed, and so
    is a file whose name is not UTF-8. Directories are never followed through symlinks, so a
    link loop cannot recurse."""
    count = 0
    for path in _walk(directory, recursive):
        if path.suffix.lower() not in IMAGE_SUFFIXES or not roots.contains(path):
            continue
        try:
            if not stat.S_ISREG(path.stat().st_mode):
                continue
        except OSError:
            continue
        real = Path(os.path.realpath(path))
        if not is_utf8(str(real)):
            continue
        yield real
        count += 1
        if count >= limit:
            return


def _walk(directory: Path, recursive: bool) -> Iterator[Path]:
    """Depth first, each directory's entries by name; with a stack of its own rather than
    recursion, so a tree nested thousands deep cannot exhaust Python's recursion limit."""
    pending = [_entries(directory)]
    while pending:
        entry = next(pending[-1], None)
        if entry is None:
            pending.pop()
        elif entry.is_dir(follow_symlinks=False):
            if recursive:
                pending.append(_entries(Path(entry.path)))
        else:
            yield Path(entry.path)


def _entries(directory: Path) -> Iterator[os.DirEntry[str]]:
    try:
        with os.scandir(directory) as scan:
            return iter(sorted(scan, key=lambda entry: entry.name))
    except OSError:
        return iter(())
