"""`kazan watch` side by side with `kubectl get -w --output-watch-events` on the same `kazan serve`:
the first listing, then an added and a modified object, print the same columns and the same cells
(both print the server's Tables: kubectl asks for them on the list and on the watch,
`kubectl/pkg/cmd/get/get.go`; kazan watches Table rows).

Column widths differ (kazan fixes them from its first batch, kubectl's tab writer from each
flush), so lines are compared cell by cell; ages are masked.
"""

import re
import subprocess

import pytest

from conftest import KAZAN_BIN, wait_until

NAMESPACE = "wcmp"

SETUP = [
    "apiVersion: v1\nkind: Namespace\nmetadata: {name: wcmp}",
    """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: gadgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: gadgets, singular: gadget, kind: Gadget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
    - {name: Color, type: string, jsonPath: .spec.color, priority: 1}
""",
]

# Per kind: the object there at the start, the object added while watching.
OBJECTS = {
    "pods": """
apiVersion: v1
kind: Pod
metadata: {{name: {name}, namespace: wcmp, labels: {{app: web}}}}
spec:
  nodeName: node-a
  containers: [{{name: app, image: nginx:1.29}}]
""",
    "deployments": """
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: wcmp}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec: {{containers: [{{name: app, image: nginx:1.29}}]}}
""",
    "services": """
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: wcmp}}
spec:
  type: ClusterIP
  selector: {{app: web}}
  ports: [{{port: 80, protocol: TCP}}]
""",
    "jobs": """
apiVersion: batch/v1
kind: Job
metadata: {{name: {name}, namespace: wcmp}}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{{name: c, image: busybox}}]
""",
    "nodes": """
apiVersion: v1
kind: Node
metadata: {{name: {name}, labels: {{node-role.kubernetes.io/worker: ""}}}}
status:
  conditions: [{{type: Ready, status: "True"}}]
  nodeInfo: {{kubeletVersion: v1.37.0}}
""",
    "gadgets": """
apiVersion: example.com/v1
kind: Gadget
metadata: {{name: {name}, namespace: wcmp}}
spec: {{size: 3, color: red}}
""",
}

CLUSTER_SCOPED = {"nodes"}

# A cell that is an age (`5s`, `2m3s`, `4h`, `3d`) or the `(5m ago)` of RESTARTS.
AGE = re.compile(r"\b\d+[smhdy](\d+[smh])?\b")


def cells(line: str) -> list:
    """A table line's cells (kazan's watch and kubectl's differ in column widths only)."""
    return [AGE.sub("<age>", cell) for cell in re.split(r"\s{2,}", line.strip())]


@pytest.fixture(scope="module")
def loaded(server, kubectl):
    for document in SETUP:
        kubectl.run("create", "-f", "-", stdin=document)
    for kind, manifest in OBJECTS.items():
        kubectl.run("create", "-f", "-", stdin=manifest.format(name=f"{kind[:-1]}-first"))
    return kubectl


@pytest.mark.parametrize("kind", list(OBJECTS))
@pytest.mark.parametrize("wide", [False, True], ids=["table", "wide"])
def test_kazan_watch_prints_the_lines_of_kubectl_get_w(server, loaded, kind, wide, tmp_path):
    scope = [] if kind in CLUSTER_SCOPED else ["-n", NAMESPACE]
    args = [kind, *scope, *(["-o", "wide"] if wide else [])]
    suffix = "wide" if wide else "table"
    rows = len(loaded.run("get", *args).stdout.splitlines())
    assert rows >= 2, f"kubectl get {' '.join(args)} printed no object"
    paths = {name: tmp_path / name for name in ("kubectl", "kazan")}
    watches_before = server.open_watches(kind)
    processes = {
        "kubectl": loaded.popen("get", *args, "-w", "--output-watch-events", output=paths["kubectl"]),
        "kazan": subprocess.Popen(
            [str(KAZAN_BIN), "watch", *args, "--kubeconfig", str(server.kubeconfig)],
            stdout=open(paths["kazan"], "w"),
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        ),
    }

    def lines(name: str, n: int):
        return wait_until(
            lambda: (got := paths[name].read_text().splitlines()) and len(got) >= n and got[:n],
            f"{name}'s first {n} lines",
        )

    try:
        for name in processes:
            lines(name, rows)
        wait_until(lambda: server.open_watches(kind) >= watches_before + 2, "both watches open")
        # An object added, then changed (a label: the row is printed again, as MODIFIED).
        added = f"{kind[:-1]}-{suffix}"
        loaded.run("create", "-f", "-", stdin=OBJECTS[kind].format(name=added))
        for name in processes:
            lines(name, rows + 1)
        loaded.run("label", kind, added, *scope, "changed=yes")
        outputs = {name: lines(name, rows + 2) for name in processes}
    finally:
        for process in processes.values():
            process.terminate()
            process.wait(timeout=20)
    kazan = [cells(line) for line in outputs["kazan"]]
    kubectl = [cells(line) for line in outputs["kubectl"]]
    assert kazan == kubectl
    assert kazan[-2][:2] == ["ADDED", added], kazan
    assert kazan[-1][0] == "MODIFIED", kazan
