"""Several hosts of one training job on this machine (SageMaker local mode): where XGBoost's tracker
listens, and this machine's cores shared out between the hosts.

kubesage runs local-mode jobs on the host's network (local_mode.py: that is how they reach MLflow on
the host's 127.0.0.1). There every host shares one network namespace and the compose aliases
(algo-1-xxxxx) do not resolve, so the image is told to put the tracker on 127.0.0.1 at a free port.
On SageMaker none of this is set: the tracker is the first host, port 9099 (components/distributed.py).
"""

from __future__ import annotations

import os

from kubesage.util.ports import free_port

# Read by components/distributed.py; spelled here too so that runners do not import the image's code.
ENV_TRACKER_HOST = "KUBESAGE_TRACKER_HOST"
ENV_TRACKER_PORT = "KUBESAGE_TRACKER_PORT"
OMP_THREADS = "OMP_NUM_THREADS"


def threads_per_host(instance_count: int) -> int:
    """The cores here shared out between the hosts.

    On SageMaker each instance has its own cores; here every container shares this machine's. XGBoost's
    OpenMP threads busy-wait, so two hosts each running one thread per core wait on each other at every
    allreduce: measured on 2 cores, 3,500 rows, 100 rounds, 20.7 s of training instead of 0.4 s.
    """
    return max(1, (os.cpu_count() or 1) // instance_count)


def cluster_environment(instance_count: int) -> dict[str, str]:
    """The environment of every host of a local-mode training job on `instance_count` instances."""
    return {
        ENV_TRACKER_HOST: "127.0.0.1",
        ENV_TRACKER_PORT: str(free_port()),
        OMP_THREADS: str(threads_per_host(instance_count)),
    }
