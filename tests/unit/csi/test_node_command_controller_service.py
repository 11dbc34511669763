"""`glusterfs-provisioner node --controller-service` flags → controller configuration."""

import argparse
from pathlib import Path

import pytest

from provisioner import cli
from provisioner.csi import node_command
from provisioner.csi.controller_service import ControllerService
from provisioner.csi.heketi_access import HeketiDefaults
from provisioner.errors import InvalidArgument

BASE = ["node", "--node-id", "n1", "--endpoint", "unix:///tmp/x/csi.sock"]


def parse(*extra: str) -> argparse.Namespace:
    return cli.build_parser().parse_args([*BASE, *extra])


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("CONTROLLER_SERVICE", "HEKETI_URL", "HEKETI_USER", "HEKETI_KEY_FILE",
                "HEKETI_KEY", "HEKETI_CA_FILE"):  # fmt: skip
        monkeypatch.delenv(var, raising=False)


def test_without_the_flag_there_is_no_controller_service() -> None:
    config = node_command.config_from_args(parse())
    assert config.controller is None
    services = node_command.build_services(config)
    assert services.controller is None
    assert not services.identity.controller_service


def test_the_flag_serves_the_controller_and_advertises_it(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("s3cret\n")
    args = parse(
        "--controller-service", "--heketi-url", "http://heketi:8080/",
        "--heketi-user", "user", "--heketi-key-file", str(key_file),
        "--heketi-ca-file", "/etc/ca.pem",
    )  # fmt: skip
    config = node_command.config_from_args(args)
    assert config.controller == node_command.ControllerServiceConfig(
        heketi=HeketiDefaults(
            url="http://heketi:8080", user="user", key="s3cret", ca_file="/etc/ca.pem"
        )
    )
    services = node_command.build_services(config)
    assert isinstance(services.controller, ControllerService)
    assert services.identity.controller_service


def test_environment_turns_the_controller_on_with_the_key_from_env(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CONTROLLER_SERVICE", "true")
    monkeypatch.setenv("HEKETI_URL", "http://heketi:8080")
    monkeypatch.setenv("HEKETI_KEY", "from-env")
    config = node_command.controller_service_config(parse())
    assert config is not None
    assert (config.heketi.url, config.heketi.user, config.heketi.key) == (
        "http://heketi:8080",
        "admin",
        "from-env",
    )


def test_the_controller_may_run_without_a_plugin_heketi() -> None:
    config = node_command.controller_service_config(parse("--controller-service"))
    assert config == node_command.ControllerServiceConfig(heketi=HeketiDefaults())


@pytest.mark.parametrize(
    ("extra", "env_key", "file_text", "message"),
    [
        (["--heketi-url", "ftp://x"], None, None, "--heketi-url must be an http:// or https://"),
        (["--heketi-ca-file", "ca.pem"], None, None, "--heketi-ca-file must be an absolute path"),
        (["--heketi-user", ""], None, None, "--heketi-user must not be empty"),
        (["--heketi-key-file", "KEYFILE"], "also", "k",
         "set either --heketi-key-file or HEKETI_KEY, not both"),
        (["--heketi-key-file", "KEYFILE"], None, "", "--heketi-key-file KEYFILE is empty"),
        (["--heketi-key-file", "KEYFILE"], None, "k" * 5000,
         "--heketi-key-file KEYFILE is larger than 4096 bytes; it should hold only the Heketi key"),
        (["--heketi-key-file", "MISSING"], None, None,
         "cannot read --heketi-key-file MISSING: No such file or directory"),
    ],
    ids=["bad-url", "relative-ca", "empty-user", "key-twice", "empty-key-file",
         "huge-key-file", "missing-key-file"],
)  # fmt: skip
def test_bad_controller_settings_are_refused_with_a_clear_message(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    extra: list[str],
    env_key: str | None,
    file_text: str | None,
    message: str,
) -> None:
    key_file, missing = tmp_path / "key", tmp_path / "missing"
    if file_text is not None:
        key_file.write_text(file_text)
    if env_key is not None:
        monkeypatch.setenv("HEKETI_KEY", env_key)
    paths = {"KEYFILE": str(key_file), "MISSING": str(missing)}
    args = parse("--controller-service", *[paths.get(arg, arg) for arg in extra])
    with pytest.raises(InvalidArgument) as caught:
        node_command.controller_service_config(args)
    expected = message.replace("KEYFILE", str(key_file)).replace("MISSING", str(missing))
    assert expected in str(caught.value)
    assert "k" * 100 not in str(caught.value)


def test_node_command_exits_2_on_bad_controller_settings(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = cli.main([*BASE, "--controller-service", "--heketi-url", "heketi"])
    assert code == 2
    assert "--heketi-url must be an http:// or https://" in capsys.readouterr().err
