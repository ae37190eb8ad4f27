"""kubectl 1.37 against `kazan serve`: what it prints and returns, command by command.

Each test uses its own namespace, so the tests of this module share one server.
"""

import json
import re
import subprocess

from conftest import wait_until

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: {namespace}
  labels: {{app: web}}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
      - name: nginx
        image: nginx:1.27
        ports:
        - containerPort: 80
"""

POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: {namespace}
spec:
  containers:
  - name: app
    image: busybox
"""


def rows(output: str) -> list:
    """`kubectl get` output as lists of cells (whitespace-separated), header first."""
    return [line.split() for line in output.strip().splitlines()]


def test_version_is_recent_enough_for_no_skew_warning(kubectl):
    result = kubectl.run("version", "-o", "json")
    server = json.loads(result.stdout)["serverVersion"]
    assert (server["major"], server["minor"]) == ("1", "37")
    assert server["gitVersion"] == "v1.37.0+kazan"
    assert "WARNING" not in result.stderr


def test_api_resources_come_from_discovery(kubectl):
    table = rows(kubectl.run("api-resources").stdout)
    assert table[0] == ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    assert ["deployments", "deploy", "apps/v1", "true", "Deployment"] in table
    assert ["namespaces", "ns", "v1", "false", "Namespace"] in table


def test_create_namespace_sends_protobuf_and_the_object_reads_back(kubectl):
    result = kubectl.run("create", "namespace", "conf-create")
    assert result.stdout.strip() == "namespace/conf-create created"
    namespace = kubectl.json("get", "namespace", "conf-create")
    assert namespace["kind"] == "Namespace"
    assert namespace["metadata"]["name"] == "conf-create"
    assert namespace["metadata"]["labels"]["kubernetes.io/metadata.name"] == "conf-create"
    assert namespace["status"]["phase"] == "Active"
    assert int(namespace["metadata"]["resourceVersion"]) > 0


def test_get_namespaces_prints_the_table(kubectl):
    table = rows(kubectl.run("get", "namespaces").stdout)
    assert table[0] == ["NAME", "STATUS", "AGE"]
    default = next(row for row in table if row[0] == "default")
    assert default[1] == "Active"
    assert re.fullmatch(r"\d+(s|m)", default[2]), default


def test_get_namespaces_as_json_is_a_list(kubectl):
    listing = kubectl.json("get", "ns")
    assert listing["kind"] == "List"
    names = [item["metadata"]["name"] for item in listing["items"]]
    for expected in ("default", "kube-system", "kube-public", "kube-node-lease"):
        assert expected in names
    assert all(item["kind"] == "Namespace" for item in listing["items"])


def test_get_a_missing_namespace_is_not_found(kubectl):
    result = kubectl.run("get", "ns", "conf-does-not-exist", check=False)
    assert result.returncode == 1
    assert 'Error from server (NotFound): namespaces "conf-does-not-exist" not found' in result.stderr


def test_apply_creates_then_updates_a_deployment(kubectl):
    kubectl.run("create", "namespace", "conf-apply")
    created = kubectl.run("apply", "-f", "-", stdin=DEPLOYMENT.format(namespace="conf-apply", replicas=2))
    assert created.stdout.strip() == "deployment.apps/web created"
    first = kubectl.json("get", "deployment", "web", "-n", "conf-apply")
    assert first["spec"]["replicas"] == 2

    configured = kubectl.run("apply", "-f", "-", stdin=DEPLOYMENT.format(namespace="conf-apply", replicas=3))
    assert configured.stdout.strip() == "deployment.apps/web configured"
    second = kubectl.json("get", "deployment", "web", "-n", "conf-apply")
    assert second["spec"]["replicas"] == 3
    assert second["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.27"
    assert int(second["metadata"]["resourceVersion"]) > int(first["metadata"]["resourceVersion"])
    applied = json.loads(second["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"])
    assert applied["spec"]["replicas"] == 3

    unchanged = kubectl.run("apply", "-f", "-", stdin=DEPLOYMENT.format(namespace="conf-apply", replicas=3))
    assert unchanged.stdout.strip() == "deployment.apps/web unchanged"

    wide = rows(kubectl.run("get", "deployments", "-n", "conf-apply", "-o", "wide").stdout)
    assert wide[0] == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE", "CONTAINERS", "IMAGES", "SELECTOR"]
    assert wide[1][:4] == ["web", "0/3", "0", "0"]
    assert wide[1][5:] == ["nginx", "nginx:1.27", "app=web"]


def test_get_pods_across_namespaces_shows_the_namespace_column(kubectl):
    for namespace in ("conf-pods-a", "conf-pods-b"):
        kubectl.run("create", "namespace", namespace)
        kubectl.run("apply", "-f", "-", stdin=POD.format(name="p-" + namespace[-1], namespace=namespace))
    table = rows(kubectl.run("get", "pods", "-A").stdout)
    assert table[0] == ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    ours = [row[:5] for row in table[1:] if row[0].startswith("conf-pods-")]
    assert ours == [
        ["conf-pods-a", "p-a", "0/1", "Pending", "0"],
        ["conf-pods-b", "p-b", "0/1", "Pending", "0"],
    ]
    labelled = rows(kubectl.run("get", "ns", "conf-pods-a", "--show-labels").stdout)
    assert labelled[1][-1] == "kubernetes.io/metadata.name=conf-pods-a"


def test_create_configmap_and_secret_with_protobuf_bodies(kubectl):
    kubectl.run("create", "namespace", "conf-generators")
    created = kubectl.run(
        "create", "configmap", "settings", "-n", "conf-generators", "--from-literal=mode=fast", "--from-literal=level=3"
    )
    assert created.stdout.strip() == "configmap/settings created"
    configmap = kubectl.json("get", "configmap", "settings", "-n", "conf-generators")
    assert configmap["data"] == {"mode": "fast", "level": "3"}

    kubectl.run("create", "secret", "generic", "creds", "-n", "conf-generators", "--from-literal=password=s3cr3t")
    secret = kubectl.json("get", "secret", "creds", "-n", "conf-generators")
    assert secret["data"] == {"password": "czNjcjN0"}

    table = rows(kubectl.run("get", "configmaps", "-n", "conf-generators").stdout)
    assert table[0] == ["NAME", "DATA", "AGE"]
    assert table[1][:2] == ["settings", "2"]


def test_delete_waits_until_the_namespace_is_gone(kubectl):
    kubectl.run("create", "namespace", "conf-delete")
    kubectl.run("create", "configmap", "leftover", "-n", "conf-delete", "--from-literal=a=1")
    # kubectl waits for the Terminating namespace with a watch-list informer.
    deleted = kubectl.run("delete", "namespace", "conf-delete")
    assert deleted.stdout.strip() == 'namespace "conf-delete" deleted'
    gone = kubectl.run("get", "namespace", "conf-delete", check=False)
    assert gone.returncode == 1
    assert 'namespaces "conf-delete" not found' in gone.stderr


def test_watch_namespaces_sees_added_and_deleted(kubectl, tmp_path):
    output = tmp_path / "watch.txt"
    watch = kubectl.popen("get", "namespaces", "--watch", "--output-watch-events", output=output)
    try:
        # The initial state arrives first (as ADDED), so the watch is open once default shows.
        wait_until(lambda: "default" in output.read_text(), "the initial namespaces")
        kubectl.run("create", "namespace", "conf-watched")
        kubectl.run("delete", "namespace", "conf-watched")

        def events():
            return [row for row in rows(output.read_text()) if len(row) > 1 and row[1] == "conf-watched"]

        wait_until(lambda: any(row[0] == "DELETED" for row in events()), "the DELETED event")
        seen = events()
        assert seen[0][:3] == ["ADDED", "conf-watched", "Active"]
        assert ["MODIFIED", "conf-watched", "Terminating"] in [row[:3] for row in seen]
        assert seen[-1][:3] == ["DELETED", "conf-watched", "Terminating"]
        assert rows(output.read_text())[0] == ["EVENT", "NAME", "STATUS", "AGE"]
    finally:
        watch.terminate()
        try:
            watch.wait(timeout=10)
        except subprocess.TimeoutExpired:
            watch.kill()
            watch.wait(timeout=5)


CRD = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd]}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
    additionalPrinterColumns:
    - {name: Color, type: string, jsonPath: .spec.color}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
"""

WIDGET = """\
apiVersion: example.com/v1
kind: Widget
metadata: {{name: w1, namespace: conf-crd}}
spec: {{color: {color}}}
"""


def test_custom_resources_are_discovered_validated_and_printed(kubectl):
    created = kubectl.run("apply", "-f", "-", stdin=CRD)
    assert created.stdout.strip() == "customresourcedefinition.apiextensions.k8s.io/widgets.example.com created"
    kubectl.run("create", "namespace", "conf-crd")
    # apply validates against /openapi/v3, whose index now lists apis/example.com/v1.
    assert kubectl.run("apply", "-f", "-", stdin=WIDGET.format(color="blue")).stdout.strip() == (
        "widget.example.com/w1 created"
    )
    assert kubectl.run("apply", "-f", "-", stdin=WIDGET.format(color="red")).stdout.strip() == (
        "widget.example.com/w1 configured"
    )
    table = rows(kubectl.run("get", "wd", "-n", "conf-crd").stdout)
    assert table[0] == ["NAME", "COLOR", "AGE"]
    assert table[1][:2] == ["w1", "red"]
    crds = rows(kubectl.run("get", "crd", "widgets.example.com").stdout)
    assert crds[0] == ["NAME", "CREATED", "AT"]
