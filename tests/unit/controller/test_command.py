"""Controller flags: durations, addresses, validation and exit codes."""

from collections.abc import Iterator

import pytest
import structlog

from provisioner import cli, errors
from provisioner.controller import command


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """cli.main configures structlog to print to the (captured) stderr; undo that."""
    yield
    structlog.reset_defaults()


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("15s", 15.0), ("10m", 600.0), ("1h30m", 5400.0), ("500ms", 0.5), ("2.5", 2.5)],
    ids=["seconds", "minutes", "hours-and-minutes", "milliseconds", "plain-number"],
)
def test_durations_parse_like_go(text: str, seconds: float) -> None:
    assert command.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "ten", "10x", "5s3", "-1s", "0"], ids=str)
def test_bad_durations_are_refused_with_an_example(text: str) -> None:
    with pytest.raises(errors.InvalidArgument, match="duration"):
        command.parse_duration(text)


@pytest.mark.parametrize(
    ("text", "address"),
    [
        (":8080", ("0.0.0.0", 8080)),
        ("127.0.0.1:9090", ("127.0.0.1", 9090)),
        ("[::1]:8080", ("::1", 8080)),
        ("", None),
        ("0", None),
    ],
    ids=["port-only", "host-port", "ipv6", "empty-disables", "zero-disables"],
)
def test_metrics_addresses_parse(text: str, address: tuple[str, int] | None) -> None:
    assert command.parse_address(text) == address


@pytest.mark.parametrize("text", ["8080", "host:", "host:99999", "host:http"], ids=str)
def test_bad_metrics_addresses_name_the_flag(text: str) -> None:
    with pytest.raises(errors.InvalidArgument, match="--metrics-address"):
        command.parse_address(text)


def test_lease_name_is_the_driver_name_as_a_dns_label() -> None:
    assert command.lease_name("glusterfs.csi.heketi.io") == "glusterfs-csi-heketi-io"


def _args(*argv: str) -> object:
    return cli.build_parser().parse_args(["controller", *argv])


def test_defaults_build_a_config_without_leader_election() -> None:
    config = command.build_config(_args())  # type: ignore[arg-type]
    assert (config.workers, config.resync_seconds, config.leader_election) == (16, 600.0, None)
    assert config.metrics_address == ("0.0.0.0", 8080)


def test_environment_variables_are_flag_fallbacks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKERS", "3")
    monkeypatch.setenv("RESYNC", "1m")
    monkeypatch.setenv("LEADER_ELECT", "true")
    monkeypatch.setenv("POD_NAMESPACE", "storage")
    config = command.build_config(_args())  # type: ignore[arg-type]
    assert (config.workers, config.resync_seconds) == (3, 60.0)
    assert config.leader_election is not None
    assert config.leader_election.namespace == "storage"


def test_leader_elect_without_a_value_turns_election_on() -> None:
    config = command.build_config(_args("--leader-elect", "--leader-election-namespace", "x"))  # type: ignore[arg-type]
    assert config.leader_election is not None
    assert config.leader_election.name == "glusterfs-csi-heketi-io"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--workers", "0"], "--workers must be at least 1"),
        (["--workers", "many"], "--workers must be a number"),
        (["--resync", "soon"], "not a duration"),
        (["--leader-elect", "maybe"], "--leader-elect must be true or false"),
        (["--leader-elect", "--leader-election-namespace", ""], "--leader-election-namespace"),
        (
            [
                "--leader-elect",
                "--leader-election-namespace",
                "x",
                "--leader-election-renew-deadline",
                "20s",
            ],
            "lease duration > renew deadline",
        ),
        (["--kubeconfig", "/nonexistent/kubeconfig"], "cannot load kubeconfig"),
    ],
    ids=[
        "zero-workers",
        "text-workers",
        "bad-resync",
        "bad-bool",
        "no-namespace",
        "renew-deadline-too-long",
        "missing-kubeconfig",
    ],
)
def test_invalid_configuration_exits_2_with_a_clear_message(
    argv: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("POD_NAMESPACE", raising=False)
    monkeypatch.setattr(command, "_own_namespace", lambda: None)
    assert cli.main(["controller", *argv]) == 2
    assert message in capsys.readouterr().err
