"""The container is named from the bytes against an allowlist; a file cut short is caught from
the container's own sizes."""

from __future__ import annotations

import io
import struct

import pytest

from gateway.errors import BadRequest, UnsupportedMediaType
from gateway.video.sniff import ContainerKind, check_complete, read_vint, sniff_container


def box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def ftyp(major: bytes, *compatible: bytes) -> bytes:
    return box(b"ftyp", major + b"\x00\x00\x02\x00" + b"".join(compatible))


def ebml_element(element_id: bytes, payload: bytes) -> bytes:
    assert len(payload) < 127
    return element_id + bytes([0x80 | len(payload)]) + payload


def ebml_header(doctype: bytes | None) -> bytes:
    children = ebml_element(b"\x42\x86", b"\x01")  # EBMLVersion 1
    if doctype is not None:
        children += ebml_element(b"\x42\x82", doctype)
    return ebml_element(b"\x1a\x45\xdf\xa3", children)


def segment(payload_size: int, payload: bytes = b"") -> bytes:
    return b"\x18\x53\x80\x67" + b"\x01" + struct.pack(">Q", payload_size)[1:] + payload


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (ftyp(b"isom", b"isom", b"iso2", b"avc1", b"mp41"), "mp4"),
        (ftyp(b"mp42", b"mp42", b"isom"), "mp4"),
        (ftyp(b"qt  ", b"qt  "), "mov"),
        (ftyp(b"M4V ", b"M4V ", b"M4A ", b"mp42"), "m4v"),
        (ftyp(b"abcd", b"abcd", b"iso6"), "mp4"),  # an unknown major brand, a known compatible
        (box(b"moov", b"") + box(b"mdat", b""), "mov"),  # QuickTime before ftyp existed
        (ebml_header(b"webm"), "webm"),
        (ebml_header(b"matroska"), "mkv"),
        (ebml_header(None), "mkv"),  # DocType defaults to matroska
        (b"RIFF\x24\x00\x00\x00AVI LIST", "avi"),
    ],
)
def test_allowed_containers_are_named_from_their_bytes(head: bytes, kind: str) -> None:
    assert sniff_container(head) == kind


@pytest.mark.parametrize(
    ("head", "reason"),
    [
        (b"hello, this is plain text renamed to clip.mp4\n", "unsupported video format"),
        (b"#EXTM3U\n#EXT-X-VERSION:3\n#EXTINF:10,\nfile:///etc/passwd\n", "HLS playlist"),
        (b"\xef\xbb\xbf  #EXTM3U\n", "HLS playlist"),
        (b"ffconcat version 1.0\nfile /etc/passwd\n", "ffconcat"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "image"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "image"),
        (b"GIF89a\x01\x00\x01\x00\x00\x00", "image"),
        (b"RIFF\x24\x00\x00\x00WEBPVP8 ", "image"),
        (ftyp(b"heic", b"mif1", b"heic"), "image"),
        (ftyp(b"M4A ", b"M4A "), "audio-only"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", "audio-only"),
        (ftyp(b"crx ", b"crx "), "brand"),
        (ebml_header(b"other"), "document type"),
    ],
)
def test_anything_else_is_unsupported_media_with_a_reason(head: bytes, reason: str) -> None:
    with pytest.raises(UnsupportedMediaType, match=reason):
        sniff_container(head)


@pytest.mark.parametrize(
    "head",
    [
        b"",
        b"\x1a\x45",  # the start of an EBML header and nothing more
        b"\x00\x00\x00\x20ftyp",
        b"\x00\x00\x00\x08ftypisom",  # an ftyp box too small for its brand
        ebml_header(b"webm")[:9],
        b"\x1a\x45\xdf\xa3\x00",  # a size longer than 8 bytes
    ],
)
def test_a_header_cut_short_or_malformed_is_a_bad_request(head: bytes) -> None:
    with pytest.raises(BadRequest) as caught:
        sniff_container(head)
    assert type(caught.value) is BadRequest


def test_ebml_integers_keep_or_drop_their_length_marker() -> None:
    assert read_vint(b"\x1a\x45\xdf\xa3", 0, keep_marker=True)[:2] == (0x1A45DFA3, 4)
    assert read_vint(b"\x81", 0, keep_marker=False) == (1, 1, False)
    assert read_vint(b"\x40\x02", 0, keep_marker=False) == (2, 2, False)
    assert read_vint(b"\x01\xff\xff\xff\xff\xff\xff\xff", 0, keep_marker=False)[2] is True


def complete(data: bytes, kind: ContainerKind) -> None:
    check_complete(io.BytesIO(data), kind, len(data))


def test_an_mp4_whose_boxes_fit_the_file_is_complete() -> None:
    data = ftyp(b"isom", b"isom") + box(b"moov", b"x" * 20) + box(b"mdat", b"y" * 100)
    complete(data, "mp4")
    complete(data + struct.pack(">I", 0) + b"mdat" + b"z" * 50, "mp4")  # size 0: to the end


@pytest.mark.parametrize("cut", [1, 50, 99])
def test_an_mp4_cut_short_is_truncated(cut: int) -> None:
    data = ftyp(b"isom", b"isom") + box(b"mdat", b"y" * 100) + box(b"moov", b"x" * 20)
    with pytest.raises(BadRequest, match="truncated"):
        complete(data[:-cut], "mp4")


def test_an_mp4_with_a_64_bit_box_size_is_walked() -> None:
    large = struct.pack(">I", 1) + b"mdat" + struct.pack(">Q", 16 + 10) + b"y" * 10
    complete(ftyp(b"isom") + large, "mp4")
    with pytest.raises(BadRequest, match="truncated"):
        complete(ftyp(b"isom") + large[:-1], "mp4")


def test_an_mp4_box_of_impossible_size_is_malformed() -> None:
    with pytest.raises(BadRequest, match="impossible size"):
        complete(ftyp(b"isom") + struct.pack(">I", 4) + b"mdat", "mp4")


def test_a_matroska_segment_longer_than_the_file_is_truncated() -> None:
    data = ebml_header(b"webm") + segment(40, b"x" * 40)
    complete(data, "webm")
    with pytest.raises(BadRequest, match="truncated"):
        complete(data[:-10], "webm")


def test_a_live_matroska_segment_of_unknown_size_passes() -> None:
    unknown = b"\x18\x53\x80\x67\x01\xff\xff\xff\xff\xff\xff\xff"
    complete(ebml_header(b"webm") + unknown + b"x" * 10, "webm")


def test_an_avi_shorter_than_its_riff_size_is_truncated() -> None:
    data = b"RIFF" + struct.pack("<I", 4 + 20) + b"AVI " + b"x" * 20
    complete(data, "avi")
    with pytest.raises(BadRequest, match="truncated"):
        complete(data[:-5], "avi")
