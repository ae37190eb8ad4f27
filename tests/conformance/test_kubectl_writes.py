"""kubectl 1.37's write commands against `kazan serve` (issue 19): what kubectl prints for
server-side apply with a conflict and with `--force-conflicts`, `scale`, `explain` (OpenAPI v3
and v2), `create -f` of a `kind: List` (validated by kubectl against `/openapi/v2`), `apply` with
each `--validate` mode, unknown fields in patches, server-side applies and custom resources,
`auth can-i`, `delete --cascade=foreground|orphan` with the garbage collector, and
`wait --for=delete` on a Pod deleted with a grace period.

Every test runs twice: against `kazan serve` and against `kazan serve --tls` (whose kubeconfig
carries a generated token). Each test uses its own namespace, so the tests of one server share it.
"""

import json

import pytest

from conftest import start_server, stop_server, wait_until


@pytest.fixture(scope="module", params=["http", "tls"])
def server(request, tmp_path_factory):
    """One server per transport; `kubectl` (conftest) follows it."""
    workdir = tmp_path_factory.mktemp(f"kazan-serve-{request.param}")
    server = start_server(workdir, *(["--tls"] if request.param == "tls" else []))
    assert server.url.startswith("https://" if request.param == "tls" else "http://"), server.url
    yield server
    stop_server(server)
    assert server.process.returncode == 0, server.stderr_path.read_text()

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


def test_explain_reads_openapi_v2_as_well(kubectl):
    explained = kubectl.run("explain", "--output", "plaintext-openapiv2", "deployment.spec.replicas")
    lines = [line.strip() for line in explained.stdout.splitlines() if line.strip()]
    assert lines[:3] == ["KIND:     Deployment", "VERSION:  apps/v1", "FIELD:    replicas <integer>"]


def item_list(namespace: str, configmap_extra: dict = None, replicas=1, container_extra: dict = None) -> str:
    """A `kind: List` of a ConfigMap and a Deployment, as JSON (kubectl reads JSON manifests too)."""
    container = {"name": "nginx", "image": "nginx:1.27", **(container_extra or {})}
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": namespace},
         "data": {"mode": "fast"}, **(configmap_extra or {})},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": namespace},
         "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                  "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [container]}}}},
    ]})


def test_create_of_a_list_is_validated_by_kubectl_against_openapi_v2(kubectl):
    # kubectl validates a List's items itself (a List has no endpoint to validate it), against
    # the definitions of /openapi/v2 read as protobuf: its own messages, with the model names.
    kubectl.run("create", "namespace", "conf-list")
    bad = kubectl.run("create", "-f", "-", check=False,
                      stdin=item_list("conf-list", {"bogus": 1}, "two", {"imagePolicy": "Always"}))
    assert bad.returncode == 1
    assert bad.stderr == (
        'error: error validating "STDIN": error validating data: ['
        'ValidationError(ConfigMap): unknown field "bogus" in io.k8s.api.core.v1.ConfigMap, '
        'ValidationError(Deployment.spec.replicas): invalid type for io.k8s.api.apps.v1.DeploymentSpec.replicas: '
        'got "string", expected "integer", '
        'ValidationError(Deployment.spec.template.spec.containers[0]): unknown field "imagePolicy" in '
        'io.k8s.api.core.v1.Container]; if you choose to ignore these errors, turn validation off with '
        '--validate=false\n'), bad.stderr
    assert kubectl.run("get", "configmaps,deployments", "-n", "conf-list", "-o", "name").stdout == ""

    created = kubectl.run("create", "-f", "-", stdin=item_list("conf-list"))
    assert created.stdout.splitlines() == ["configmap/settings created", "deployment.apps/web created"]

    # `--validate=warn`: kubectl leaves the List to the server, which drops the unknown field
    # with a warning.
    kubectl.run("create", "namespace", "conf-list-warn")
    warned = kubectl.run("create", "--validate=warn", "-f", "-",
                         stdin=item_list("conf-list-warn", {"bogus": 1}))
    assert warned.stdout.splitlines() == ["configmap/settings created", "deployment.apps/web created"]
    assert 'Warning: unknown field "bogus"' in warned.stderr, warned.stderr


def test_apply_validate_modes_behave_as_on_a_cluster(kubectl):
    kubectl.run("create", "namespace", "conf-validate")
    manifest = "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: conf-validate}}\nbogus: 1\n"
    for mode in ("strict", "true"):
        refused = kubectl.run("apply", f"--validate={mode}", "-f", "-", stdin=manifest.format(name=f"mode-{mode}"), check=False)
        assert refused.returncode == 1
        assert refused.stderr == (
            'Error from server (BadRequest): error when creating "STDIN": ConfigMap in version "v1" cannot be '
            'handled as a ConfigMap: strict decoding error: unknown field "bogus"\n'), refused.stderr
    warned = kubectl.run("apply", "--validate=warn", "-f", "-", stdin=manifest.format(name="mode-warn"))
    assert warned.stdout.strip() == "configmap/mode-warn created"
    assert warned.stderr == 'Warning: unknown field "bogus"\n', warned.stderr
    ignored = kubectl.run("apply", "--validate=ignore", "-f", "-", stdin=manifest.format(name="mode-ignore"))
    assert (ignored.stdout.strip(), ignored.stderr) == ("configmap/mode-ignore created", "")
    # A List is validated by kubectl itself, against /openapi/v2.
    listed = kubectl.run("apply", "-f", "-", check=False, stdin=(
        "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n"
        "  metadata: {name: listed, namespace: conf-validate}\n  bogus: 1\n"))
    assert listed.returncode == 1
    assert listed.stderr == (
        'error: error validating "STDIN": error validating data: ValidationError(ConfigMap): unknown field '
        '"bogus" in io.k8s.api.core.v1.ConfigMap; if you choose to ignore these errors, turn validation off '
        'with --validate=false\n'), listed.stderr


GIZMO_CRD = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: gizmos.example.org}
spec:
  group: example.org
  scope: Namespaced
  names: {plural: gizmos, singular: gizmo, kind: Gizmo}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer}
"""

GIZMO = """\
apiVersion: example.org/v1
kind: Gizmo
metadata: {name: g, namespace: conf-fv}
spec: {size: 2, colour: red}
"""


def test_unknown_fields_are_warned_about_or_refused_as_on_a_cluster(kubectl):
    kubectl.run("create", "namespace", "conf-fv")
    kubectl.run("create", "configmap", "fv", "-n", "conf-fv", "--from-literal=a=1")
    # kubectl patch sends no fieldValidation: the server's default, Warn.
    patched = kubectl.run("patch", "configmap", "fv", "-n", "conf-fv", "--type=merge", "-p", '{"bogus": 1}')
    assert patched.stdout.strip() == "configmap/fv patched (no change)"
    assert patched.stderr == 'Warning: unknown field "bogus"\n', patched.stderr

    # A server-side apply cannot type a field the kind does not declare.
    applied = kubectl.run("apply", "--server-side", "-f", "-", check=False,
                          stdin="apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fv2, namespace: conf-fv}\nbogus: 1\n")
    assert applied.returncode == 1
    assert applied.stderr == (
        "Error from server: failed to create typed patch object (conf-fv/fv2; /v1, Kind=ConfigMap): "
        ".bogus: field not declared in schema\n"), applied.stderr

    # A custom resource's unknown fields are those its CRD's schema prunes; kubectl create
    # asks for Strict.
    kubectl.run("apply", "-f", "-", stdin=GIZMO_CRD)
    refused = kubectl.run("create", "-f", "-", stdin=GIZMO, check=False)
    assert refused.returncode == 1
    assert refused.stderr == (
        'Error from server (BadRequest): error when creating "STDIN": Gizmo in version "v1" cannot be '
        'handled as a Gizmo: strict decoding error: unknown field "spec.colour"\n'), refused.stderr
    warned = kubectl.run("create", "--validate=warn", "-f", "-", stdin=GIZMO)
    assert warned.stdout.strip() == "gizmo.example.org/g created"
    assert warned.stderr == 'Warning: unknown field "spec.colour"\n', warned.stderr
    assert kubectl.json("get", "gizmo", "g", "-n", "conf-fv")["spec"] == {"size": 2}


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
