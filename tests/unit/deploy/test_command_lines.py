"""The container command lines in deploy/ are ones our CLI accepts."""

import argparse

import pytest

from provisioner import cli
from tests.unit.deploy.manifests import Obj, base_objects, container, expand_env, find

OBJECTS = base_objects()
#: What kubelet substitutes for the $(VAR) references in the manifests.
KUBELET_ENV = {"NODE_ID": "worker-1", "POD_NAMESPACE": "glusterfs-provisioner"}


def _registered_commands(parser: argparse.ArgumentParser) -> set[str]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return set(action.choices)
    return set()


def _parse(workload: Obj, container_name: str) -> argparse.Namespace:
    args = expand_env(container(workload, container_name)["args"], KUBELET_ENV)
    parser = cli.build_parser()
    if args[0] not in _registered_commands(parser):
        pytest.skip(
            f"`glusterfs-provisioner {args[0]}` is not registered in provisioner/cli.py yet"
        )
    parsed = parser.parse_args(args)
    assert callable(parsed.run)
    return parsed


def test_controller_container_args_parse_into_a_valid_configuration() -> None:
    parsed = _parse(find(OBJECTS, "Deployment"), "controller")
    from provisioner.controller.command import build_config

    config = build_config(parsed)
    assert config.leader_election is not None
    assert config.leader_election.namespace == KUBELET_ENV["POD_NAMESPACE"]
    assert config.metrics_address == ("0.0.0.0", 8080)


def test_node_plugin_container_args_parse() -> None:
    _parse(find(OBJECTS, "DaemonSet"), "glusterfs-plugin")
