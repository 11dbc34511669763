"""`glusterfs-provisioner node --help`: every flag documented with its environment fallback."""

import argparse
import re

import pytest

from provisioner import cli


def node_parser() -> argparse.ArgumentParser:
    subparsers = next(
        action
        for action in cli.build_parser()._actions
        if isinstance(action, argparse._SubParsersAction)
    )
    parser: argparse.ArgumentParser = subparsers.choices["node"]
    return parser


def node_flags() -> list[argparse.Action]:
    return [action for action in node_parser()._actions if action.dest != "help"]


def env_var(action: argparse.Action) -> str:
    found = re.search(r"\(env ([A-Z_]+)", action.help or "")
    assert found, f"{action.option_strings[0]} does not name its environment variable"
    return found.group(1)


def test_every_node_flag_has_help_naming_its_environment_variable() -> None:
    flags = node_flags()
    assert len(flags) >= 14
    for action in flags:
        env_var(action)


def test_the_help_text_shows_every_flag() -> None:
    text = node_parser().format_help()
    for action in node_flags():
        assert action.option_strings[0] in text


@pytest.mark.parametrize("option", [a.option_strings[0] for a in node_flags()])
def test_the_named_environment_variable_really_sets_the_flag(
    option: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    action = next(a for a in node_flags() if a.option_strings[0] == option)
    if action.nargs == 0:  # a switch: "true" turns it on
        raw, expected = "true", True
    elif action.type is float:
        raw, expected = "7.5", 7.5
    else:
        raw = "/env/value" if "dir" in action.dest or "file" in action.dest else "env-value"
        expected = action.type(raw) if callable(action.type) else raw
    monkeypatch.setenv(env_var(action), raw)
    # the parsers read the environment when built; the log flags fall back at the top level
    args = cli.build_parser().parse_args(["node"])
    assert getattr(args, action.dest) == expected
