"""Server-side paths stay inside the media roots: traversal, absolute paths, symlinks leading
out, device files and FIFOs are refused with a reason; nothing outside is listed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gateway.context.paths import MediaRoots, image_files
from gateway.errors import BadRequest, Forbidden, NotFound


@pytest.fixture
def layout(tmp_path: Path) -> tuple[MediaRoots, Path, Path]:
    root = tmp_path / "media"
    outside = tmp_path / "secret"
    (root / "photos" / "nested").mkdir(parents=True)
    outside.mkdir()
    (root / "photos" / "a.jpg").write_bytes(b"a")
    (root / "photos" / "nested" / "b.png").write_bytes(b"b")
    (root / "photos" / "notes.txt").write_text("not an image")
    (outside / "passwd.jpg").write_bytes(b"secret")
    return MediaRoots.create([root]), root, outside


def test_a_relative_path_resolves_inside_the_first_root(layout) -> None:
    roots, root, _ = layout
    assert roots.existing_file("photos/a.jpg") == (root / "photos" / "a.jpg").resolve()


def test_an_absolute_path_inside_a_root_is_accepted(layout) -> None:
    roots, root, _ = layout
    assert roots.existing_file(str(root / "photos" / "a.jpg")).name == "a.jpg"


@pytest.mark.parametrize(
    "name",
    ["../secret/passwd.jpg", "photos/../../secret/passwd.jpg", "/etc/passwd", "/", "~/x.jpg"],
)
def test_paths_leading_out_of_the_roots_are_forbidden(layout, name: str) -> None:
    roots, _, _ = layout
    with pytest.raises(Forbidden, match="outside the media roots"):
        roots.existing_file(name)


def test_a_symlink_leading_out_is_forbidden(layout) -> None:
    roots, root, outside = layout
    (root / "link.jpg").symlink_to(outside / "passwd.jpg")
    (root / "linkdir").symlink_to(outside)
    with pytest.raises(Forbidden):
        roots.existing_file("link.jpg")
    with pytest.raises(Forbidden):
        roots.existing_directory("linkdir")


def test_a_symlink_staying_inside_is_followed(layout) -> None:
    roots, root, _ = layout
    (root / "alias.jpg").symlink_to(root / "photos" / "a.jpg")
    assert roots.existing_file("alias.jpg").name == "a.jpg"


def test_a_nul_byte_an_empty_path_and_a_missing_file_get_their_reasons(layout) -> None:
    roots, _, _ = layout
    with pytest.raises(BadRequest, match="NUL"):
        roots.existing_file("photos/a.jpg\x00.png")
    with pytest.raises(BadRequest, match="1 to"):
        roots.existing_file("")
    with pytest.raises(NotFound, match="does not exist"):
        roots.existing_file("photos/missing.jpg")


def test_a_directory_is_not_a_file_and_a_file_is_not_a_directory(layout) -> None:
    roots, _, _ = layout
    with pytest.raises(BadRequest, match="is a directory"):
        roots.existing_file("photos")
    with pytest.raises(BadRequest, match="not a directory"):
        roots.existing_directory("photos/a.jpg")


def test_a_fifo_is_refused_without_being_opened(layout) -> None:
    roots, root, _ = layout
    os.mkfifo(root / "pipe.jpg")
    with pytest.raises(BadRequest, match="not a regular file"):
        roots.existing_file("pipe.jpg")


def test_a_device_file_reached_through_a_link_is_forbidden(layout) -> None:
    roots, root, _ = layout
    (root / "zero.jpg").symlink_to("/dev/zero")
    with pytest.raises(Forbidden):
        roots.existing_file("zero.jpg")


def test_listing_keeps_images_inside_the_roots_and_skips_links_out(layout) -> None:
    roots, root, outside = layout
    photos = root / "photos"
    (photos / "escape.jpg").symlink_to(outside / "passwd.jpg")
    (photos / "loop").symlink_to(photos)
    os.mkfifo(photos / "fifo.jpg")
    flat = [p.name for p in image_files(roots, photos, recursive=False, limit=100)]
    deep = [p.name for p in image_files(roots, photos, recursive=True, limit=100)]
    assert flat == ["a.jpg"]
    assert deep == ["a.jpg", "b.png"]
    assert [p.name for p in image_files(roots, photos, recursive=True, limit=1)] == ["a.jpg"]


def test_an_upload_folder_is_created_inside_and_refused_outside(layout) -> None:
    roots, root, _ = layout
    assert roots.directory_for_writing("uploads/2026") == (root / "uploads" / "2026").resolve()
    with pytest.raises(Forbidden):
        roots.directory_for_writing("../elsewhere")


def test_paths_are_shown_relative_to_the_first_root(layout) -> None:
    roots, _root, _ = layout
    assert roots.shown(roots.resolve("uploads/x.jpg")) == "uploads/x.jpg"
