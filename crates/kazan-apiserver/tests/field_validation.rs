//! `fieldValidation` on patches and custom resources (issue 19, row 3): unknown fields reported
//! with a `Warning` (the default `Warn`), refused with `Strict`, dropped silently with `Ignore`, as
//! the real server's patch handler and apiextensions-apiserver's pruning do.

use crate::common;

use common::*;
use kazan_apiserver::ApiServer;
use serde_json::{Value, json};

const CMS: &str = "/api/v1/namespaces/default/configmaps";
const DEPLOYMENTS: &str = "/apis/apps/v1/namespaces/default/deployments";
const WIDGETS: &str = "/apis/example.com/v1/namespaces/default/widgets";

async fn patch(server: &ApiServer, path: &str, content_type: &str, body: &Value) -> TestResult<HttpResponse> {
    send_json(server.addr(), "PATCH", path, content_type, body).await
}

/// The `Warning` header's texts (`299 - "text"`, comma-separated).
fn warnings(answer: &HttpResponse) -> Vec<String> {
    let Some(header) = answer.header("warning") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut rest = header;
    while let Some(start) = rest.find("299 - ") {
        let after = &rest[start + 6..];
        let mut stream = serde_json::Deserializer::from_str(after).into_iter::<String>();
        match stream.next() {
            Some(Ok(text)) => {
                out.push(text);
                rest = &after[stream.byte_offset()..];
            }
            _ => break,
        }
    }
    out
}

async fn config_map(server: &ApiServer) -> TestResult<Value> {
    let created = post(server.addr(), CMS, &configmap("default", "cm", json!({"a": "1"}))).await?;
    assert_eq!(created.status, 201, "{}", created.text());
    created.json()
}

/// Follows apiserver `pkg/endpoints/handlers/patch.go` (`jsonPatcher.applyPatchToCurrentObject`:
/// the patched object decoded strictly; `Warn`, the default of `fieldValidation` in `rest.go`,
/// turns the unknown fields into warnings, `Strict` into a 422 `Invalid value` on `patch` whose
/// value is the patched JSON; a value of the wrong type is a 422 whatever the directive).
#[tokio::test]
async fn json_and_merge_patches_warn_about_unknown_fields_and_strict_refuses_them() -> TestResult {
    let server = ApiServer::start().await?;
    let created = config_map(&server).await?;
    let path = format!("{CMS}/cm");

    let merged = patch(
        &server,
        &path,
        "application/merge-patch+json",
        &json!({"data": {"b": "2"}, "bogus": 1}),
    )
    .await?;
    assert_eq!(merged.status, 200, "{}", merged.text());
    assert_eq!(warnings(&merged), ["unknown field \"bogus\""]);
    let merged = merged.json()?;
    assert_eq!(merged["data"], json!({"a": "1", "b": "2"}));
    assert!(merged.get("bogus").is_none(), "the unknown field is dropped");

    let ignored = patch(
        &server,
        &format!("{path}?fieldValidation=Ignore"),
        "application/merge-patch+json",
        &json!({"bogus": 1}),
    )
    .await?;
    assert_eq!(ignored.status, 200);
    assert!(ignored.header("warning").is_none());

    let before = get_json(server.addr(), &path).await?;
    let strict = patch(
        &server,
        &format!("{path}?fieldValidation=Strict"),
        "application/json-patch+json",
        &json!([{"op": "add", "path": "/bogus", "value": 1}]),
    )
    .await?;
    assert_eq!(strict.status, 422, "{}", strict.text());
    let status = strict.json()?;
    assert_eq!(status["reason"], "Invalid");
    let mut patched = before.clone();
    patched["bogus"] = json!(1);
    let expected_value = Value::String(patched.to_string()).to_string();
    assert_eq!(
        status["message"],
        format!(
            " \"\" is invalid: patch: Invalid value: {expected_value}: strict decoding error: unknown field \"bogus\""
        )
    );
    assert_eq!(status["details"]["causes"][0]["field"], "patch");
    assert_eq!(status["details"]["causes"][0]["reason"], "FieldValueInvalid");
    assert_eq!(get_json(server.addr(), &path).await?, before, "nothing is stored");

    let wrong_type = patch(
        &server,
        &path,
        "application/merge-patch+json",
        &json!({"data": {"k": 1}}),
    )
    .await?;
    assert_eq!(wrong_type.status, 422, "{}", wrong_type.text());
    let message = wrong_type.json()?["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        message
            .ends_with(": json: cannot unmarshal number into Go struct field ConfigMap.data of type string"),
        "{message}"
    );
    assert_eq!(
        created["metadata"]["uid"],
        get_json(server.addr(), &path).await?["metadata"]["uid"]
    );
    Ok(())
}

/// Follows apiserver `pkg/endpoints/handlers/patch.go` (`applyPatchToObject`: the strategic
/// merge's result converted with `FromUnstructuredWithValidation`; the error's value is the patch
/// map printed with `%+v`).
#[tokio::test]
async fn strategic_merge_patches_report_unknown_fields_in_merged_list_items() -> TestResult {
    let server = ApiServer::start().await?;
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "main", "image": "nginx:1.27"}]}}}});
    assert_eq!(post(server.addr(), DEPLOYMENTS, &deployment).await?.status, 201);
    let path = format!("{DEPLOYMENTS}/web");
    let body = json!({"spec": {"template": {"spec": {"containers": [{"name": "main", "bogus": true}]}}}});

    let warned = patch(&server, &path, "application/strategic-merge-patch+json", &body).await?;
    assert_eq!(warned.status, 200, "{}", warned.text());
    assert_eq!(
        warnings(&warned),
        ["unknown field \"spec.template.spec.containers[0].bogus\""]
    );
    assert_eq!(
        warned.json()?["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.27",
        "the item is merged by name"
    );

    let strict = patch(
        &server,
        &format!("{path}?fieldValidation=Strict"),
        "application/strategic-merge-patch+json",
        &body,
    )
    .await?;
    assert_eq!(strict.status, 422, "{}", strict.text());
    assert_eq!(
        strict.json()?["message"],
        " \"\" is invalid: patch: Invalid value: \"map[spec:map[template:map[spec:map[containers:[map[bogus:true name:main]]]]]]\": strict decoding error: unknown field \"spec.template.spec.containers[0].bogus\""
    );
    Ok(())
}

/// Follows apimachinery `pkg/util/managedfields/internal/structuredmerge.go` (`Apply`: the applied
/// configuration typed against the kind's schema; an undeclared field fails with `failed to
/// create typed patch object`, a plain error the handler answers with 500) and
/// structured-merge-diff's paths (`[name="main"]` for an item of a keyed list).
#[tokio::test]
async fn apply_of_fields_the_kind_does_not_declare_fails_to_type_the_object() -> TestResult {
    let server = ApiServer::start().await?;
    let applied = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cm", "namespace": "default"}, "data": {"a": "1"}, "bogus": 1});
    let answer = patch(
        &server,
        &format!("{CMS}/cm?fieldManager=mgr&fieldValidation=Ignore"),
        "application/apply-patch+yaml",
        &applied,
    )
    .await?;
    assert_eq!(answer.status, 500, "{}", answer.text());
    assert_eq!(
        answer.json()?["message"],
        "failed to create typed patch object (default/cm; /v1, Kind=ConfigMap): .bogus: field not declared in schema"
    );
    assert_eq!(
        get(server.addr(), &format!("{CMS}/cm")).await?.status,
        404,
        "nothing is created"
    );

    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
        "spec": {"containers": [{"name": "main", "image": "nginx", "bogus": 1}], "bogus": 2}});
    let answer = patch(
        &server,
        "/api/v1/namespaces/default/pods/p?fieldManager=mgr",
        "application/apply-patch+yaml",
        &pod,
    )
    .await?;
    assert_eq!(answer.status, 500, "{}", answer.text());
    assert_eq!(
        answer.json()?["message"],
        "failed to create typed patch object (default/p; /v1, Kind=Pod): errors:\n  .spec.bogus: field not declared in schema\n  .spec.containers[name=\"main\"].bogus: field not declared in schema"
    );
    Ok(())
}

fn widget_crd() -> Value {
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
                 "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                 "versions": [{"name": "v1", "served": true, "storage": true,
                     "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                         "spec": {"type": "object", "properties": {
                             "size": {"type": "integer"},
                             "parts": {"type": "array", "items": {"type": "object",
                                 "properties": {"name": {"type": "string"}}}},
                             "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}}}}}]}})
}

/// Follows apiextensions-apiserver `pkg/apiserver/schema/pruning/algorithm.go`
/// (`PruneWithOptions` with `TrackUnknownFieldPaths`: the pruned paths, sorted) as the CR
/// handler's decoder reports them (`unstructuredSchemaCoercer.apply` with
/// `returnUnknownFieldPaths`), and apiserver's `create.go`/`update.go` (`Strict`: 400 `cannot be
/// handled as a Widget`) and `patch.go` (`Strict`: 422 on `patch`).
#[tokio::test]
async fn custom_resources_warn_about_pruned_fields_and_strict_refuses_them() -> TestResult {
    let server = ApiServer::start().await?;
    let crd = post(
        server.addr(),
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        &widget_crd(),
    )
    .await?;
    assert_eq!(crd.status, 201, "{}", crd.text());
    let widget = json!({"apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w", "namespace": "default"},
        "spec": {"size": 1, "colour": "red", "parts": [{"name": "a", "weight": 2}], "extra": {"free": true}},
        "top": 1});

    let mut strict = widget.clone();
    strict["metadata"]["name"] = json!("strict");
    let refused = send_json(
        server.addr(),
        "POST",
        &format!("{WIDGETS}?fieldValidation=Strict"),
        "application/json",
        &strict,
    )
    .await?;
    assert_eq!(refused.status, 400, "{}", refused.text());
    assert_eq!(
        refused.json()?["message"],
        "Widget in version \"v1\" cannot be handled as a Widget: strict decoding error: unknown field \"spec.colour\", unknown field \"spec.parts[0].weight\", unknown field \"top\""
    );

    let created = post(server.addr(), WIDGETS, &widget).await?;
    assert_eq!(created.status, 201, "{}", created.text());
    assert_eq!(
        warnings(&created),
        [
            "unknown field \"spec.colour\"",
            "unknown field \"spec.parts[0].weight\"",
            "unknown field \"top\""
        ]
    );
    let stored = created.json()?;
    assert_eq!(
        stored["spec"],
        json!({"size": 1, "parts": [{"name": "a"}], "extra": {"free": true}})
    );
    assert!(stored.get("top").is_none());

    let path = format!("{WIDGETS}/w");
    let replaced = send_json(
        server.addr(),
        "PUT",
        &format!("{path}?fieldValidation=Strict"),
        "application/json",
        &widget,
    )
    .await?;
    assert_eq!(replaced.status, 400, "{}", replaced.text());

    let merged = patch(
        &server,
        &path,
        "application/merge-patch+json",
        &json!({"spec": {"shade": "dark"}}),
    )
    .await?;
    assert_eq!(merged.status, 200, "{}", merged.text());
    assert_eq!(warnings(&merged), ["unknown field \"spec.shade\""]);
    assert!(merged.json()?["spec"].get("shade").is_none());

    let strict_patch = patch(
        &server,
        &format!("{path}?fieldValidation=Strict"),
        "application/merge-patch+json",
        &json!({"spec": {"shade": "dark"}}),
    )
    .await?;
    assert_eq!(strict_patch.status, 422, "{}", strict_patch.text());
    let message = strict_patch.json()?["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        message.starts_with(" \"\" is invalid: patch: Invalid value: \"{"),
        "{message}"
    );
    assert!(
        message.ends_with("\": strict decoding error: unknown field \"spec.shade\""),
        "{message}"
    );
    Ok(())
}
