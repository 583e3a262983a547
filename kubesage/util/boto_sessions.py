"""boto3 sessions that share one parsed copy of botocore's service models per process.

A new boto3 session parses botocore's JSON again for every service it makes a client for: the
SageMaker API's model alone is 2.6 MB of JSON, and every session parses the endpoint and
partition tables too. Code that opens a session per call (an S3 read, a runner's clients, a
preflight) paid that on every call: 9 s of `json.loads` across 39 sessions in three moto suites,
under a profiler (0.4 s with this). Here every session gets the same botocore loader, the object
that reads and caches those files, as one session already shares it among its own clients.
Everything else about a session is still new: credentials, region and configuration are read
from the environment when it is created. The loader only reads the installed botocore's (and
boto3's) data files, so a cached model is never stale; sessions under a different `AWS_DATA_PATH`
get a loader of their own.

`new_boto3_session` is for the sessions kubesage creates; `shared_service_models` for those a
library creates inside a block (the SageMaker SDK opens its own).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import boto3
    from botocore.loaders import Loader

_LOADERS: dict[str | None, Loader] = {}
_LOCK = threading.Lock()


class _EachPathOnce(list[str]):
    """A loader's search paths, to which every boto3 session created on it appends boto3's data
    folder: kept once, however many sessions share the loader. Nothing is ever removed, so a
    lookup iterating the paths in another thread sees them all."""

    def append(self, path: str) -> None:
        if path not in self:
            super().append(path)


def shared_loader(data_path: str | None = None) -> Loader:
    """This process's botocore loader for `data_path` (AWS_DATA_PATH's value; None: botocore's own
    folders), searching the paths `botocore.loaders.create_loader` gives one."""
    from botocore.loaders import Loader, create_loader

    with _LOCK:
        loader = _LOADERS.get(data_path)
        if loader is None:
            paths = _EachPathOnce(create_loader(data_path).search_paths)
            # The loader keeps (and boto3 extends) the list it is given.
            loader = _LOADERS[data_path] = Loader(extra_search_paths=paths, include_default_search_paths=False)
        return loader


def new_boto3_session(**kwargs: Any) -> boto3.Session:
    """`boto3.Session(**kwargs)`, on this process's shared botocore loader."""
    import boto3
    import botocore.session

    core = botocore.session.Session()
    core.register_component("data_loader", shared_loader(core.get_config_variable("data_path")))
    return boto3.Session(botocore_session=core, **kwargs)


@contextmanager
def shared_service_models() -> Iterator[None]:
    """Every botocore session created inside the block, by any library, gets the shared loader.

    For code that opens sessions of its own: building a SageMaker definition opens three (ours, and
    the SDK's in its session and step classes). Not thread-safe against other code replacing
    `botocore.session.create_loader` at the same time.
    """
    import botocore.session

    original = botocore.session.create_loader
    botocore.session.create_loader = shared_loader
    try:
        yield
    finally:
        botocore.session.create_loader = original
