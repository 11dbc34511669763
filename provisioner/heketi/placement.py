"""Heketi's placement options, read from a volume's `glustervolumeoptions` as Heketi
v10.4.1 reads them (apps/glusterfs `volume_entry.go`, `tag_matching_rule.go`,
`tags.go`, `placer_arbiter.go`).

A StorageClass asks for an arbiter volume, strict zone checking or a device tier
through `volumeoptions` entries Heketi knows by name; Heketi reads them from the
volume's options with these rules, and so do we (GetCapacity, the controller's
check of a placement no topology can satisfy, and the Heketi test server):

* options are split once on the first space into key and value; a later key wins
  (`volOptsMap`);
* `user.heketi.arbiter` is true when Go's `strconv.ParseBool` says so (`true`, `1`,
  `t`, `TRUE`, ...; `yes` is not true);
* `user.heketi.average-file-size` is KiB, parsed by `strconv.ParseUint`; 0 or
  unparsable means the 64 KiB default;
* `user.heketi.zone-checking strict` puts the bricks of a set in distinct zones;
  any other value means none;
* `user.heketi.device-tag-match KEY=VALUE` (or `KEY!=VALUE`) keeps bricks on devices
  whose tags (the node's merged with the device's own) match. Heketi v10.4.1 has
  no `device-tag-inverse-match` option: `!=` is the inverse match.
"""

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

ARBITER_KEY: Final = "user.heketi.arbiter"
AVERAGE_FILE_SIZE_KEY: Final = "user.heketi.average-file-size"
ZONE_CHECKING_KEY: Final = "user.heketi.zone-checking"
TAG_MATCH_KEY: Final = "user.heketi.device-tag-match"
#: volume_entry.go averageFileSize: 64 KiB when the volume sets none (or 0).
DEFAULT_AVERAGE_FILE_KIB: Final = 64
#: placer_arbiter.go arbiter_index: the arbiter is the third brick of a set.
ARBITER_INDEX: Final = 2

#: tag_matching_rule.go tag_match_regex, verbatim: `.-_` is a range (it holds `=`,
#: `:`, `@`, upper case letters...), as in Go's RE2.
_TAG_RULE = re.compile(r"^([a-zA-Z0-9.-_]+)(!?=)([a-zA-Z0-9.-_]+)$")
_GO_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_GO_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})
_GO_UINT64_MAX = 2**64 - 1


class InvalidTagRule(ValueError):
    """`user.heketi.device-tag-match` holds no valid rule; the message is Heketi's."""


@dataclass(frozen=True)
class TagRule:
    """`KEY=VALUE` (equal) or `KEY!=VALUE`; a missing tag has the value ""."""

    key: str
    equal: bool
    value: str

    def matches(self, tags: Mapping[str, str]) -> bool:
        return (tags.get(self.key, "") == self.value) == self.equal

    def __str__(self) -> str:
        return f"{self.key}{'=' if self.equal else '!='}{self.value}"


def parse_tag_rule(text: str) -> TagRule:
    """The rule, or `InvalidTagRule` with Heketi's message."""
    found = _TAG_RULE.match(text)
    if found is None or "\n" in text:
        raise InvalidTagRule(f"Invalid tag match rule: {text}")
    key, match, value = found.groups()
    return TagRule(key=key, equal=match == "=", value=value)


@dataclass(frozen=True)
class Placement:
    """What a volume's options ask of Heketi's brick placer."""

    arbiter: bool = False
    average_file_kib: int = DEFAULT_AVERAGE_FILE_KIB
    zone_strict: bool = False
    #: The raw `device-tag-match` value ("" = no rule); `tag_rule` parses it.
    tag_match: str = ""

    def tag_rule(self) -> TagRule | None:
        """The device filter's rule; `InvalidTagRule` when the value is malformed."""
        return parse_tag_rule(self.tag_match) if self.tag_match else None

    @property
    def constrained(self) -> bool:
        """Whether the options restrict which devices may take a brick."""
        return self.zone_strict or bool(self.tag_match)


def options_map(options: Iterable[str]) -> dict[str, str]:
    """volOptsMap: "key value" pairs split on the first space; later keys win."""
    found: dict[str, str] = {}
    for option in options:
        key, _, value = option.partition(" ")
        found[key] = value
    return found


def placement_of(options: Iterable[str]) -> Placement:
    """The placement a volume with these `glustervolumeoptions` gets from Heketi."""
    found = options_map(options)
    average = go_uint(found.get(AVERAGE_FILE_SIZE_KEY, ""))
    return Placement(
        arbiter=go_bool(found.get(ARBITER_KEY, "")) is True,
        average_file_kib=average or DEFAULT_AVERAGE_FILE_KIB,
        zone_strict=found.get(ZONE_CHECKING_KEY) == "strict",
        tag_match=found.get(TAG_MATCH_KEY, ""),
    )


def go_bool(value: str) -> bool | None:
    """Go's strconv.ParseBool; None where it fails."""
    if value in _GO_TRUE:
        return True
    if value in _GO_FALSE:
        return False
    return None


def go_uint(value: str) -> int | None:
    """Go's strconv.ParseUint(value, 10, 64); None where it fails."""
    if not value.isascii() or not value.isdigit():
        return None
    number = int(value)
    return number if number <= _GO_UINT64_MAX else None


def merged_tags(*layers: Mapping[str, str] | None) -> dict[str, str]:
    """MergeTags: the node's tags, then the device's own on top."""
    merged: dict[str, str] = {}
    for layer in layers:
        merged.update(layer or {})
    return merged
