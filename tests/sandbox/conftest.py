"""Fixtures for the sandbox API tests: an empty sandbox on a loopback port, the official client
pointed at it, and pod/deployment factories whose objects satisfy the v37 strict models."""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator

import pytest
from kubernetes import client, config

from sandbox.cluster import SandboxCluster
from sandbox.resources import KINDS
from sandbox.server import SandboxServer

os.environ["NO_PROXY"] = "127.0.0.1,localhost"
os.environ["no_proxy"] = "127.0.0.1,localhost"


@pytest.fixture(scope="module")
def server() -> Iterator[SandboxServer]:
    """No controllers: these tests pin API behaviour, not the cluster's motion."""
    with SandboxServer(seeded=False) as srv:
        srv.controllers.stop()
        yield srv


@pytest.fixture
def cluster(server: SandboxServer) -> Iterator[SandboxCluster]:
    """The module's cluster, emptied of pods and deployments after each test."""
    yield server.cluster
    store = server.cluster.store
    for kind in KINDS:
        for obj in store.list(kind)[0]:
            meta = obj["metadata"]
            store.delete(kind, meta.get("namespace", ""), meta["name"])
    server.cluster.faults.clear()
    server.cluster.journal.clear()
    gc.collect()  # a leaked client socket is then blamed on the test that leaked it


@pytest.fixture(scope="module")
def api_client(server: SandboxServer) -> Iterator[client.ApiClient]:
    api = config.new_client_from_config_dict(server.kubeconfig())
    yield api
    api.close()


@pytest.fixture
def core(api_client: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api_client)


@pytest.fixture
def apps(api_client: client.ApiClient) -> client.AppsV1Api:
    return client.AppsV1Api(api_client)
