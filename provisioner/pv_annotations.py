"""The Heketi coordinates a PV of ours carries in its annotations.

Deleting or expanding a volume must work after its StorageClass is gone, so the
controller records where the volume lives (URL, user, Secret reference, CA
file, Heketi volume name) on the claim's intent and on the PV; `migrate` writes
the same set on PVs it brings across, so our controller can manage them. The
key itself is never recorded: only the Secret that holds it.
"""

from provisioner import names
from provisioner.storageclass import ProvisioningParams


def heketi_annotations(params: ProvisioningParams, *, volume_name: str) -> dict[str, str]:
    """What expanding and deleting the volume need when the StorageClass is gone."""
    ann = {
        names.ANN_HEKETI_URL: params.rest_url,
        names.ANN_HEKETI_USER: params.rest_user,
        names.ANN_HEKETI_VOLUME_NAME: volume_name,
    }
    if params.secret_namespace and params.secret_name:
        ann[names.ANN_SECRET_NAMESPACE] = params.secret_namespace
        ann[names.ANN_SECRET_NAME] = params.secret_name
    if params.rest_ca_file:
        ann[names.ANN_HEKETI_CA] = params.rest_ca_file
    return ann
