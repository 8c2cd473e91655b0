"""Video metadata: the same four rules as photos (`veil.imaging.metadata`), for the tags
FFmpeg reads from MP4/MOV (`udta`, `meta`/`keys`, `mvhd` dates) and Matroska/WebM (`Tags`).

The output container is written from scratch, so nothing of the input's is copied unless
this table lets it through: unknown tags, `uuid` boxes (XMP, C2PA), timed metadata tracks
(Apple's location and face-region tracks), data streams, subtitles and cover art never
reach the output. Keys are compared in lower case (Matroska tags are upper case).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from veil.imaging.metadata import MetadataReport, Policy, Rule

K, P = Rule.KEEP, Rule.PERSONAL

# Container-level tags. Dates are kept, as for photos (EXIF DateTimeOriginal).
CONTAINER_TAGS: dict[str, Rule] = {
    "creation_time": K,
    "date": K,
    "title": K,
    "description": K,
    "copyright": K,
    "make": K,
    "model": K,
    "com.apple.quicktime.creationdate": K,
    "com.apple.quicktime.make": K,
    "com.apple.quicktime.model": K,
    "com.apple.quicktime.software": K,
    "com.apple.quicktime.title": K,
    "com.apple.quicktime.description": K,
    "com.apple.quicktime.copyright": K,
    "com.android.version": K,
    "com.android.capture.fps": K,
    "com.android.manufacturer": K,
    "com.android.model": K,
    "date_recorded": K,
    # Location, people, devices' identities, free text.
    "location": P,
    "location-eng": P,
    "com.apple.quicktime.location.iso6709": P,
    "com.apple.quicktime.location.name": P,
    "com.apple.quicktime.location.body": P,
    "com.apple.quicktime.location.note": P,
    "com.apple.quicktime.location.role": P,
    "com.apple.quicktime.location.date": P,
    "com.apple.quicktime.location.accuracy.horizontal": P,
    "artist": P,
    "author": P,
    "album_artist": P,
    "composer": P,
    "comment": P,
    "keywords": P,
    "com.apple.quicktime.author": P,
    "com.apple.quicktime.artist": P,
    "com.apple.quicktime.comment": P,
    "com.apple.quicktime.keywords": P,
    "com.apple.quicktime.displayname": P,
    "com.apple.quicktime.content.identifier": P,  # pairs a Live Photo's video and still
}

# Stream-level tags.
STREAM_TAGS: dict[str, Rule] = {"language": K, "creation_time": K}

# Substrings that make any other tag personal (never kept by default, whatever its name).
_PERSONAL_WORDS = ("location", "gps", "serial", "owner", "author", "artist", "identifier")


def rule_of(key: str, table: Mapping[str, Rule]) -> Rule:
    name = key.lower()
    if name in table:
        return table[name]
    if any(word in name for word in _PERSONAL_WORDS):
        return P
    return Rule.DROP


def filter_tags(
    tags: Mapping[str, str], table: Mapping[str, Rule], policy: Policy, report: MetadataReport
) -> dict[str, str]:
    """The tags the policy allows; every other one is named in `report`."""
    kept: dict[str, str] = {}
    names = {key.lower() for key in tags}
    for key, value in tags.items():
        if key.lower() in _WRITTEN_BY_MUXER:
            continue  # the muxer writes its own (brands, encoder, handler names)
        base = _LANGUAGE_SUFFIX.sub("", key)
        if base != key and base.lower() in names:
            continue  # "artist-eng" beside "artist": FFmpeg's copy of the same atom
        rule = rule_of(base, table)
        if policy.allows(rule) and _clean(value):
            kept[key] = value
        else:
            report.add(key)
    return kept


# Tags FFmpeg reports from the container structure itself and its muxers write anew.
_WRITTEN_BY_MUXER = {
    "major_brand",
    "minor_version",
    "compatible_brands",
    "encoder",
    "handler_name",
    "vendor_id",
    "duration",
    "muxing_app",
    "writing_app",
}


_LANGUAGE_SUFFIX = re.compile(r"-[a-z]{3}$")


def _clean(value: str) -> bool:
    return isinstance(value, str) and len(value) <= 4096 and "\x00" not in value


def needs_metadata_keys(tags: Mapping[str, str]) -> bool:
    """Whether MOV/MP4 must write `meta`/`keys` (reverse-DNS names such as
    com.apple.quicktime.make have no classic `udta` atom)."""
    return any("." in key for key in tags)
