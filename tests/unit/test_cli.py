"""Where flags may stand on the command line: before or after a command's action."""

import pytest

from provisioner import cli
from provisioner.core import annotations
from provisioner.migrate import command as migrate_command


def _parse(*argv: str) -> dict[str, object]:
    return vars(cli.build_parser().parse_args(list(argv)))


@pytest.mark.parametrize(
    "argv",
    [
        ("migrate", "--kubeconfig", "/k", "plan"),
        ("migrate", "plan", "--kubeconfig", "/k"),
        ("migrate", "apply", "--all", "--kubeconfig", "/k"),
        ("migrate", "rollback", "--pv", "p", "--kubeconfig", "/k"),
        ("migrate", "classes", "--kubeconfig", "/k"),
        ("audit", "--heketi-url", "http://h:1", "--kubeconfig", "/k"),
        ("controller", "--kubeconfig", "/k"),
    ],
    ids=[
        "before-action",
        "after-plan",
        "after-apply",
        "after-rollback",
        "after-classes",
        "audit",
        "controller",
    ],
)
def test_the_kubeconfig_is_taken_before_or_after_the_action(argv: tuple[str, ...]) -> None:
    assert _parse(*argv)["kubeconfig"] == "/k"


def test_a_flag_after_the_action_wins_over_the_same_flag_before_it() -> None:
    parsed = _parse("migrate", "--driver-name", "a.example", "plan", "--driver-name", "b.example")
    assert parsed["driver_name"] == "b.example"


def test_a_flag_given_only_before_the_action_is_not_reset_by_the_action() -> None:
    parsed = _parse("migrate", "--kubeconfig", "/k", "--wait", "5m", "apply", "--all")
    assert (parsed["kubeconfig"], parsed["wait"]) == ("/k", "5m")


def test_defaults_hold_when_no_flag_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("KUBECONFIG", "DRIVER_NAME", "LOG_LEVEL", "LOG_FORMAT"):
        monkeypatch.delenv(var, raising=False)
    parsed = _parse("migrate", "plan")
    assert parsed["kubeconfig"] is None
    assert parsed["driver_name"] == annotations.DRIVER_NAME
    assert (parsed["log_level"], parsed["log_format"]) == ("info", "auto")
    assert parsed["wait"] == f"{int(migrate_command.DEFAULT_WAIT_SECONDS)}s"


@pytest.mark.parametrize(
    "argv",
    [
        ("--log-level", "debug", "node"),
        ("node", "--log-level", "debug"),
        ("migrate", "plan", "--log-level", "debug"),
        ("audit", "--log-level", "debug", "--heketi-url", "http://h:1"),
    ],
    ids=["before-command", "after-node", "after-migrate-action", "after-audit"],
)
def test_the_log_level_is_taken_anywhere(argv: tuple[str, ...]) -> None:
    assert _parse(*argv)["log_level"] == "debug"


def test_a_bad_log_level_after_the_action_is_bad_usage() -> None:
    with pytest.raises(SystemExit) as exc:
        _parse("migrate", "plan", "--log-level", "loud")
    assert exc.value.code == 2


def test_an_action_help_shows_the_cluster_flags(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _parse("migrate", "apply", "--help")
    shown = capsys.readouterr().out
    assert "--kubeconfig" in shown and "--driver-name" in shown and "--wait" in shown
