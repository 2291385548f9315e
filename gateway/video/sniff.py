"""Name a video's container from its bytes, and check that the file holds all it declares.

Filenames and content types are client claims, and FFmpeg's own probing would happily read an
HLS playlist or an ffconcat script and then open whatever files or URLs they list. So the
container is decided here, from magic bytes, against an allowlist; FFmpeg is then told which
demuxer to use and never guesses. The structural check catches a file cut short (an upload
that stopped half way) before any decoder sees it.
"""

from __future__ import annotations

import struct
from typing import BinaryIO, Final, Literal

from gateway.errors import BadRequest, UnsupportedMediaType

ContainerKind = Literal["mp4", "mov", "m4v", "mkv", "webm", "avi"]

ALLOWED_CONTAINERS: Final = "MP4, MOV, M4V, MKV, WebM or AVI"
HEAD_BYTES: Final = 4096  # enough for an ftyp box's brand list or an EBML header

# ISO BMFF major or compatible brands (ISO/IEC 14496-12 registry) per container we accept.
_MP4_BRANDS: Final = frozenset(
    {b"isom", b"iso2", b"iso3", b"iso4", b"iso5", b"iso6", b"iso7", b"iso8", b"iso9"}
    | {b"mp41", b"mp42", b"avc1", b"hvc1", b"dash", b"mmp4", b"MSNV", b"XAVC", b"av01"}
)
_M4V_BRANDS: Final = frozenset({b"M4V ", b"M4VH", b"M4VP"})
_MOV_BRANDS: Final = frozenset({b"qt  "})
_AUDIO_BRANDS: Final = frozenset({b"M4A ", b"M4B ", b"M4P "})
_IMAGE_BRANDS: Final = frozenset({b"heic", b"heix", b"mif1", b"msf1", b"avif", b"avis"})
# QuickTime files older than the ftyp box start straight with one of these atoms.
_LEGACY_QUICKTIME_ATOMS: Final = frozenset({b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"})
_EBML_MAGIC: Final = b"\x1a\x45\xdf\xa3"
_EBML_DOCTYPE: Final = 0x4282
_MATROSKA_SEGMENT: Final = 0x18538067
_IMAGE_MAGIC: Final = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a")
# Top-level ISO BMFF boxes walked for the completeness check: a fragmented MP4 has two per
# fragment, so this covers hours of one-second fragments and still bounds a hostile file.
_MAX_TOP_LEVEL_BOXES: Final = 100_000


def sniff_container(head: bytes) -> ContainerKind:
    """The container named by the file's first bytes (`HEAD_BYTES` of them suffice).

    Raises UnsupportedMediaType for anything that is not an allowed video container (text,
    playlists, scripts, images, audio-only files) and BadRequest for a header cut short.
    """
    if not head:
        raise BadRequest("empty file")
    if head[4:8] == b"ftyp":
        return _sniff_iso_bmff(head)
    if head[4:8] in _LEGACY_QUICKTIME_ATOMS:
        return "mov"
    if head.startswith(_EBML_MAGIC):
        return _sniff_ebml(head)
    if head.startswith(b"RIFF") and len(head) >= 12:
        return _sniff_riff(head)
    if _is_prefix_of_a_signature(head):
        raise BadRequest("the file is too short to be a video: its header is cut off")
    raise UnsupportedMediaType(_not_a_video_reason(head))


def _sniff_iso_bmff(head: bytes) -> ContainerKind:
    size = struct.unpack(">I", head[:4])[0]
    if size < 16:  # 8 bytes of box header, a major brand and a minor version
        raise BadRequest("malformed MP4/MOV: the ftyp box is too small to hold a brand")
    if len(head) < 16:
        raise BadRequest("the file is too short to be a video: its ftyp box is cut off")
    end = min(size, len(head))
    major = head[8:12]
    compatible = [head[i : i + 4] for i in range(16, end - 3, 4)]
    for brand in (major, *compatible):
        if brand in _MOV_BRANDS:
            return "mov"
        if brand in _M4V_BRANDS:
            return "m4v"
        if brand in _MP4_BRANDS:
            return "mp4"
    if major in _AUDIO_BRANDS:
        raise UnsupportedMediaType(f"an audio-only file has no video; upload {ALLOWED_CONTAINERS}")
    if major in _IMAGE_BRANDS:
        raise UnsupportedMediaType(f"this is an image, not a video; upload {ALLOWED_CONTAINERS}")
    raise UnsupportedMediaType(
        f"unsupported ISO media brand {_printable(major)}; upload {ALLOWED_CONTAINERS}"
    )


def _sniff_ebml(head: bytes) -> ContainerKind:
    doctype = _ebml_doctype(head)
    if doctype == "webm":
        return "webm"
    if doctype == "matroska":
        return "mkv"
    raise UnsupportedMediaType(
        f"unsupported EBML document type {doctype!r}; upload {ALLOWED_CONTAINERS}"
    )


def _sniff_riff(head: bytes) -> ContainerKind:
    form = head[8:12]
    if form == b"AVI ":
        return "avi"
    if form == b"WEBP":
        raise UnsupportedMediaType(f"this is an image, not a video; upload {ALLOWED_CONTAINERS}")
    if form == b"WAVE":
        raise UnsupportedMediaType(f"an audio-only file has no video; upload {ALLOWED_CONTAINERS}")
    raise UnsupportedMediaType(
        f"unsupported RIFF form {_printable(form)}; upload {ALLOWED_CONTAINERS}"
    )


def _not_a_video_reason(head: bytes) -> str:
    text = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    if text.startswith(b"#EXTM3U"):
        return f"an HLS playlist is not a video file; upload the video ({ALLOWED_CONTAINERS})"
    if text.startswith(b"ffconcat version"):
        return f"an ffconcat script is not a video file; upload {ALLOWED_CONTAINERS}"
    if head.startswith(_IMAGE_MAGIC):
        return f"this is an image, not a video; upload {ALLOWED_CONTAINERS}"
    return f"unsupported video format; upload {ALLOWED_CONTAINERS}"


def _is_prefix_of_a_signature(head: bytes) -> bool:
    """A file so short that its first bytes could still begin an allowed container."""
    if len(head) >= 12:
        return False
    if _EBML_MAGIC.startswith(head[:4]) or b"RIFF".startswith(head[:4]):
        return True
    return len(head) > 4 and b"ftyp".startswith(head[4:8])


def _printable(tag: bytes) -> str:
    return repr(tag.decode("latin-1")) if tag.isascii() and tag.isalnum() else tag.hex()


# EBML: variable-length integers (RFC 8794 §4) ----------------------------------------------


def read_vint(data: bytes, pos: int, *, keep_marker: bool) -> tuple[int, int, bool]:
    """(value, length in bytes, all value bits set) of the EBML variable-length integer at pos.

    Element IDs keep their length marker bit (`keep_marker`), sizes drop it; a size whose value
    bits are all ones means "unknown" (a live stream's Segment).
    """
    if pos >= len(data):
        raise BadRequest("the file is too short to be a video: its EBML header is cut off")
    first = data[pos]
    if first == 0:
        raise BadRequest("malformed EBML: a variable-length integer is longer than 8 bytes")
    length = 9 - first.bit_length()
    if pos + length > len(data):
        raise BadRequest("the file is too short to be a video: its EBML header is cut off")
    value = first if keep_marker else first & (0xFF >> length)
    for byte in data[pos + 1 : pos + length]:
        value = (value << 8) | byte
    all_ones = value == (1 << (7 * length)) - 1
    return value, length, all_ones


def _ebml_header_bounds(head: bytes) -> tuple[int, int]:
    """(start, end) of the EBML header's payload."""
    _, id_length, _ = read_vint(head, 0, keep_marker=True)
    size, size_length, unknown = read_vint(head, id_length, keep_marker=False)
    start = id_length + size_length
    if unknown or start + size > len(head):
        raise BadRequest("malformed or truncated EBML header")
    return start, start + size


def _ebml_doctype(head: bytes) -> str:
    pos, end = _ebml_header_bounds(head)
    while pos < end:
        element, id_length, _ = read_vint(head, pos, keep_marker=True)
        size, size_length, _ = read_vint(head, pos + id_length, keep_marker=False)
        pos += id_length + size_length
        if pos + size > end:
            raise BadRequest("malformed EBML header: an element runs past its end")
        if element == _EBML_DOCTYPE:
            return head[pos : pos + size].rstrip(b"\x00").decode("ascii", errors="replace")
        pos += size
    return "matroska"  # RFC 8794: DocType's default value


# Completeness ------------------------------------------------------------------------------


def check_complete(file: BinaryIO, kind: ContainerKind, size: int) -> None:
    """Raise BadRequest when the container's own sizes say bytes are missing from the end."""
    if kind in ("mp4", "mov", "m4v"):
        _check_iso_bmff_boxes(file, size)
    elif kind in ("mkv", "webm"):
        _check_matroska_segment(file, size)
    else:
        _check_riff(file, size)


def _check_iso_bmff_boxes(file: BinaryIO, size: int) -> None:
    offset = 0
    for _ in range(_MAX_TOP_LEVEL_BOXES):
        if offset >= size:
            return
        if size - offset < 8:
            raise _truncated()
        file.seek(offset)
        header = file.read(16)
        box_size = struct.unpack(">I", header[:4])[0]
        if box_size == 0:  # this box runs to the end of the file
            return
        if box_size == 1:
            if len(header) < 16:
                raise _truncated()
            box_size = struct.unpack(">Q", header[8:16])[0]
        if box_size < 8:
            raise BadRequest("malformed MP4/MOV: a top-level box has an impossible size")
        if offset + box_size > size:
            raise _truncated()
        offset += box_size
    raise BadRequest("malformed MP4/MOV: too many top-level boxes")


def _check_matroska_segment(file: BinaryIO, size: int) -> None:
    file.seek(0)
    head = file.read(HEAD_BYTES)
    _, header_end = _ebml_header_bounds(head)
    if header_end >= size:
        raise _truncated()
    element, id_length, _ = read_vint(head, header_end, keep_marker=True)
    if element != _MATROSKA_SEGMENT:
        raise BadRequest("malformed Matroska/WebM: no Segment after the EBML header")
    segment_size, size_length, unknown = read_vint(head, header_end + id_length, keep_marker=False)
    if not unknown and header_end + id_length + size_length + segment_size > size:
        raise _truncated()


def _check_riff(file: BinaryIO, size: int) -> None:
    file.seek(0)
    header = file.read(12)
    riff_size = struct.unpack("<I", header[4:8])[0]
    # A file over 1 GiB chains RIFF AVIX chunks; only the first one's size is checked.
    if 8 + riff_size > size:
        raise _truncated()


def _truncated() -> BadRequest:
    return BadRequest("the video file is truncated: it ends before its container says it does")
