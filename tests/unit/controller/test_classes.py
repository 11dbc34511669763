"""StorageClasses: a class's parameters are parsed once for all its claims, and a
change of parameters (or a bad one) is never answered from that memory."""

from typing import Any, cast

import pytest

from provisioner import errors
from provisioner.controller.classes import PARSED_ENTRIES, StorageClasses
from provisioner.controller.informer import Informer

DRIVER = "glusterfs.example.com"


def _classes() -> StorageClasses:
    return StorageClasses(cast(Informer, None), driver=DRIVER)


def _class(**parameters: str) -> dict[str, Any]:
    return {"metadata": {"name": "gluster"}, "provisioner": DRIVER, "parameters": parameters}


def test_claims_of_one_class_share_one_parse_of_its_parameters() -> None:
    classes = _classes()

    first = classes.params(_class(resturl="http://heketi:8080", volumetype="replicate:3"))
    second = classes.params(_class(volumetype="replicate:3", resturl="http://heketi:8080"))

    assert second is first


def test_changed_parameters_are_parsed_again() -> None:
    classes = _classes()
    classes.params(_class(resturl="http://heketi:8080", volumetype="replicate:3"))

    params = classes.params(_class(resturl="http://heketi:8080", volumetype="none"))

    assert params.durability.type == "none"


def test_invalid_parameters_are_refused_every_time() -> None:
    classes = _classes()
    for _ in range(2):
        with pytest.raises(errors.InvalidArgument, match="volumetype"):
            classes.params(_class(resturl="http://heketi:8080", volumetype="mirror:9"))


def test_the_memory_of_parsed_parameters_stays_bounded() -> None:
    classes = _classes()
    for gid in range(PARSED_ENTRIES + 5):
        classes.params(_class(resturl="http://heketi:8080", gidMin=str(2000 + gid)))

    assert len(classes._parsed) <= PARSED_ENTRIES
