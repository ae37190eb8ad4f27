"""kubectl 1.37's write commands against `kazan serve` (issue 19): what kubectl prints for
server-side apply with a conflict and with `--force-conflicts`, `scale`, `explain`, `auth can-i`,
`delete --cascade=foreground|orphan` with the garbage collector, and `wait --for=delete` on a Pod
deleted with a grace period.

Each test uses its own namespace, so the tests of this module share one server.
"""

import json

from conftest import wait_until

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: {namespace}
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
"""

OWNED_CONFIGMAP = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {name}
  namespace: {namespace}
  ownerReferences:
  - apiVersion: apps/v1
    kind: Deployment
    name: web
    uid: {uid}
"""


def test_server_side_apply_reports_a_conflict_then_forces_it(kubectl):
    kubectl.run("create", "namespace", "conf-ssa")
    first = kubectl.run("apply", "--server-side", "-f", "-",
                        stdin=DEPLOYMENT.format(namespace="conf-ssa", replicas=2))
    assert first.stdout.strip() == "deployment.apps/web serverside-applied"
    managers = kubectl.json("get", "deployment", "web", "-n", "conf-ssa", "--show-managed-fields")
    entry = managers["metadata"]["managedFields"][0]
    assert (entry["manager"], entry["operation"]) == ("kubectl", "Apply")

    conflict = kubectl.run("apply", "--server-side", "--field-manager=other", "-f", "-",
                           stdin=DEPLOYMENT.format(namespace="conf-ssa", replicas=3), check=False)
    assert conflict.returncode == 1
    assert conflict.stderr.startswith(
        'error: Apply failed with 1 conflict: conflict with "kubectl": .spec.replicas'), conflict.stderr
    assert "--force-conflicts" in conflict.stderr

    forced = kubectl.run("apply", "--server-side", "--field-manager=other", "--force-conflicts", "-f", "-",
                         stdin=DEPLOYMENT.format(namespace="conf-ssa", replicas=3))
    assert forced.stdout.strip() == "deployment.apps/web serverside-applied"
    assert kubectl.json("get", "deployment", "web", "-n", "conf-ssa")["spec"]["replicas"] == 3


def test_scale_changes_the_replicas_through_the_scale_subresource(kubectl):
    kubectl.run("create", "namespace", "conf-scale")
    kubectl.run("apply", "-f", "-", stdin=DEPLOYMENT.format(namespace="conf-scale", replicas=1))
    scaled = kubectl.run("scale", "deployment", "web", "-n", "conf-scale", "--replicas=4")
    assert scaled.stdout.strip() == "deployment.apps/web scaled"
    deployment = kubectl.json("get", "deployment", "web", "-n", "conf-scale")
    assert deployment["spec"]["replicas"] == 4
    assert deployment["metadata"]["generation"] == 2


def test_explain_shows_the_fields_of_a_built_in_kind(kubectl):
    explained = kubectl.run("explain", "pod.spec.nodeName")
    lines = [line.strip() for line in explained.stdout.splitlines() if line.strip()]
    assert lines[:3] == ["KIND:       Pod", "VERSION:    v1", "FIELD: nodeName <string>"]


def test_auth_can_i_answers_yes(kubectl):
    assert kubectl.run("auth", "can-i", "create", "pods").stdout.strip() == "yes"


def test_foreground_deletion_waits_for_the_dependents_and_orphan_keeps_them(kubectl):
    for cascade, namespace in (("foreground", "conf-fg"), ("orphan", "conf-orphan")):
        kubectl.run("create", "namespace", namespace)
        kubectl.run("apply", "-f", "-", stdin=DEPLOYMENT.format(namespace=namespace, replicas=1))
        uid = kubectl.json("get", "deployment", "web", "-n", namespace)["metadata"]["uid"]
        kubectl.run("apply", "-f", "-", stdin=OWNED_CONFIGMAP.format(name="dep", namespace=namespace, uid=uid))
        deleted = kubectl.run("delete", "deployment", "web", "-n", namespace, f"--cascade={cascade}")
        assert deleted.stdout.strip() == f'deployment.apps "web" deleted from {namespace} namespace'
        gone = kubectl.run("get", "deployment", "web", "-n", namespace, "--ignore-not-found", "-o", "name")
        assert gone.stdout.strip() == ""
        dependent = kubectl.run("get", "configmap", "dep", "-n", namespace, "--ignore-not-found", "-o", "json")
        if cascade == "foreground":
            assert dependent.stdout.strip() == "", "the dependent went before its owner"
        else:
            assert "ownerReferences" not in json.loads(dependent.stdout)["metadata"]


def test_wait_for_delete_follows_a_pods_grace_period(kubectl):
    kubectl.run("create", "namespace", "conf-grace")
    kubectl.run("run", "slow", "-n", "conf-grace", "--image=busybox",
                "--overrides", '{"spec": {"nodeName": "node-1"}}')
    pod = kubectl.json("get", "pod", "slow", "-n", "conf-grace")
    assert pod["status"]["phase"] == "Pending"
    assert pod["spec"]["terminationGracePeriodSeconds"] == 30
    deleted = kubectl.run("delete", "pod", "slow", "-n", "conf-grace", "--grace-period=1", "--wait=false")
    assert deleted.stdout.strip() == 'pod "slow" deleted from conf-grace namespace'
    terminating = kubectl.json("get", "pod", "slow", "-n", "conf-grace")
    assert terminating["metadata"]["deletionGracePeriodSeconds"] == 1
    waited = kubectl.run("wait", "--for=delete", "pod/slow", "-n", "conf-grace", "--timeout=20s")
    assert waited.stdout.strip() == "pod/slow condition met"
    wait_until(lambda: kubectl.run("get", "pod", "slow", "-n", "conf-grace", "--ignore-not-found",
                                   "-o", "name").stdout.strip() == "", "the pod to be gone")
