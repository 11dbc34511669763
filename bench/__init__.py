"""Benchmarks for glusterfs-provisioner (`make bench`).

Three scenarios, each run with the pieces in separate processes as in a cluster,
so that the controller's CPU time and memory are its own:

- `burst`: 500 claims at once against the Kubernetes API and Heketi test servers;
- `scale`: the controller started against 10,000 bound claim/volume pairs;
- `node`: the CSI node plugin staging and publishing a real Gluster volume.

`python -m bench.run --help` lists the options; results go to bench/results.json.
"""
