"""`glusterfs-provisioner migrate` flags and exit codes (no cluster needed)."""

from pathlib import Path

import pytest

from provisioner import cli
from provisioner.migrate import command


def _config(*argv: str) -> command.MigrateConfig:
    return command.config_from_args(cli.build_parser().parse_args(["migrate", *argv]))


def test_plan_is_the_default_action() -> None:
    config = _config()
    assert (config.action, config.output, config.dry_run) == ("plan", "table", False)


def test_apply_takes_pv_names_and_prune_targets() -> None:
    config = _config("--wait", "2m", "apply", "--pv", "a", "b", "--prune", "ns/ep", "--dry-run")
    assert config.pvs == ("a", "b") and config.prune_named == (("ns", "ep"),)
    assert config.wait_seconds == 120 and config.dry_run


@pytest.mark.parametrize(
    "argv",
    [("apply",), ("apply", "--all", "--pv", "x"), ("rollback",), ("plan", "-o", "yaml")],
    ids=["apply-needs-a-selection", "all-or-pv-not-both", "rollback-needs-pv", "unknown-output"],
)
def test_bad_usage_exits_2_from_argparse(argv: tuple[str, ...]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.build_parser().parse_args(["migrate", *argv])
    assert exc.value.code == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("apply", "--all", "--prune", "no-namespace"),
         "--prune 'no-namespace' must be NAMESPACE/NAME"),
        (("--wait", "soon", "plan"), "invalid duration 'soon'"),
    ],
    ids=["prune-without-namespace", "bad-duration"],
)  # fmt: skip
def test_bad_values_exit_2_with_a_clear_message(
    argv: tuple[str, ...], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["migrate", *argv]) == command.EXIT_USAGE
    assert message in capsys.readouterr().err


def test_a_missing_kubeconfig_is_bad_usage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.kubeconfig"
    assert cli.main(["migrate", "--kubeconfig", str(missing), "plan"]) == command.EXIT_USAGE
    assert "cannot load kubeconfig" in capsys.readouterr().err
