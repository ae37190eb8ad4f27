//! The write path as the real kube-apiserver has it (issue 19): each test names the real source
//! it follows and drives the server over raw HTTP, checking codes, bodies and what is stored.

use crate::common;

use common::*;
use kazan_apiserver::ApiServer;
use serde_json::{Value, json};

const DEPLOYMENTS: &str = "/apis/apps/v1/namespaces/default/deployments";
const PODS: &str = "/api/v1/namespaces/default/pods";
const SECRETS: &str = "/api/v1/namespaces/default/secrets";
const CMS: &str = "/api/v1/namespaces/default/configmaps";

fn deployment(name: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "main", "image": "nginx:1.27"}]}}}})
}

async fn put(server: &ApiServer, path: &str, body: &Value) -> TestResult<HttpResponse> {
    send_json(server.addr(), "PUT", path, "application/json", body).await
}

/// The widgets CRD, with or without the status subresource.
fn widget_crd(status_subresource: bool) -> Value {
    let mut version = json!({"name": "v1", "served": true, "storage": true,
        "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}});
    if status_subresource {
        version["subresources"] = json!({"status": {}});
    }
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
                 "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                 "versions": [version]}})
}

/// Row 1. Follows `pkg/registry/apps/deployment/strategy.go`: `PrepareForCreate` resets status,
/// `PrepareForUpdate` keeps the old status, the status strategy keeps the spec.
#[tokio::test]
async fn status_is_reset_on_create_kept_by_object_writes_and_written_only_through_status() -> TestResult {
    let server = ApiServer::start().await?;
    let mut body = deployment("web");
    body["status"] = json!({"replicas": 99});
    let created = post(server.addr(), DEPLOYMENTS, &body).await?;
    assert_eq!(created.status, 201, "{}", created.text());
    assert_eq!(created.json()?["status"], json!({}));

    let path = format!("{DEPLOYMENTS}/web");
    let mut status_write = get_json(server.addr(), &path).await?;
    status_write["status"] = json!({"replicas": 2, "readyReplicas": 2});
    status_write["spec"]["replicas"] = json!(7);
    let written = put(&server, &format!("{path}/status"), &status_write).await?;
    assert_eq!(written.status, 200, "{}", written.text());
    let written = written.json()?;
    assert_eq!(written["status"]["readyReplicas"], 2);
    assert_eq!(written["spec"]["replicas"], 2, "a status write keeps the spec");

    let mut without_status = written.clone();
    without_status.as_object_mut().ok_or("object")?.remove("status");
    without_status["spec"]["replicas"] = json!(3);
    let replaced = put(&server, &path, &without_status).await?;
    assert_eq!(replaced.status, 200, "{}", replaced.text());
    let mut with_status = replaced.json()?;
    assert_eq!(with_status["spec"]["replicas"], 3);
    assert_eq!(
        with_status["status"]["readyReplicas"], 2,
        "a PUT without status keeps it"
    );

    with_status["status"] = json!({"replicas": 50});
    let replaced = put(&server, &path, &with_status).await?;
    assert_eq!(
        replaced.json()?["status"]["replicas"],
        2,
        "a PUT cannot change status"
    );
    let stored = get_json(server.addr(), &path).await?;
    assert_eq!(stored["status"], json!({"replicas": 2, "readyReplicas": 2}));
    Ok(())
}

/// Row 1, custom resources. Follows `apiextensions-apiserver/pkg/registry/customresource/strategy.go`
/// and `status_strategy.go`: with `subresources.status`, create drops status and updates keep it;
/// without it, `status` is an ordinary field and `/status` is not served.
#[tokio::test]
async fn custom_resources_with_a_status_subresource_protect_status_and_others_do_not() -> TestResult {
    let server = ApiServer::start().await?;
    for (crd, plural) in [(widget_crd(true), "widgets"), (widget_crd(false), "gadgets")] {
        let mut crd = crd;
        crd["metadata"]["name"] = json!(format!("{plural}.example.com"));
        crd["spec"]["names"] =
            json!({"plural": plural, "kind": if plural == "widgets" { "Widget" } else { "Gadget" }});
        let response = post(
            server.addr(),
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            &crd,
        )
        .await?;
        assert_eq!(response.status, 201, "{}", response.text());
    }
    let widgets = "/apis/example.com/v1/namespaces/default/widgets";
    let created = post(
        server.addr(),
        widgets,
        &json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
                "spec": {"size": 1}, "status": {"ready": true}}),
    )
    .await?;
    assert_eq!(created.status, 201, "{}", created.text());
    let created = created.json()?;
    assert!(created.get("status").is_none(), "{created}");
    assert_eq!(created["metadata"]["generation"], 1);
    let mut update = created.clone();
    update["status"] = json!({"ready": true});
    let updated = put(&server, &format!("{widgets}/w"), &update).await?.json()?;
    assert!(updated.get("status").is_none());
    assert_eq!(
        updated["metadata"]["generation"], 1,
        "nothing the generation watches changed"
    );

    let gadgets = "/apis/example.com/v1/namespaces/default/gadgets";
    let created = post(
        server.addr(),
        gadgets,
        &json!({"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g"},
                "status": {"ready": true}}),
    )
    .await?
    .json()?;
    assert_eq!(created["status"]["ready"], true);
    let mut update = created.clone();
    update["status"] = json!({"ready": false});
    let updated = put(&server, &format!("{gadgets}/g"), &update).await?.json()?;
    assert_eq!(updated["status"]["ready"], false);
    assert_eq!(
        updated["metadata"]["generation"], 2,
        "without the subresource status is watched"
    );
    let status_path = put(&server, &format!("{gadgets}/g/status"), &updated).await?;
    assert_eq!(status_path.status, 404);
    let configmap_status = put(
        &server,
        &format!("{CMS}/x/status"),
        &configmap("default", "x", json!({})),
    )
    .await?;
    assert_eq!(
        configmap_status.status, 404,
        "ConfigMaps have no status subresource"
    );
    Ok(())
}

/// Row 4. Follows `apiserver/pkg/storage/interfaces.go` (`Preconditions.Check`),
/// `apiserver/pkg/storage/errors.go` (the `StorageError` text) and `registry/rest/update.go`
/// (`DefaultUpdatedObjectInfo.Preconditions`: a uid in the body is a precondition).
#[tokio::test]
async fn a_uid_that_does_not_match_is_a_409_precondition_failure() -> TestResult {
    let server = ApiServer::start().await?;
    let created = post(server.addr(), CMS, &configmap("default", "a", json!({"k": "v"})))
        .await?
        .json()?;
    let uid = created["metadata"]["uid"].as_str().ok_or("uid")?.to_string();
    let path = format!("{CMS}/a");

    let mut update = created.clone();
    update["metadata"]["uid"] = json!("other-uid");
    let response = put(&server, &path, &update).await?;
    assert_eq!(response.status, 409);
    let status = response.json()?;
    assert_eq!(status["reason"], "Conflict");
    assert_eq!(
        status["message"],
        format!(
            "Operation cannot be fulfilled on configmaps \"a\": StorageError: invalid object, Code: 4, Key: /registry/configmaps/default/a, ResourceVersion: 0, AdditionalErrorMsg: Precondition failed: UID in precondition: other-uid, UID in object meta: {uid}"
        )
    );
    let patch = send_json(
        server.addr(),
        "PATCH",
        &path,
        "application/merge-patch+json",
        &json!({"metadata": {"uid": "patched-uid"}}),
    )
    .await?;
    assert_eq!(patch.status, 409, "{}", patch.text());

    let body = serde_json::to_vec(&json!({"preconditions": {"uid": "not-it"}}))?;
    let delete = request(
        server.addr(),
        "DELETE",
        &path,
        &[("Content-Type", "application/json")],
        Some(&body),
    )
    .await?;
    assert_eq!(delete.status, 409);
    assert!(
        delete.json()?["message"]
            .as_str()
            .is_some_and(|m| m.ends_with(&format!(
                "Precondition failed: UID in precondition: not-it, UID in object meta: {uid}"
            )))
    );
    assert_eq!(
        get_json(server.addr(), &path).await?["metadata"]["uid"],
        uid.as_str(),
        "still stored"
    );

    let body = serde_json::to_vec(&json!({"preconditions": {"uid": uid}}))?;
    let delete = request(
        server.addr(),
        "DELETE",
        &path,
        &[("Content-Type", "application/json")],
        Some(&body),
    )
    .await?;
    assert_eq!(delete.status, 200);
    assert_eq!(get(server.addr(), &path).await?.status, 404);
    Ok(())
}

/// Row 5. Follows `pkg/apis/core/v1/conversion.go` (`Convert_v1_Secret_To_core_Secret`:
/// `stringData` overwrites `data` and is not kept), `pkg/apis/core/v1/defaults.go`
/// (`SetDefaults_Secret`: type `Opaque`) and the JSON decoding of `[]byte` (base64).
#[tokio::test]
async fn secrets_merge_string_data_into_data_check_base64_and_default_their_type() -> TestResult {
    let server = ApiServer::start().await?;
    let created = post(
        server.addr(),
        SECRETS,
        &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                "data": {"a": "b2xk", "b": "Yg=="}, "stringData": {"a": "new", "c": "see"}}),
    )
    .await?;
    assert_eq!(created.status, 201, "{}", created.text());
    let created = created.json()?;
    assert_eq!(created["data"], json!({"a": "bmV3", "b": "Yg==", "c": "c2Vl"}));
    assert!(created.get("stringData").is_none());
    assert_eq!(created["type"], "Opaque");
    let stored = get_json(server.addr(), &format!("{SECRETS}/s")).await?;
    assert_eq!(stored, created);

    let bad = post(
        server.addr(),
        SECRETS,
        &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "bad"}, "data": {"k": "not base64!"}}),
    )
    .await?;
    assert_eq!(bad.status, 400);
    let status = bad.json()?;
    assert_eq!(status["reason"], "BadRequest");
    assert_eq!(
        status["message"],
        "Secret in version \"v1\" cannot be handled as a Secret: illegal base64 data at input byte 3"
    );
    assert_eq!(get(server.addr(), &format!("{SECRETS}/bad")).await?.status, 404);

    let patched = send_json(
        server.addr(),
        "PATCH",
        &format!("{SECRETS}/s"),
        "application/merge-patch+json",
        &json!({"stringData": {"b": "bee"}}),
    )
    .await?
    .json()?;
    assert_eq!(patched["data"]["b"], "YmVl");
    assert!(patched.get("stringData").is_none());
    Ok(())
}

/// Row 6. Follows `pkg/registry/core/pod/strategy.go` (`PrepareForCreate`: phase Pending and the
/// QoS class), `pkg/apis/core/v1/defaults.go` (`SetDefaults_PodSpec`, `SetDefaults_Container`,
/// `SetDefaults_Service`), `pkg/apis/apps/v1/defaults.go`, `pkg/apis/batch/v1/defaults.go` and
/// `pkg/registry/batch/job/strategy.go` (`generateSelector`).
#[tokio::test]
async fn created_objects_get_their_scheme_defaults_and_pods_start_pending() -> TestResult {
    let server = ApiServer::start().await?;
    let created = post(
        server.addr(),
        PODS,
        &pod("default", "p", json!({"app": "a"}), "Running"),
    )
    .await?;
    assert_eq!(created.status, 201, "{}", created.text());
    let pod = created.json()?;
    assert_eq!(
        pod["status"],
        json!({"phase": "Pending", "qosClass": "BestEffort"})
    );
    assert_eq!(pod["metadata"]["generation"], 1);
    let spec = &pod["spec"];
    assert_eq!(spec["restartPolicy"], "Always");
    assert_eq!(spec["dnsPolicy"], "ClusterFirst");
    assert_eq!(spec["terminationGracePeriodSeconds"], 30);
    assert_eq!(spec["schedulerName"], "default-scheduler");
    assert_eq!(spec["serviceAccountName"], "default");
    assert_eq!(spec["containers"][0]["imagePullPolicy"], "Always");
    assert_eq!(
        spec["containers"][0]["terminationMessagePath"],
        "/dev/termination-log"
    );
    assert_eq!(spec["containers"][0]["terminationMessagePolicy"], "File");
    let pending = get_json(
        server.addr(),
        &format!("{PODS}?fieldSelector=status.phase%3DPending"),
    )
    .await?;
    assert_eq!(pending["items"].as_array().map(Vec::len), Some(1));

    let deployment = post(server.addr(), DEPLOYMENTS, &deployment("web"))
        .await?
        .json()?;
    assert_eq!(
        deployment["spec"]["strategy"],
        json!({"type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
    );
    assert_eq!(deployment["spec"]["revisionHistoryLimit"], 10);
    assert_eq!(deployment["spec"]["progressDeadlineSeconds"], 600);
    assert_eq!(
        deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
        "IfNotPresent"
    );

    let job = post(
        server.addr(),
        "/apis/batch/v1/namespaces/default/jobs",
        &json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "once"},
                "spec": {"template": {"spec": {"restartPolicy": "Never",
                         "containers": [{"name": "main", "image": "busybox"}]}}}}),
    )
    .await?
    .json()?;
    let uid = job["metadata"]["uid"].clone();
    assert_eq!(job["spec"]["backoffLimit"], 6);
    assert_eq!(job["spec"]["completions"], 1);
    assert_eq!(job["spec"]["parallelism"], 1);
    assert_eq!(
        job["spec"]["selector"],
        json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}})
    );
    assert_eq!(job["spec"]["template"]["metadata"]["labels"]["job-name"], "once");

    let service = post(
        server.addr(),
        "/api/v1/namespaces/default/services",
        &json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc"},
                "spec": {"selector": {"app": "a"}, "ports": [{"port": 80}]}}),
    )
    .await?
    .json()?;
    assert_eq!(service["spec"]["type"], "ClusterIP");
    assert_eq!(service["spec"]["sessionAffinity"], "None");
    assert_eq!(
        service["spec"]["ports"][0],
        json!({"port": 80, "protocol": "TCP", "targetPort": 80})
    );
    let ip = service["spec"]["clusterIP"].as_str().ok_or("clusterIP")?;
    assert!(ip.starts_with("10.96."), "{ip}");
    assert_eq!(service["spec"]["clusterIPs"], json!([ip]));
    assert_eq!(service["status"], json!({"loadBalancer": {}}));
    Ok(())
}

/// Row 12. Follows `plugin/pkg/admission/namespace/lifecycle/admission.go` (immortal namespaces).
#[tokio::test]
async fn the_protected_namespaces_cannot_be_deleted() -> TestResult {
    let server = ApiServer::start().await?;
    for ns in ["default", "kube-system", "kube-public"] {
        let response = request(
            server.addr(),
            "DELETE",
            &format!("/api/v1/namespaces/{ns}"),
            &[],
            None,
        )
        .await?;
        assert_eq!(response.status, 403, "{ns}");
        let status = response.json()?;
        assert_eq!(status["reason"], "Forbidden");
        assert_eq!(
            status["message"],
            format!("namespaces \"{ns}\" is forbidden: this namespace may not be deleted")
        );
        let stored = get_json(server.addr(), &format!("/api/v1/namespaces/{ns}")).await?;
        assert!(stored["metadata"].get("deletionTimestamp").is_none());
    }
    Ok(())
}

/// Row 13. Follows the strategies' `PrepareForCreate`/`PrepareForUpdate` (only some kinds set
/// `generation`; `deployment/strategy.go` also counts annotation changes) and `markAsDeleting` in
/// `registry/generic/registry/store.go` (the deletion mark bumps a set generation).
#[tokio::test]
async fn generation_is_set_only_by_kinds_whose_strategy_sets_it() -> TestResult {
    let server = ApiServer::start().await?;
    let cm = post(server.addr(), CMS, &configmap("default", "c", json!({"a": "1"})))
        .await?
        .json()?;
    assert!(cm["metadata"].get("generation").is_none());
    let mut next = cm.clone();
    next["data"]["a"] = json!("2");
    let next = put(&server, &format!("{CMS}/c"), &next).await?.json()?;
    assert!(next["metadata"].get("generation").is_none());
    let secret = post(
        server.addr(),
        SECRETS,
        &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}}),
    )
    .await?
    .json()?;
    assert!(secret["metadata"].get("generation").is_none());

    let created = post(server.addr(), DEPLOYMENTS, &deployment("web"))
        .await?
        .json()?;
    assert_eq!(created["metadata"]["generation"], 1);
    let path = format!("{DEPLOYMENTS}/web");
    let annotated = send_json(
        server.addr(),
        "PATCH",
        &path,
        "application/merge-patch+json",
        &json!({"metadata": {"annotations": {"note": "x"}, "finalizers": ["example.com/hold"]}}),
    )
    .await?
    .json()?;
    assert_eq!(
        annotated["metadata"]["generation"], 2,
        "annotations move a Deployment's generation"
    );
    let labelled = send_json(
        server.addr(),
        "PATCH",
        &path,
        "application/merge-patch+json",
        &json!({"metadata": {"labels": {"tier": "web"}}}),
    )
    .await?
    .json()?;
    assert_eq!(labelled["metadata"]["generation"], 2, "labels do not");
    let deleting = request(server.addr(), "DELETE", &path, &[], None).await?.json()?;
    assert_eq!(deleting["metadata"]["generation"], 3, "the deletion mark does");
    assert!(deleting["metadata"]["deletionTimestamp"].is_string());
    Ok(())
}

/// Row 14. Follows the typed list encoding (items of a built-in `PodList` carry no TypeMeta) and
/// `apiserver/pkg/storage/cacher/delegator.go` (`resourceVersion=0` is served from the watch
/// cache, which ignores `limit`).
#[tokio::test]
async fn lists_of_built_in_kinds_omit_item_types_and_version_zero_ignores_limit() -> TestResult {
    let server = ApiServer::start().await?;
    for name in ["a", "b", "c"] {
        server.create(configmap("default", name, json!({})))?;
    }
    let list = get_json(server.addr(), &format!("{CMS}?limit=2")).await?;
    assert_eq!(list["kind"], "ConfigMapList");
    assert_eq!(list["items"].as_array().map(Vec::len), Some(2));
    assert!(list["items"][0].get("kind").is_none() && list["items"][0].get("apiVersion").is_none());
    assert!(list["metadata"]["continue"].is_string());

    let whole = get_json(server.addr(), &format!("{CMS}?resourceVersion=0&limit=2")).await?;
    assert_eq!(whole["items"].as_array().map(Vec::len), Some(3));
    assert!(whole["metadata"].get("continue").is_none());

    let crd = post(
        server.addr(),
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        &widget_crd(true),
    )
    .await?;
    assert_eq!(crd.status, 201);
    server.create(json!({"apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w", "namespace": "default"}}))?;
    let widgets = get_json(server.addr(), "/apis/example.com/v1/namespaces/default/widgets").await?;
    assert_eq!(
        widgets["items"][0]["kind"], "Widget",
        "custom resources keep their types"
    );
    assert_eq!(widgets["items"][0]["apiVersion"], "example.com/v1");
    Ok(())
}

/// Row 11. Follows `ValidatePodUpdate` (`pkg/apis/core/validation/validation.go`),
/// `ValidateNoNewFinalizers` (`apimachinery/pkg/api/validation/objectmeta.go`), `checkName` and
/// `transformDecodeError` (`apiserver/pkg/endpoints/handlers/rest.go`, `create.go`) and the etcd3
/// store's `Create` (a resourceVersion on create).
#[tokio::test]
async fn invalid_updates_and_creates_get_the_real_servers_answers() -> TestResult {
    let server = ApiServer::start().await?;
    let mut two = pod("default", "p", json!({}), "");
    two["spec"]["containers"] = json!([{"name": "a", "image": "busybox"}, {"name": "b", "image": "busybox"}]);
    let created = post(server.addr(), PODS, &two).await?.json()?;
    let mut one = created.clone();
    one["spec"]["containers"] = json!([{"name": "a", "image": "busybox"}]);
    let response = put(&server, &format!("{PODS}/p"), &one).await?;
    assert_eq!(response.status, 422, "{}", response.text());
    let message = response.json()?["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        message.starts_with("Pod \"p\" is invalid: spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`"),
        "{message}"
    );
    let mut image = created.clone();
    image["spec"]["containers"][0]["image"] = json!("busybox:1.36");
    assert_eq!(put(&server, &format!("{PODS}/p"), &image).await?.status, 200);

    let mut held = configmap("default", "held", json!({}));
    held["metadata"]["finalizers"] = json!(["example.com/a"]);
    post(server.addr(), CMS, &held).await?;
    request(server.addr(), "DELETE", &format!("{CMS}/held"), &[], None).await?;
    let added = send_json(
        server.addr(),
        "PATCH",
        &format!("{CMS}/held"),
        "application/merge-patch+json",
        &json!({"metadata": {"finalizers": ["example.com/a", "example.com/b"]}}),
    )
    .await?;
    assert_eq!(added.status, 422);
    assert_eq!(
        added.json()?["message"],
        "ConfigMap \"held\" is invalid: metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{\"example.com/b\"}"
    );

    let mut versioned = configmap("default", "v", json!({}));
    versioned["metadata"]["resourceVersion"] = json!("5");
    let response = post(server.addr(), CMS, &versioned).await?;
    assert_eq!(response.status, 500);
    assert_eq!(
        response.json()?,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": "resourceVersion should not be set on objects to be created", "code": 500})
    );

    let renamed = send_json(
        server.addr(),
        "PATCH",
        &format!("{PODS}/p"),
        "application/merge-patch+json",
        &json!({"metadata": {"name": "other"}}),
    )
    .await?;
    assert_eq!(renamed.status, 400);
    assert_eq!(
        renamed.json()?["message"],
        "the name of the object (other) does not match the name on the URL (p)"
    );

    let mut v2 = configmap("default", "two", json!({}));
    v2["apiVersion"] = json!("v2");
    let response = post(server.addr(), CMS, &v2).await?;
    assert_eq!(response.status, 400);
    assert_eq!(
        response.json()?["message"],
        "ConfigMap in version \"v2\" cannot be handled as a ConfigMap: no kind \"ConfigMap\" is registered for version \"v2\" in scheme \"pkg/api/legacyscheme/scheme.go:30\""
    );
    assert_eq!(get(server.addr(), &format!("{CMS}/two")).await?.status, 404);
    Ok(())
}

/// Polls `path` until it answers 404, at most [`WAIT`]; false if it never did.
async fn gone_within_wait(server: &ApiServer, path: &str) -> TestResult<bool> {
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        if get(server.addr(), path).await?.status == 404 {
            return Ok(true);
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    Ok(false)
}

fn scheduled_pod(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"nodeName": "node-1", "containers": [{"name": "main", "image": "busybox"}]}})
}

/// Row 8. Follows `podStrategy.CheckGracefulDelete` (`pkg/registry/core/pod/strategy.go`) and
/// `BeforeDelete` (`apiserver/pkg/registry/rest/delete.go`): a scheduled Pod is marked with
/// `deletionTimestamp = now + grace` and stays until the grace period ends (here the server ends
/// it, standing in for the kubelet); unscheduled Pods and `gracePeriodSeconds=0` go at once.
#[tokio::test]
async fn scheduled_pods_are_deleted_gracefully_and_the_server_ends_the_grace_period() -> TestResult {
    let server = ApiServer::start().await?;
    assert_eq!(
        post(server.addr(), PODS, &scheduled_pod("slow")).await?.status,
        201
    );
    let path = format!("{PODS}/slow");
    let response = request(
        server.addr(),
        "DELETE",
        &format!("{path}?gracePeriodSeconds=1"),
        &[],
        None,
    )
    .await?;
    assert_eq!(response.status, 200);
    let marked = response.json()?;
    assert_eq!(
        marked["kind"], "Pod",
        "the object is answered while it terminates"
    );
    assert_eq!(marked["metadata"]["deletionGracePeriodSeconds"], 1);
    assert!(marked["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(marked["metadata"]["generation"], 2);
    assert_eq!(
        get(server.addr(), &path).await?.status,
        200,
        "still there during its grace period"
    );
    assert!(
        gone_within_wait(&server, &path).await?,
        "removed when the grace period ended"
    );

    assert_eq!(
        post(server.addr(), PODS, &scheduled_pod("forced")).await?.status,
        201
    );
    let body = serde_json::to_vec(&json!({"gracePeriodSeconds": 0}))?;
    let forced = request(
        server.addr(),
        "DELETE",
        &format!("{PODS}/forced"),
        &[],
        Some(&body),
    )
    .await?;
    assert_eq!(forced.json()?["kind"], "Status", "grace 0 deletes at once");
    assert_eq!(get(server.addr(), &format!("{PODS}/forced")).await?.status, 404);

    post(server.addr(), PODS, &pod("default", "unscheduled", json!({}), "")).await?;
    let unscheduled = request(server.addr(), "DELETE", &format!("{PODS}/unscheduled"), &[], None).await?;
    assert_eq!(
        unscheduled.json()?["kind"],
        "Status",
        "an unscheduled Pod goes at once"
    );

    assert_eq!(
        post(server.addr(), PODS, &scheduled_pod("default-grace"))
            .await?
            .status,
        201
    );
    let marked = request(
        server.addr(),
        "DELETE",
        &format!("{PODS}/default-grace"),
        &[],
        None,
    )
    .await?
    .json()?;
    assert_eq!(
        marked["metadata"]["deletionGracePeriodSeconds"], 30,
        "the Pod's default period"
    );
    Ok(())
}

fn owned_configmap(name: &str, owner: &Value) -> Value {
    let mut cm = configmap("default", name, json!({}));
    cm["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "Deployment",
        "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"], "blockOwnerDeletion": true}]);
    cm
}

async fn delete_with(server: &ApiServer, path: &str, policy: &str) -> TestResult<HttpResponse> {
    let body = serde_json::to_vec(
        &json!({"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": policy}),
    )?;
    request(
        server.addr(),
        "DELETE",
        path,
        &[("Content-Type", "application/json")],
        Some(&body),
    )
    .await
}

/// Row 7. Follows `shouldUpdateFinalizers` and `markAsDeleting`
/// (`apiserver/pkg/registry/generic/registry/store.go`) for the finalizers DELETE adds, and the
/// garbage collector (`pkg/controller/garbagecollector/garbagecollector.go`) for what happens to
/// the dependents: deleted (Background), deleted before the owner goes (Foreground), or freed of
/// their owner reference (Orphan).
#[tokio::test]
async fn deletion_propagation_and_the_garbage_collector() -> TestResult {
    let server = ApiServer::start().await?;
    for (owner, policy) in [("bg", "Background"), ("fg", "Foreground"), ("orphaner", "Orphan")] {
        let owner_obj = post(server.addr(), DEPLOYMENTS, &deployment(owner))
            .await?
            .json()?;
        let dependent = owned_configmap(&format!("{owner}-cm"), &owner_obj);
        assert_eq!(post(server.addr(), CMS, &dependent).await?.status, 201);
        let owner_path = format!("{DEPLOYMENTS}/{owner}");
        let dependent_path = format!("{CMS}/{owner}-cm");
        let response = delete_with(&server, &owner_path, policy).await?;
        assert_eq!(response.status, 200, "{}", response.text());
        let answer = response.json()?;
        match policy {
            "Background" => {
                assert_eq!(answer["kind"], "Status");
                assert!(
                    gone_within_wait(&server, &dependent_path).await?,
                    "dependent collected"
                );
            }
            "Foreground" => {
                assert_eq!(answer["metadata"]["finalizers"], json!(["foregroundDeletion"]));
                assert!(answer["metadata"]["deletionTimestamp"].is_string());
                assert!(
                    gone_within_wait(&server, &dependent_path).await?,
                    "dependent deleted first"
                );
                assert!(gone_within_wait(&server, &owner_path).await?, "then the owner");
            }
            _ => {
                assert_eq!(answer["metadata"]["finalizers"], json!(["orphan"]));
                assert!(gone_within_wait(&server, &owner_path).await?, "the owner goes");
                let orphan = get_json(server.addr(), &dependent_path).await?;
                assert!(orphan["metadata"].get("ownerReferences").is_none(), "{orphan}");
            }
        }
    }
    Ok(())
}

/// Row 7, the switch: without the collector (as envtest) a Foreground owner waits forever and
/// dependents stay.
#[tokio::test]
async fn without_the_garbage_collector_dependents_stay_and_foreground_owners_wait() -> TestResult {
    let server = ApiServer::builder().garbage_collector(false).start().await?;
    let owner = post(server.addr(), DEPLOYMENTS, &deployment("web"))
        .await?
        .json()?;
    post(server.addr(), CMS, &owned_configmap("dep", &owner)).await?;
    let response = delete_with(&server, &format!("{DEPLOYMENTS}/web"), "Foreground").await?;
    assert_eq!(
        response.json()?["metadata"]["finalizers"],
        json!(["foregroundDeletion"])
    );
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(
        get(server.addr(), &format!("{DEPLOYMENTS}/web")).await?.status,
        200
    );
    assert_eq!(get(server.addr(), &format!("{CMS}/dep")).await?.status, 200);
    Ok(())
}

/// Row 9. Follows apimachinery's `strategicpatch/patch.go` (`metadata.finalizers` is
/// `patchStrategy:"merge"`; `$deleteFromPrimitiveList`) and apiextensions-apiserver's patch types
/// for custom resources (no strategic merge: 415 with
/// `negotiation.NewUnsupportedMediaTypeError`'s text).
#[tokio::test]
async fn strategic_merge_patches_merge_finalizers_honour_primitive_deletions_and_refuse_custom_resources()
-> TestResult {
    let server = ApiServer::start().await?;
    let mut cm = configmap("default", "f", json!({}));
    cm["metadata"]["finalizers"] = json!(["example.com/a", "example.com/b"]);
    post(server.addr(), CMS, &cm).await?;
    let path = format!("{CMS}/f");
    let smp = "application/strategic-merge-patch+json";
    let merged = send_json(
        server.addr(),
        "PATCH",
        &path,
        smp,
        &json!({"metadata": {"finalizers": ["example.com/c"]}}),
    )
    .await?
    .json()?;
    assert_eq!(
        merged["metadata"]["finalizers"],
        json!(["example.com/a", "example.com/b", "example.com/c"])
    );
    let removed = send_json(
        server.addr(),
        "PATCH",
        &path,
        smp,
        &json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["example.com/a", "example.com/c"]}}),
    )
    .await?
    .json()?;
    assert_eq!(removed["metadata"]["finalizers"], json!(["example.com/b"]));

    assert_eq!(
        post(
            server.addr(),
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            &widget_crd(true)
        )
        .await?
        .status,
        201
    );
    let widgets = "/apis/example.com/v1/namespaces/default/widgets";
    post(
        server.addr(),
        widgets,
        &json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}),
    )
    .await?;
    let refused = send_json(
        server.addr(),
        "PATCH",
        &format!("{widgets}/w"),
        smp,
        &json!({"spec": {"a": 1}}),
    )
    .await?;
    assert_eq!(refused.status, 415);
    let status = refused.json()?;
    assert_eq!(status["reason"], "UnsupportedMediaType");
    assert_eq!(
        status["message"],
        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
    );
    Ok(())
}

/// Row 10. Follows `ScaleREST` (`pkg/registry/apps/deployment/storage/storage.go`,
/// `apiextensions-apiserver/pkg/registry/customresource/etcd.go`), `EvictionREST`
/// (`pkg/registry/core/pod/storage/eviction.go`; PodDisruptionBudgets are not consulted),
/// `BindingREST` (`pkg/registry/core/pod/storage/storage.go`) and the SelfSubjectAccessReview
/// of `pkg/registry/authorization/selfsubjectaccessreview/rest.go`.
#[tokio::test]
async fn scale_eviction_binding_and_access_reviews_are_served() -> TestResult {
    let server = ApiServer::start().await?;
    post(server.addr(), DEPLOYMENTS, &deployment("web")).await?;
    let scale_path = format!("{DEPLOYMENTS}/web/scale");
    let scale = get_json(server.addr(), &scale_path).await?;
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["apiVersion"], "autoscaling/v1");
    assert_eq!(scale["spec"], json!({"replicas": 2}));
    assert_eq!(scale["status"], json!({"replicas": 0, "selector": "app=web"}));
    let patched = send_json(
        server.addr(),
        "PATCH",
        &scale_path,
        "application/merge-patch+json",
        &json!({"spec": {"replicas": 5}}),
    )
    .await?;
    assert_eq!(patched.status, 200, "{}", patched.text());
    assert_eq!(patched.json()?["spec"]["replicas"], 5);
    let deployment = get_json(server.addr(), &format!("{DEPLOYMENTS}/web")).await?;
    assert_eq!(deployment["spec"]["replicas"], 5);
    assert_eq!(deployment["metadata"]["generation"], 2);
    let mut stale = scale.clone();
    stale["spec"]["replicas"] = json!(1);
    assert_eq!(
        put(&server, &scale_path, &stale).await?.status,
        409,
        "the Scale's version is a precondition"
    );

    let mut crd = widget_crd(true);
    crd["spec"]["versions"][0]["subresources"]["scale"] = json!({"specReplicasPath": ".spec.size", "statusReplicasPath": ".status.size", "labelSelectorPath": ".status.selector"});
    assert_eq!(
        post(
            server.addr(),
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            &crd
        )
        .await?
        .status,
        201
    );
    let widgets = "/apis/example.com/v1/namespaces/default/widgets";
    post(server.addr(), widgets, &json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 1}})).await?;
    let mut widget_scale = get_json(server.addr(), &format!("{widgets}/w/scale")).await?;
    assert_eq!(widget_scale["spec"]["replicas"], 1);
    widget_scale["spec"]["replicas"] = json!(3);
    assert_eq!(
        put(&server, &format!("{widgets}/w/scale"), &widget_scale)
            .await?
            .status,
        200
    );
    assert_eq!(
        get_json(server.addr(), &format!("{widgets}/w")).await?["spec"]["size"],
        3
    );
    assert_eq!(get(server.addr(), &format!("{CMS}/x/scale")).await?.status, 404);

    post(server.addr(), PODS, &pod("default", "p", json!({}), "")).await?;
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"}, "target": {"kind": "Node", "name": "node-1"}});
    let bound = post(server.addr(), &format!("{PODS}/p/binding"), &binding).await?;
    assert_eq!(bound.status, 201, "{}", bound.text());
    assert_eq!(bound.json()?["status"], "Success");
    let pod = get_json(server.addr(), &format!("{PODS}/p")).await?;
    assert_eq!(pod["spec"]["nodeName"], "node-1");
    assert_eq!(pod["status"]["conditions"][0]["type"], "PodScheduled");
    let again = post(server.addr(), &format!("{PODS}/p/binding"), &binding).await?;
    assert_eq!(again.status, 409);
    assert_eq!(
        again.json()?["message"],
        "Operation cannot be fulfilled on pods/binding \"p\": pod p is already assigned to node \"node-1\""
    );

    let eviction = json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "p"},
                          "deleteOptions": {"gracePeriodSeconds": 0}});
    let evicted = post(server.addr(), &format!("{PODS}/p/eviction"), &eviction).await?;
    assert_eq!(evicted.status, 201, "{}", evicted.text());
    assert_eq!(get(server.addr(), &format!("{PODS}/p")).await?.status, 404);

    let review = post(
        server.addr(),
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        &json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                "spec": {"resourceAttributes": {"verb": "create", "resource": "pods", "namespace": "default"}}}),
    )
    .await?;
    assert_eq!(review.status, 201);
    let review = review.json()?;
    assert_eq!(review["status"]["allowed"], true);
    assert_eq!(review["spec"]["resourceAttributes"]["verb"], "create");
    // kubectl auth can-i sends the review as protobuf.
    let protobuf = request(
        server.addr(),
        "POST",
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        &[("Content-Type", "application/vnd.kubernetes.protobuf")],
        Some(b"k8s\x00\x0a\x02"),
    )
    .await?;
    assert_eq!(protobuf.status, 201);
    assert_eq!(protobuf.json()?["status"]["allowed"], true);

    let discovery = get_json(server.addr(), "/apis/apps/v1").await?;
    let scale_resource = discovery["resources"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["name"] == "deployments/scale"))
        .cloned()
        .ok_or("deployments/scale is advertised")?;
    assert_eq!(scale_resource["kind"], "Scale");
    assert_eq!(scale_resource["group"], "autoscaling");

    for (path, kind) in [
        (
            "/apis/policy/v1/namespaces/default/poddisruptionbudgets",
            "PodDisruptionBudget",
        ),
        (
            "/apis/networking.k8s.io/v1/namespaces/default/ingresses",
            "Ingress",
        ),
        (
            "/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles",
            "Role",
        ),
        ("/apis/events.k8s.io/v1/namespaces/default/events", "Event"),
    ] {
        let api_version = path.split('/').skip(2).take(2).collect::<Vec<_>>().join("/");
        let created = post(
            server.addr(),
            path,
            &json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": "one"}}),
        )
        .await?;
        assert_eq!(created.status, 201, "{kind}: {}", created.text());
        assert_eq!(
            get_json(server.addr(), &format!("{path}/one")).await?["kind"],
            kind
        );
    }
    Ok(())
}

async fn apply(server: &ApiServer, path: &str, query: &str, body: &Value) -> TestResult<HttpResponse> {
    let bytes = serde_json::to_vec(body)?;
    request(
        server.addr(),
        "PATCH",
        &format!("{path}?{query}"),
        &[("Content-Type", "application/apply-patch+yaml")],
        Some(&bytes),
    )
    .await
}

/// Row 2. Follows apimachinery's `pkg/util/managedfields` (`FieldManager.Apply`, `Update`,
/// `internal/conflict.go` for the 409 text, `printManager`), structured-merge-diff's
/// `merge/update.go` (ownership, conflicts, removal of fields the applier stopped applying) and
/// `ValidatePatchOptions` (422 without `fieldManager`).
#[tokio::test]
async fn server_side_apply_tracks_managers_conflicts_forces_and_removes_dropped_fields() -> TestResult {
    let server = ApiServer::start().await?;
    let path = format!("{CMS}/cfg");
    let config = |data: Value| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": data});

    let missing = apply(&server, &path, "", &config(json!({"a": "1"}))).await?;
    assert_eq!(missing.status, 422);
    assert_eq!(
        missing.json()?["message"],
        "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"
    );

    let created = apply(
        &server,
        &path,
        "fieldManager=mgr1",
        &config(json!({"a": "1", "b": "1"})),
    )
    .await?;
    assert_eq!(created.status, 201, "{}", created.text());
    let created = created.json()?;
    let entries = created["metadata"]["managedFields"]
        .as_array()
        .ok_or("managedFields")?;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["manager"], "mgr1");
    assert_eq!(entries[0]["operation"], "Apply");
    assert_eq!(entries[0]["apiVersion"], "v1");
    assert_eq!(entries[0]["fieldsType"], "FieldsV1");
    assert_eq!(entries[0]["fieldsV1"], json!({"f:data": {"f:a": {}, "f:b": {}}}));

    let conflict = apply(&server, &path, "fieldManager=mgr2", &config(json!({"a": "2"}))).await?;
    assert_eq!(conflict.status, 409);
    let status = conflict.json()?;
    assert_eq!(status["reason"], "Conflict");
    assert_eq!(
        status["message"],
        "Apply failed with 1 conflict: conflict with \"mgr1\": .data.a"
    );
    assert_eq!(
        status["details"]["causes"],
        json!([{"reason": "FieldManagerConflict", "message": "conflict with \"mgr1\"", "field": ".data.a"}])
    );
    let same_value = apply(&server, &path, "fieldManager=mgr2", &config(json!({"a": "1"}))).await?;
    assert_eq!(same_value.status, 200, "agreeing on a value is shared ownership");

    let forced = apply(
        &server,
        &path,
        "fieldManager=mgr2&force=true",
        &config(json!({"a": "2"})),
    )
    .await?;
    assert_eq!(forced.status, 200, "{}", forced.text());
    let forced = forced.json()?;
    assert_eq!(forced["data"], json!({"a": "2", "b": "1"}));
    let owners: Vec<(Value, Value)> = forced["metadata"]["managedFields"]
        .as_array()
        .ok_or("managedFields")?
        .iter()
        .map(|e| (e["manager"].clone(), e["fieldsV1"].clone()))
        .collect();
    assert_eq!(
        owners,
        vec![
            (json!("mgr1"), json!({"f:data": {"f:b": {}}})),
            (json!("mgr2"), json!({"f:data": {"f:a": {}}}))
        ]
    );

    let dropped = apply(&server, &path, "fieldManager=mgr1", &config(json!({})))
        .await?
        .json()?;
    assert_eq!(
        dropped["data"],
        json!({"a": "2"}),
        "b was mgr1's alone and is removed"
    );

    let updated = send_json(
        server.addr(),
        "PATCH",
        &format!("{path}?fieldManager=editor"),
        "application/merge-patch+json",
        &json!({"data": {"a": "3"}}),
    )
    .await?
    .json()?;
    let editor = updated["metadata"]["managedFields"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["manager"] == "editor"))
        .cloned()
        .ok_or("an Update entry")?;
    assert_eq!(editor["operation"], "Update");
    assert_eq!(editor["fieldsV1"], json!({"f:data": {"f:a": {}}}));
    let conflict = apply(&server, &path, "fieldManager=mgr2", &config(json!({"a": "4"})))
        .await?
        .json()?;
    let message = conflict["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("Apply failed with 1 conflict: conflict with \"editor\" using v1 at "),
        "{message}"
    );
    Ok(())
}

/// Row 2, lists. Follows structured-merge-diff's list semantics for the built-in schemas:
/// containers are a map keyed by `name` (`k:` elements), so two managers own different containers
/// and an applier dropping its container removes only that one.
#[tokio::test]
async fn server_side_apply_merges_keyed_lists_by_key() -> TestResult {
    let server = ApiServer::start().await?;
    let path = format!("{DEPLOYMENTS}/web");
    let with_containers = |containers: Value| {
        let mut d = deployment("web");
        d["spec"]["template"]["spec"]["containers"] = containers;
        d
    };
    let first = apply(
        &server,
        &path,
        "fieldManager=one",
        &with_containers(json!([{"name": "main", "image": "nginx:1"}])),
    )
    .await?;
    assert_eq!(first.status, 201, "{}", first.text());
    let fields = first.json()?["metadata"]["managedFields"][0]["fieldsV1"].clone();
    assert_eq!(
        fields["f:spec"]["f:template"]["f:spec"]["f:containers"],
        json!({"k:{\"name\":\"main\"}": {".": {}, "f:image": {}, "f:name": {}}})
    );
    let mut sidecar = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"template": {"spec": {"containers": [{"name": "side", "image": "envoy:1"}]}}}});
    let second = apply(&server, &path, "fieldManager=two", &sidecar).await?;
    assert_eq!(second.status, 200, "{}", second.text());
    let names: Vec<Value> = second.json()?["spec"]["template"]["spec"]["containers"]
        .as_array()
        .ok_or("containers")?
        .iter()
        .map(|c| c["name"].clone())
        .collect();
    assert_eq!(names, vec![json!("main"), json!("side")]);
    sidecar["spec"]["template"]["spec"]["containers"] = json!([]);
    let removed = apply(&server, &path, "fieldManager=two", &sidecar)
        .await?
        .json()?;
    let names: Vec<Value> = removed["spec"]["template"]["spec"]["containers"]
        .as_array()
        .ok_or("containers")?
        .iter()
        .map(|c| c["name"].clone())
        .collect();
    assert_eq!(names, vec![json!("main")]);
    Ok(())
}

/// Row 3, built-in kinds. Follows `fieldValidation` in `apiserver/pkg/endpoints/handlers/create.go`
/// (Warn by default: unknown fields dropped with a `Warning` header; Ignore: dropped; Strict: 400
/// `strict decoding error`) and the Go JSON decoder's type errors (`transformDecodeError`).
#[tokio::test]
async fn field_validation_drops_warns_or_refuses_unknown_fields_and_type_errors_are_400() -> TestResult {
    let server = ApiServer::start().await?;
    let mut body = configmap("default", "w", json!({"k": "v"}));
    body["bogus"] = json!(1);
    body["metadata"]["alsoBogus"] = json!("x");

    let warned = post(server.addr(), CMS, &body).await?;
    assert_eq!(warned.status, 201, "{}", warned.text());
    assert_eq!(
        warned.header("warning"),
        Some("299 - \"unknown field \\\"bogus\\\"\", 299 - \"unknown field \\\"metadata.alsoBogus\\\"\"")
    );
    let stored = get_json(server.addr(), &format!("{CMS}/w")).await?;
    assert!(stored.get("bogus").is_none() && stored["metadata"].get("alsoBogus").is_none());

    body["metadata"]["name"] = json!("i");
    let ignored = post(server.addr(), &format!("{CMS}?fieldValidation=Ignore"), &body).await?;
    assert_eq!(ignored.status, 201);
    assert!(ignored.header("warning").is_none());
    assert!(ignored.json()?.get("bogus").is_none());

    body["metadata"]["name"] = json!("s");
    let strict = post(server.addr(), &format!("{CMS}?fieldValidation=Strict"), &body).await?;
    assert_eq!(strict.status, 400);
    assert_eq!(
        strict.json()?["message"],
        "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: strict decoding error: unknown field \"bogus\", unknown field \"metadata.alsoBogus\""
    );
    assert_eq!(get(server.addr(), &format!("{CMS}/s")).await?.status, 404);

    let typed = post(server.addr(), CMS, &configmap("default", "t", json!({"k": 1}))).await?;
    assert_eq!(typed.status, 400);
    assert_eq!(
        typed.json()?["message"],
        "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: json: cannot unmarshal number into Go struct field ConfigMap.data of type string"
    );

    let patched = send_json(
        server.addr(),
        "PATCH",
        &format!("{CMS}/w"),
        "application/merge-patch+json",
        &json!({"bogus": 2, "data": {"k": "v2"}}),
    )
    .await?;
    assert_eq!(patched.status, 200);
    let patched = patched.json()?;
    assert!(
        patched.get("bogus").is_none(),
        "a patch's unknown field is dropped"
    );
    assert_eq!(patched["data"]["k"], "v2");

    let mut nested = pod("default", "p", json!({}), "");
    nested["spec"]["containers"][0]["imagePolicy"] = json!("x");
    let strict = post(server.addr(), &format!("{PODS}?fieldValidation=Strict"), &nested).await?;
    assert_eq!(strict.status, 400);
    assert!(
        strict
            .text()
            .contains("unknown field \\\"spec.containers[0].imagePolicy\\\""),
        "{}",
        strict.text()
    );
    Ok(())
}

/// Row 3, custom resources. Follows apiextensions-apiserver: `pkg/apiserver/schema/pruning`
/// (unknown fields dropped), `pkg/apiserver/schema/defaulting` (defaults filled in) and
/// `pkg/apiserver/validation` with kube-openapi's `validate` (the messages of types, required,
/// enum, minimum, maxLength, pattern and maxItems).
#[tokio::test]
async fn custom_resources_are_pruned_defaulted_and_validated_against_their_schema() -> TestResult {
    let server = ApiServer::start().await?;
    let mut crd = widget_crd(true);
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"] = json!({
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "required": ["size"],
                "properties": {
                    "size": {"type": "integer", "minimum": 1, "maximum": 10},
                    "mode": {"type": "string", "enum": ["fast", "slow"], "default": "slow"},
                    "name": {"type": "string", "maxLength": 5, "pattern": "^[a-z]+$"},
                    "tags": {"type": "array", "maxItems": 2, "items": {"type": "string"}},
                    "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
                }
            },
            "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}}
        }
    });
    assert_eq!(
        post(
            server.addr(),
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            &crd
        )
        .await?
        .status,
        201
    );
    let widgets = "/apis/example.com/v1/namespaces/default/widgets";
    let widget = |spec: Value| json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": spec, "junk": 1});

    let created = post(
        server.addr(),
        widgets,
        &widget(json!({"size": 3, "unknown": true, "extra": {"anything": 1}})),
    )
    .await?;
    assert_eq!(created.status, 201, "{}", created.text());
    let created = created.json()?;
    assert!(created.get("junk").is_none(), "unknown top-level field pruned");
    assert_eq!(
        created["spec"],
        json!({"size": 3, "mode": "slow", "extra": {"anything": 1}})
    );

    let invalid = post(
        server.addr(),
        widgets,
        &widget(json!({"size": "big", "mode": "warp", "name": "Too-Long", "tags": ["a", "b", "c"]})),
    )
    .await?;
    assert_eq!(invalid.status, 422, "{}", invalid.text());
    let status = invalid.json()?;
    assert_eq!(status["reason"], "Invalid");
    let causes: Vec<String> = status["details"]["causes"]
        .as_array()
        .ok_or("causes")?
        .iter()
        .map(|c| {
            format!(
                "{}: {}",
                c["field"].as_str().unwrap_or_default(),
                c["message"].as_str().unwrap_or_default()
            )
        })
        .collect();
    assert!(
        causes.contains(
            &"spec.size: Invalid value: \"big\": spec.size in body must be of type integer: \"string\""
                .to_string()
        ),
        "{causes:?}"
    );
    assert!(
        causes.contains(
            &"spec.mode: Unsupported value: \"warp\": supported values: \"fast\", \"slow\"".to_string()
        ),
        "{causes:?}"
    );
    assert!(
        causes.contains(&"spec.name: Too long: may not be more than 5 bytes".to_string()),
        "{causes:?}"
    );
    assert!(
        causes.contains(
            &"spec.name: Invalid value: \"Too-Long\": spec.name in body should match '^[a-z]+$'".to_string()
        ),
        "{causes:?}"
    );
    assert!(
        causes.contains(&"spec.tags: Too many: 3: must have at most 2 items".to_string()),
        "{causes:?}"
    );
    assert!(
        status["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("Widget.example.com \"w\" is invalid: ["))
    );

    let missing = send_json(
        server.addr(),
        "PUT",
        &format!("{widgets}/w"),
        "application/json",
        &{
            let mut w = created.clone();
            w["spec"] = json!({"size": 0});
            w
        },
    )
    .await?;
    assert_eq!(missing.status, 422);
    assert_eq!(
        missing.json()?["message"],
        "Widget.example.com \"w\" is invalid: spec.size: Invalid value: 0: spec.size in body should be greater than or equal to 1"
    );
    let required = send_json(
        server.addr(),
        "PATCH",
        &format!("{widgets}/w"),
        "application/merge-patch+json",
        &json!({"spec": {"size": null}}),
    )
    .await?;
    assert_eq!(required.status, 422);
    assert_eq!(
        required.json()?["message"],
        "Widget.example.com \"w\" is invalid: spec.size: Required value"
    );
    Ok(())
}

/// Row 16 (the cheap ones). Follows `with_audit_init.go` (an `Audit-Id` on every answer, errors
/// included) and the event field selectors of `pkg/registry/core/event/strategy.go` (`source`).
#[tokio::test]
async fn every_answer_has_an_audit_id_and_events_select_by_source() -> TestResult {
    let server = ApiServer::start().await?;
    let ok = get(server.addr(), CMS).await?;
    let missing = get(server.addr(), &format!("{CMS}/nope")).await?;
    let first = ok.header("audit-id").ok_or("no Audit-Id")?.to_string();
    let second = missing
        .header("audit-id")
        .ok_or("no Audit-Id on a 404")?
        .to_string();
    assert_eq!(first.len(), 36);
    assert_ne!(first, second);

    server.create(json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e", "namespace": "default"},
        "involvedObject": {"kind": "Pod", "name": "p"}, "source": {"component": "kubelet"}, "reason": "Started"}))?;
    let selected = get_json(
        server.addr(),
        "/api/v1/namespaces/default/events?fieldSelector=source%3Dkubelet",
    )
    .await?;
    assert_eq!(selected["items"].as_array().map(Vec::len), Some(1));
    Ok(())
}

/// Row 15 (v3 only). Follows the OpenAPI v3 documents of `kube-openapi` as `kubectl explain` reads
/// them: the kind's schema in `components.schemas`, tagged with `x-kubernetes-group-version-kind`,
/// nested types by `$ref`; a CRD's kinds carry its `openAPIV3Schema`.
#[tokio::test]
async fn openapi_v3_documents_carry_the_schemas_of_built_in_kinds_and_crds() -> TestResult {
    let server = ApiServer::start().await?;
    let doc = get_json(server.addr(), "/openapi/v3/api/v1").await?;
    let schemas = doc["components"]["schemas"].as_object().ok_or("schemas")?;
    let (_, pod) = schemas
        .iter()
        .find(|(_, s)| {
            s["x-kubernetes-group-version-kind"] == json!([{"group": "", "version": "v1", "kind": "Pod"}])
        })
        .ok_or("a Pod schema")?;
    assert_eq!(pod["properties"]["kind"]["type"], "string");
    let spec_ref = pod["properties"]["spec"]["allOf"][0]["$ref"]
        .as_str()
        .ok_or("spec ref")?;
    let spec = &schemas[spec_ref.trim_start_matches("#/components/schemas/")];
    assert_eq!(spec["properties"]["containers"]["type"], "array");
    // kubectl's client-side apply reads the patch strategy from here (an atomic list there made
    // every `kubectl apply` of an unchanged Deployment print "configured").
    assert_eq!(
        spec["properties"]["containers"]["x-kubernetes-patch-merge-key"],
        "name"
    );
    assert_eq!(
        spec["properties"]["containers"]["x-kubernetes-patch-strategy"],
        "merge"
    );
    assert_eq!(spec["properties"]["nodeName"]["type"], "string");

    let mut crd = widget_crd(true);
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"] = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {"size": {"type": "integer"}}}}});
    post(
        server.addr(),
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        &crd,
    )
    .await?;
    let doc = get_json(server.addr(), "/openapi/v3/apis/example.com/v1").await?;
    let widget = doc["components"]["schemas"]
        .as_object()
        .and_then(|s| {
            s.values()
                .find(|s| s["x-kubernetes-group-version-kind"][0]["kind"] == "Widget")
        })
        .ok_or("a Widget schema")?;
    assert_eq!(
        widget["properties"]["spec"]["properties"]["size"]["type"],
        "integer"
    );
    Ok(())
}
