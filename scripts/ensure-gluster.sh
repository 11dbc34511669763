#!/usr/bin/env bash
# Installs the Debian GlusterFS packages if missing and starts glusterd if it is
# not running. Needs root; as another user it only reports what is missing.
set -euo pipefail

if [ "$(id -u)" != 0 ]; then
    echo "ensure-gluster: not root; skipping GlusterFS set-up (mount tests will be skipped)" >&2
    exit 0
fi

if ! command -v glusterd >/dev/null || ! command -v mount.glusterfs >/dev/null; then
    echo "ensure-gluster: installing glusterfs-server glusterfs-client" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q glusterfs-server glusterfs-client
fi

if ! gluster --mode=script --timeout=5 volume list >/dev/null 2>&1; then
    echo "ensure-gluster: starting glusterd" >&2
    mkdir -p /var/log/glusterfs /var/lib/glusterd
    glusterd
    for _ in $(seq 1 60); do
        if gluster --mode=script --timeout=5 volume list >/dev/null 2>&1; then
            break
        fi
        sleep 0.5
    done
fi
gluster --mode=script --timeout=5 volume list >/dev/null
echo "ensure-gluster: glusterd is running" >&2
