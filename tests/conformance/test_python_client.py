"""The official Python client (`kubernetes` 37) against `kazan serve`: lists, creates, watches
with `watch.Watch()`, resumes from a resourceVersion, and discovers with `DynamicClient`.

Each test uses its own namespace, so the tests of this module share one server.
"""

import threading

import pytest
from conftest import wait_until
from kubernetes import client, config, dynamic, watch


@pytest.fixture(scope="module")
def api(server):
    api_client = config.new_client_from_config(config_file=str(server.kubeconfig))
    yield api_client
    api_client.close()


@pytest.fixture(scope="module")
def core(api):
    return client.CoreV1Api(api)


def make_namespace(core, name):
    # The client POSTs this with no Content-Type; the server must take it as JSON.
    created = core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    assert created.metadata.name == name
    return created


def configmap(name, labels=None, data=None):
    return client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name, labels=labels), data=data)


def test_list_namespaces_returns_the_builtin_ones_with_a_resource_version(core):
    listing = core.list_namespace()
    names = [ns.metadata.name for ns in listing.items]
    for expected in ("default", "kube-system", "kube-public", "kube-node-lease"):
        assert expected in names
    assert int(listing.metadata.resource_version) > 0
    assert all(ns.status.phase == "Active" for ns in listing.items)


def test_create_read_and_list_with_a_label_selector(core):
    make_namespace(core, "py-crud")
    core.create_namespaced_config_map("py-crud", configmap("red", {"color": "red"}, {"k": "1"}))
    core.create_namespaced_config_map("py-crud", configmap("blue", {"color": "blue"}))
    read = core.read_namespaced_config_map("red", "py-crud")
    assert read.data == {"k": "1"}
    assert read.metadata.uid
    selected = core.list_namespaced_config_map("py-crud", label_selector="color=red")
    assert [cm.metadata.name for cm in selected.items] == ["red"]
    with pytest.raises(client.ApiException) as missing:
        core.read_namespaced_config_map("green", "py-crud")
    assert missing.value.status == 404


def test_watch_streams_the_objects_created_while_it_runs(server, core):
    make_namespace(core, "py-watch")
    names = ["cm-1", "cm-2", "cm-3"]
    seen = []
    stream = watch.Watch()
    watches_before = server.open_watches("configmaps")

    def consume():
        # No resourceVersion: the current state (nothing yet) then every change; the server ends
        # the stream after timeout_seconds at the latest.
        for event in stream.stream(core.list_namespaced_config_map, "py-watch", timeout_seconds=20):
            seen.append((event["type"], event["object"].metadata.name))
            if len(seen) == len(names):
                stream.stop()

    consumer = threading.Thread(target=consume, daemon=True)
    consumer.start()
    wait_until(lambda: server.open_watches("configmaps") > watches_before, "the watch to open")
    for name in names:
        core.create_namespaced_config_map("py-watch", configmap(name))
    consumer.join(timeout=30)
    assert not consumer.is_alive(), f"watch did not deliver every event; saw {seen}"
    assert seen == [("ADDED", name) for name in names]


def test_watch_resumes_from_a_resource_version_with_only_later_changes(core):
    make_namespace(core, "py-resume")
    core.create_namespaced_config_map("py-resume", configmap("before"))
    resume_from = core.list_namespaced_config_map("py-resume").metadata.resource_version
    core.create_namespaced_config_map("py-resume", configmap("a", data={"v": "1"}))
    core.patch_namespaced_config_map("a", "py-resume", {"data": {"v": "2"}})
    core.create_namespaced_config_map("py-resume", configmap("b"))
    core.delete_namespaced_config_map("before", "py-resume")

    events = [
        (event["type"], event["object"].metadata.name, (event["object"].data or {}).get("v"))
        for event in watch.Watch().stream(
            core.list_namespaced_config_map, "py-resume", resource_version=resume_from, timeout_seconds=2
        )
    ]
    assert events == [
        ("ADDED", "a", "1"),
        ("MODIFIED", "a", "2"),
        ("ADDED", "b", None),
        ("DELETED", "before", None),
    ]


def test_dynamic_client_discovers_with_the_legacy_format(api):
    dyn = dynamic.DynamicClient(api)
    namespaces = dyn.resources.get(api_version="v1", kind="Namespace")
    assert "default" in [ns.metadata.name for ns in namespaces.get().items]
    deployments = dyn.resources.get(api_version="apps/v1", kind="Deployment")
    assert deployments.namespaced is True
    assert deployments.short_names == ["deploy"]
    assert deployments.get(namespace="default").items == []
