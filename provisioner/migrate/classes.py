"""`migrate classes`: a CSI twin of each in-tree GlusterFS StorageClass, or (`--replace`)
the class itself re-created under its name with our provisioner.

A StorageClass's provisioner and parameters are immutable, so `--replace` deletes and
re-creates it. The twin is made first and holds the class (annotation `twin-of`), so a
run interrupted after the delete re-creates the class from the twin on rerun. The twin
stays (claims may name it); delete it when none does.
"""

import contextlib
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from provisioner.core import annotations
from provisioner.core.storageclass import InvalidParameter, parse_parameters
from provisioner.kube.api import KubeAlreadyExists, Obj
from provisioner.migrate.cluster import Cluster, Snapshot, annotations_of, class_path, name_of

TWIN_SUFFIX: Final = "-csi"
#: StorageClass names are DNS subdomains: at most 253 characters.
MAX_NAME: Final = 253
_COPIED: Final = (
    "parameters",
    "reclaimPolicy",
    "mountOptions",
    "allowVolumeExpansion",
    "volumeBindingMode",
    "allowedTopologies",
)


@dataclass(frozen=True)
class ClassRow:
    name: str
    default: bool
    twin: str
    problem: str


def twin_name(name: str) -> str:
    if len(name) + len(TWIN_SUFFIX) <= MAX_NAME:
        return name + TWIN_SUFFIX
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: MAX_NAME - len(TWIN_SUFFIX) - 9]}-{digest}{TWIN_SUFFIX}"


def is_in_tree_class(sc: Obj) -> bool:
    return sc.get("provisioner") == annotations.IN_TREE_PLUGIN


def is_default(sc: Obj) -> bool:
    return annotations_of(sc).get(annotations.ANN_DEFAULT_CLASS) == "true"


def class_rows(snapshot: Snapshot) -> tuple[ClassRow, ...]:
    rows = []
    for sc in snapshot.classes:
        if not is_in_tree_class(sc):
            continue
        try:
            parse_parameters(sc.get("parameters") or {})
            problem = ""
        except InvalidParameter as exc:
            problem = str(exc)
        rows.append(ClassRow(name_of(sc), is_default(sc), twin_name(name_of(sc)), problem))
    return tuple(sorted(rows, key=lambda r: r.name))


def csi_class(sc: Obj, *, name: str, driver: str, default: bool, twin_of: str) -> Obj:
    """`sc` with our provisioner under `name` (same parameters and settings)."""
    ann = {k: v for k, v in annotations_of(sc).items() if k != annotations.ANN_DEFAULT_CLASS}
    if default:
        ann[annotations.ANN_DEFAULT_CLASS] = "true"
    if twin_of:
        ann[annotations.ANN_TWIN_OF] = twin_of
    body: dict[str, Any] = {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": name, "annotations": ann},
        "provisioner": driver,
    }
    body.update({k: sc[k] for k in _COPIED if k in sc})
    return body


Say = Callable[[str], None]


def stranded_twins(classes: list[Obj]) -> list[str]:
    """Names of in-tree classes a twin holds but that no longer exist (a `--replace`
    stopped between deleting the class and creating it again)."""
    present = {name_of(sc) for sc in classes}
    wanted = (annotations_of(sc).get(annotations.ANN_TWIN_OF, "") for sc in classes)
    return sorted({name for name in wanted if name and name not in present})


def ensure_twin(cluster: Cluster, sc: Obj, *, driver: str, dry_run: bool, say: Say) -> Obj:
    twin = twin_name(name_of(sc))
    existing = cluster.get(class_path(twin))
    if existing is not None:
        return existing
    body = csi_class(sc, name=twin, driver=driver, default=False, twin_of=name_of(sc))
    # the twin remembers whether the original was the default, for --replace
    body["metadata"]["annotations"][f"{annotations.DOMAIN}/was-default"] = str(
        is_default(sc)
    ).lower()
    say(f"StorageClass {name_of(sc)}: create CSI twin {twin}")
    if dry_run:
        return body
    try:
        return cluster.api.create(class_path(), body)
    except KubeAlreadyExists:
        return cluster.get(class_path(twin)) or body


def replace_class(cluster: Cluster, name: str, *, driver: str, dry_run: bool, say: Say) -> None:
    """Delete the in-tree class `name` and create it again with our provisioner."""
    current = cluster.get(class_path(name))
    twin = cluster.get(class_path(twin_name(name)))
    if current is not None and is_in_tree_class(current):
        twin = ensure_twin(cluster, current, driver=driver, dry_run=dry_run, say=say)
        say(f"StorageClass {name}: delete the in-tree class")
        if not dry_run:
            cluster.delete(class_path(name), uid=str(current["metadata"]["uid"]))
        current = None
    if twin is None:
        return
    if current is None:
        was_default = annotations_of(twin).get(f"{annotations.DOMAIN}/was-default") == "true"
        body = csi_class(twin, name=name, driver=driver, default=was_default, twin_of="")
        body["metadata"]["annotations"].pop(f"{annotations.DOMAIN}/was-default", None)
        say(f"StorageClass {name}: create it again with provisioner {driver}")
        if not dry_run:
            with contextlib.suppress(KubeAlreadyExists):
                cluster.api.create(class_path(), body)
