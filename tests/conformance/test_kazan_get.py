"""`kazan get` side by side with `kubectl get` on the same `kazan serve`: the same columns and the
same cells for each kind (both print the server's Table), with `-o wide`, `-A` and several types.

Ages are masked (the two commands run a second apart at most); everything else must be equal
byte for byte.
"""

import re
import subprocess

import pytest

from conftest import CALL_TIMEOUT, KAZAN_BIN, wait_until

MANIFEST = """
apiVersion: v1
kind: Namespace
metadata: {name: cmp}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd]}
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
---
apiVersion: v1
kind: Pod
metadata: {name: web-1, namespace: cmp, labels: {app: web, example.com/tier: front}}
spec:
  nodeName: node-a
  containers: [{name: app, image: nginx:1.29}]
status:
  phase: Running
  podIP: 10.0.0.7
  containerStatuses:
  - {name: app, ready: true, restartCount: 0, image: nginx:1.29, imageID: "", state: {running: {startedAt: "2026-01-01T00:00:00Z"}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: cmp}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: app, image: nginx:1.29}]}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: cmp}
spec:
  type: ClusterIP
  clusterIP: 10.96.0.10
  selector: {app: web}
  ports: [{port: 80, protocol: TCP}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: once, namespace: cmp}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: c, image: busybox}]
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly, namespace: cmp}
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers: [{name: c, image: busybox}]
---
apiVersion: v1
kind: Node
metadata: {name: node-a, labels: {node-role.kubernetes.io/control-plane: ""}}
status:
  conditions: [{type: Ready, status: "True"}]
  nodeInfo: {kubeletVersion: v1.37.0}
---
apiVersion: v1
kind: Node
metadata: {name: node-b}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: robot, namespace: cmp}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data, namespace: cmp}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
---
apiVersion: v1
kind: PersistentVolume
metadata: {name: pv-1}
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  hostPath: {path: /tmp/pv-1}
---
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: {name: leader, namespace: cmp}
spec: {holderIdentity: pod-a}
---
apiVersion: v1
kind: Event
metadata: {name: web-1.pulled, namespace: cmp}
involvedObject: {kind: Pod, name: web-1, namespace: cmp, fieldPath: "spec.containers{app}"}
reason: Pulled
message: Container image pulled
type: Normal
count: 2
firstTimestamp: "2026-01-01T00:00:00Z"
lastTimestamp: "2026-01-01T00:05:00Z"
source: {component: kubelet, host: node-a}
---
apiVersion: v1
kind: Endpoints
metadata: {name: web, namespace: cmp}
subsets:
- addresses: [{ip: 10.0.0.7}, {ip: 10.0.0.8}]
  ports: [{port: 80}, {port: 443}]
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent, namespace: cmp}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      nodeSelector: {kubernetes.io/os: linux}
      containers: [{name: agent, image: agent:1}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: z-first, namespace: cmp}
data: {rank: "1"}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: a-second, namespace: cmp}
data: {rank: "2"}
---
apiVersion: example.com/v1
kind: Widget
metadata: {name: big, namespace: cmp}
spec: {size: 5, color: blue}
"""

# A cell that is an age (`5s`, `2m3s`, `4h`, `3d`) or the `(5m ago)` of RESTARTS.
AGE = re.compile(r"\b\d+[smhdy](\d+[smh])?\b")


def masked(text: str) -> list:
    return [AGE.sub("<age>", line).rstrip() for line in text.splitlines()]


@pytest.fixture(scope="module")
def loaded(server, kubectl):
    # One document at a time: the CRD must be served before its first object is sent.
    for document in MANIFEST.split("\n---\n"):
        kubectl.run("create", "-f", "-", stdin=document)
    return kubectl


def kazan(server, *args: str) -> str:
    done = subprocess.run(
        [str(KAZAN_BIN), *args, "--kubeconfig", str(server.kubeconfig)],
        capture_output=True,
        text=True,
        timeout=CALL_TIMEOUT,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, f"kazan {' '.join(args)} failed: {done.stderr}"
    return done.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["pods", "-n", "cmp"],
        ["pods", "-n", "cmp", "-o", "wide"],
        ["pods", "-A"],
        ["deployments", "-n", "cmp", "-o", "wide"],
        ["services", "-n", "cmp"],
        ["jobs", "-n", "cmp"],
        ["cronjobs", "-n", "cmp"],
        ["nodes"],
        ["nodes", "-o", "wide"],
        ["serviceaccounts", "-n", "cmp"],
        ["pvc", "-n", "cmp"],
        ["pv"],
        ["leases", "-n", "cmp"],
        ["widgets", "-n", "cmp"],
        ["widgets", "-n", "cmp", "-o", "wide"],
        ["events", "-n", "cmp"],
        ["events", "-n", "cmp", "-o", "wide"],
        ["endpoints", "-n", "cmp"],
        ["daemonsets", "-n", "cmp", "-o", "wide"],
        ["pvc", "-n", "cmp", "-o", "wide"],
        ["pv", "-o", "wide"],
        ["cronjobs", "-n", "cmp", "-o", "wide"],
        ["pod", "web-1", "-n", "cmp"],
        ["pod/web-1", "-n", "cmp"],
        ["deployment.apps/web", "-n", "cmp", "-o", "wide"],
        ["pods", "-n", "cmp", "--show-labels"],
        ["pods,deploy", "-n", "cmp", "-L", "app,tier", "--show-labels"],
        ["pods", "-A", "--no-headers", "-L", "example.com/tier"],
        # (A table with --sort-by is not compared: kubectl then asks for includeObject=Object,
        # which the embedded server does not serve yet, and prints nothing.)
        ["configmaps", "-n", "cmp", "--sort-by", "{.data.rank}", "-o", "name"],
        ["po,svc,deploy", "-n", "cmp"],
    ],
    ids=lambda args: " ".join(args),
)
def test_kazan_get_prints_what_kubectl_get_prints(server, loaded, args):
    # Ages are masked, but a column's width still follows its widest age: when one crosses a digit
    # boundary (9s to 10s) between the two runs, the columns after it shift. A second pair of runs
    # (at most three in all) tells that apart from a real difference.
    for _ in range(3):
        expected = loaded.run("get", *args).stdout
        assert expected, f"kubectl get {' '.join(args)} printed nothing"
        got = kazan(server, "get", *args)
        if masked(got) == masked(expected):
            break
    assert masked(got) == masked(expected)


@pytest.mark.parametrize(
    "args",
    [
        ["pods", "-n", "cmp", "-o", "jsonpath={.items[*].metadata.name}"],
        ["pod", "web-1", "-n", "cmp", "-o", "jsonpath={.spec.containers[0].image}"],
        [
            "pods,deploy",
            "-n",
            "cmp",
            "-o",
            'jsonpath={range .items[*]}{.kind}/{.metadata.name}{"\\t"}{.metadata.labels.app}{"\\n"}{end}',
        ],
        [
            "nodes",
            "-o",
            'jsonpath={range .items[*]}{.metadata.name} {.status.conditions[?(@.type=="Ready")].status}{"\\n"}{end}',
        ],
        ["pods", "-n", "cmp", "-o", "custom-columns=NAME:.metadata.name,NODE:.spec.nodeName,IMAGES:.spec.containers[*].image"],
        # JSON and YAML: the same keys in the same order as kubectl's.
        ["pod", "web-1", "-n", "cmp", "-o", "json"],
        ["deployments", "-n", "cmp", "-o", "yaml"],
        ["widget", "big", "-n", "cmp", "-o", "json"],
        ["nodes", "-o", "yaml"],
        ["nodes", "-o", "custom-columns=NODE:.metadata.name,ROLE:.metadata.labels.node-role\\.kubernetes\\.io/control-plane", "--no-headers"],
    ],
    ids=lambda args: " ".join(args),
)
def test_kazan_templates_print_what_kubectls_print(server, loaded, args):
    expected = loaded.run("get", *args).stdout
    assert expected, f"kubectl get {' '.join(args)} printed nothing"
    assert kazan(server, "get", *args) == expected


def cells(line: str) -> list:
    """A table line's cells (kazan's watch and kubectl's differ in column widths only)."""
    return [AGE.sub("<age>", cell) for cell in re.split(r"\s{2,}", line.strip())]


@pytest.mark.parametrize(
    "args",
    [
        ["pods", "-n", "cmp", "-o", "wide"],
        ["deployments", "-n", "cmp", "-o", "wide"],
        ["daemonsets", "-n", "cmp", "-o", "wide"],
        ["jobs", "-n", "cmp", "-o", "wide"],
        ["services", "-n", "cmp", "-o", "wide"],
        ["nodes", "-o", "wide"],
    ],
    ids=lambda args: " ".join(args),
)
def test_kazan_watch_shows_the_cells_of_kubectl_get_w(server, loaded, args, tmp_path):
    """`kazan watch` prints the server's Tables, as kubectl does: its first batch has the header
    and cells of `kubectl get -w --output-watch-events` (changes: test_kazan_watch.py)."""
    rows = len(loaded.run("get", *args).stdout.splitlines())
    outputs = {}
    processes = {
        "kubectl": loaded.popen("get", *args, "-w", "--output-watch-events", output=tmp_path / "kubectl"),
        "kazan": subprocess.Popen(
            [str(KAZAN_BIN), "watch", *args, "--kubeconfig", str(server.kubeconfig)],
            stdout=open(tmp_path / "kazan", "w"),
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        ),
    }
    try:
        for name in processes:
            path = tmp_path / name
            outputs[name] = wait_until(
                lambda: (lines := path.read_text().splitlines()) and len(lines) >= rows and lines[:rows],
                f"{name}'s first {rows} lines",
            )
    finally:
        for process in processes.values():
            process.terminate()
            process.wait(timeout=20)
    assert [cells(line) for line in outputs["kazan"]] == [cells(line) for line in outputs["kubectl"]]
