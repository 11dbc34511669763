"""Heketi's placement options read as Heketi v10.4.1 reads them."""

import pytest

from provisioner.heketi.placement import (
    DEFAULT_AVERAGE_FILE_KIB,
    InvalidTagRule,
    Placement,
    TagRule,
    go_bool,
    go_uint,
    merged_tags,
    options_map,
    parse_tag_rule,
    placement_of,
)
from testbed.heketi.placer import arbiter_brick_kib, arbiter_role


def test_options_split_on_the_first_space_and_a_later_key_wins() -> None:
    found = options_map(["", "a b c", "flag", "a d"])
    assert found == {"": "", "a": "d", "flag": ""}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        *[("true", True), ("1", True), ("T", True), ("False", False), ("0", False)],
        *[("yes", None), ("on", None), ("", None), ("tRUE", None), (" true", None)],
    ],
)
def test_booleans_are_gos_strconv_parsebool(value: str, expected: bool | None) -> None:
    assert go_bool(value) is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        *[("64", 64), ("007", 7), ("18446744073709551615", 2**64 - 1)],
        *[("18446744073709551616", None), ("-1", None), ("+1", None), ("1k", None), ("", None)],
        ("١٢", None),  # Arabic-Indic digits are digits to Python, not to Go
    ],
)
def test_sizes_are_gos_strconv_parseuint(value: str, expected: int | None) -> None:
    assert go_uint(value) == expected


def test_a_volume_without_placement_options_is_unconstrained() -> None:
    placement = placement_of(["", "performance.rda on", ""])
    assert placement == Placement()
    assert not placement.constrained and placement.tag_rule() is None


def test_every_placement_option_is_read() -> None:
    placement = placement_of(
        [
            "user.heketi.arbiter 1",
            "user.heketi.average-file-size 16",
            "user.heketi.zone-checking strict",
            "user.heketi.device-tag-match disktype!=hdd",
        ]
    )
    assert (placement.arbiter, placement.average_file_kib, placement.zone_strict) == (
        True,
        16,
        True,
    )
    assert placement.tag_rule() == TagRule(key="disktype", equal=False, value="hdd")
    assert placement.constrained


@pytest.mark.parametrize("value", ["0", "sixteen", "-4"])
def test_an_average_file_size_that_is_zero_or_not_a_number_is_the_default(value: str) -> None:
    placement = placement_of([f"user.heketi.average-file-size {value}"])
    assert placement.average_file_kib == DEFAULT_AVERAGE_FILE_KIB


@pytest.mark.parametrize("value", ["Strict", "none", "strict ", ""])
def test_only_the_exact_word_strict_checks_zones(value: str) -> None:
    assert not placement_of([f"user.heketi.zone-checking {value}"]).zone_strict


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("disktype=ssd", TagRule("disktype", True, "ssd")),
        ("disktype!=ssd", TagRule("disktype", False, "ssd")),
        # Heketi's character class `.-_` is a range holding `=`: the first group is greedy
        ("a=b=c", TagRule("a=b", True, "c")),
        ("Tier:A=1", TagRule("Tier:A", True, "1")),
        ("a==b", TagRule("a=", True, "b")),
    ],
)
def test_tag_rules_parse_as_heketis_regular_expression_does(text: str, rule: TagRule) -> None:
    assert parse_tag_rule(text) == rule


@pytest.mark.parametrize("text", ["disktype", "=ssd", "disktype=", "disk type=ssd", "a=b\n"])
def test_a_malformed_tag_rule_is_refused_with_heketis_message(text: str) -> None:
    with pytest.raises(InvalidTagRule) as raised:
        parse_tag_rule(text)
    assert str(raised.value) == f"Invalid tag match rule: {text}"


def test_a_device_without_the_tag_has_the_empty_value() -> None:
    assert not TagRule("disktype", True, "ssd").matches({})
    assert TagRule("disktype", False, "ssd").matches({})
    assert str(TagRule("disktype", False, "ssd")) == "disktype!=ssd"


def test_a_devices_own_tags_override_its_nodes() -> None:
    assert merged_tags({"disktype": "hdd", "rack": "1"}, {"disktype": "ssd"}, None) == {
        "disktype": "ssd",
        "rack": "1",
    }


@pytest.mark.parametrize(
    ("data_kib", "average", "expected"),
    [
        (1024 * 1024, 64, 16384),
        (10 * 1024 * 1024, 16, 655360),
        (1024 * 1024, 1024, 16384),  # 1 MiB raised to the 16 MiB XFS minimum
        (1024 * 1024, 1024 * 1024, 16384),
    ],
)
def test_an_arbiter_brick_holds_one_kib_per_average_file(
    data_kib: int, average: int, expected: int
) -> None:
    assert arbiter_brick_kib(data_kib, average) == expected


def test_an_average_file_larger_than_the_brick_is_heketis_error() -> None:
    with pytest.raises(
        ValueError, match=r"^Average file size \(2000000\) is greater than Brick size \(1048576\)$"
    ):
        arbiter_brick_kib(1048576, 2000000)


@pytest.mark.parametrize(
    ("value", "role"),
    [
        *[("required", "required"), ("disabled", "disabled"), ("supported", "supported")],
        *[("", "supported"), ("yes", "supported")],
    ],
)
def test_the_arbiter_tag_defaults_to_supported(value: str, role: str) -> None:
    assert arbiter_role({"arbiter": value} if value else {}) == role
