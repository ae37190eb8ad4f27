//! `/openapi/v2` (issue 19, row 15): the Swagger 2.0 document kubectl validates `kind: List`
//! manifests against, in the protobuf form client-go reads. The bytes are decoded here with the
//! field numbers of gnostic's `openapiv2/OpenAPIv2.proto`, the message client-go unmarshals them
//! into (`discovery.OpenAPISchema`).

use crate::common;

use common::*;
use kazan_apiserver::ApiServer;
use prost::Message as _;
use serde_json::{Value, json};

/// What client-go's `discovery.OpenAPISchema` sends.
const KUBECTL_ACCEPT: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";

/// The parts of gnostic's `openapi.v2.Document` the tests read (prost skips the other fields).
#[derive(Clone, PartialEq, prost::Message)]
struct Document {
    #[prost(string, tag = "1")]
    swagger: String,
    #[prost(message, optional, tag = "8")]
    paths: Option<Paths>,
    #[prost(message, optional, tag = "9")]
    definitions: Option<Definitions>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Paths {
    #[prost(message, repeated, tag = "2")]
    path: Vec<NamedPathItem>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct NamedPathItem {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, optional, tag = "2")]
    value: Option<PathItem>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct PathItem {
    #[prost(message, optional, tag = "8")]
    patch: Option<Operation>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Operation {
    #[prost(message, repeated, tag = "8")]
    parameters: Vec<ParametersItem>,
    #[prost(message, repeated, tag = "13")]
    vendor_extension: Vec<NamedAny>,
}

/// `oneof { Parameter parameter = 1; JsonReference json_reference = 2; }`, read as fields.
#[derive(Clone, PartialEq, prost::Message)]
struct ParametersItem {
    #[prost(message, optional, tag = "1")]
    parameter: Option<Parameter>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Parameter {
    #[prost(message, optional, tag = "2")]
    non_body_parameter: Option<NonBodyParameter>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct NonBodyParameter {
    #[prost(message, optional, tag = "3")]
    query_parameter_sub_schema: Option<QueryParameterSubSchema>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct QueryParameterSubSchema {
    #[prost(string, tag = "2")]
    r#in: String,
    #[prost(string, tag = "4")]
    name: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct NamedAny {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, optional, tag = "2")]
    value: Option<Any>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Any {
    #[prost(string, tag = "2")]
    yaml: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Definitions {
    #[prost(message, repeated, tag = "1")]
    additional_properties: Vec<NamedSchema>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct NamedSchema {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, optional, tag = "2")]
    value: Option<Schema>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Schema {
    #[prost(string, tag = "1")]
    r#ref: String,
    #[prost(string, repeated, tag = "19")]
    required: Vec<String>,
    #[prost(message, optional, tag = "22")]
    r#type: Option<TypeItem>,
    #[prost(message, optional, tag = "25")]
    properties: Option<Properties>,
    #[prost(message, repeated, tag = "31")]
    vendor_extension: Vec<NamedAny>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct TypeItem {
    #[prost(string, repeated, tag = "1")]
    value: Vec<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Properties {
    #[prost(message, repeated, tag = "1")]
    additional_properties: Vec<NamedSchema>,
}

impl Document {
    fn definition(&self, name: &str) -> Option<&Schema> {
        self.definitions
            .as_ref()?
            .additional_properties
            .iter()
            .find(|d| d.name == name)?
            .value
            .as_ref()
    }

    fn patch(&self, path: &str) -> Option<&Operation> {
        self.paths
            .as_ref()?
            .path
            .iter()
            .find(|p| p.name == path)?
            .value
            .as_ref()?
            .patch
            .as_ref()
    }
}

impl Schema {
    fn property(&self, name: &str) -> Option<&Schema> {
        self.properties
            .as_ref()?
            .additional_properties
            .iter()
            .find(|p| p.name == name)?
            .value
            .as_ref()
    }

    fn types(&self) -> Vec<String> {
        self.r#type.as_ref().map(|t| t.value.clone()).unwrap_or_default()
    }
}

/// An extension's value: gnostic keeps it as YAML text, of which JSON is a subset.
fn extension(extensions: &[NamedAny], name: &str) -> TestResult<Value> {
    let any = extensions
        .iter()
        .find(|e| e.name == name)
        .and_then(|e| e.value.as_ref())
        .ok_or_else(|| format!("no {name}"))?;
    Ok(serde_json::from_str(&any.yaml)?)
}

async fn openapi_v2(server: &ApiServer, accept: &str) -> TestResult<HttpResponse> {
    request(server.addr(), "GET", "/openapi/v2", &[("Accept", accept)], None).await
}

/// Follows kube-openapi `pkg/handler/handler.go` (`RegisterOpenAPIVersionedService`: protobuf
/// for either protobuf subtype, labelled `...spec.v2.v1.0+protobuf`, with an `ETag` and
/// `Vary: Accept`; JSON for `application/json` or `*/*`; 406 otherwise) and client-go
/// `discovery/discovery_client.go` (`OpenAPISchema` unmarshals `openapi_v2.Document`).
#[tokio::test]
async fn openapi_v2_is_served_as_gnostic_protobuf_to_kubectl_and_as_json_to_others() -> TestResult {
    let server = ApiServer::start().await?;
    let answer = openapi_v2(&server, KUBECTL_ACCEPT).await?;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(
        answer.header("content-type"),
        Some("application/com.github.proto-openapi.spec.v2.v1.0+protobuf")
    );
    assert_eq!(answer.header("vary"), Some("Accept"));
    let etag = answer.header("etag").ok_or("no ETag")?.to_string();
    let doc = Document::decode(answer.body.as_slice())?;
    assert_eq!(doc.swagger, "2.0");

    let json = openapi_v2(&server, "application/json").await?;
    assert_eq!(json.status, 200);
    assert_eq!(json.header("content-type"), Some("application/json"));
    assert_eq!(
        json.header("etag"),
        Some(etag.as_str()),
        "one ETag for both forms"
    );
    let json = json.json()?;
    assert_eq!(json["swagger"], "2.0");
    let definitions = json["definitions"].as_object().ok_or("definitions")?;
    let decoded = doc.definitions.as_ref().ok_or("no definitions")?;
    assert_eq!(decoded.additional_properties.len(), definitions.len());

    assert_eq!(
        openapi_v2(&server, "*/*").await?.header("content-type"),
        Some("application/json")
    );
    let refused = openapi_v2(&server, "application/xml").await?;
    assert_eq!(refused.status, 406);
    assert!(refused.body.is_empty());
    Ok(())
}

/// Follows kube-openapi `pkg/util/proto/document.go` (how kubectl reads definitions: a kind is an
/// object with properties, a `$ref` points into `#/definitions/`), `pkg/util/proto/validation`
/// (unknown fields and types are checked against them) and cli-runtime
/// `pkg/resource/query_param_verifier.go` (`supportsQueryParam`: the PATCH of an item path tagged
/// with the kind takes `fieldValidation`). Names are the real models'.
#[tokio::test]
async fn openapi_v2_definitions_are_the_built_in_kinds_with_real_names_and_patches_take_field_validation()
-> TestResult {
    let server = ApiServer::start().await?;
    let doc = Document::decode(openapi_v2(&server, KUBECTL_ACCEPT).await?.body.as_slice())?;

    let config_map = doc
        .definition("io.k8s.api.core.v1.ConfigMap")
        .ok_or("no ConfigMap definition")?;
    assert_eq!(
        extension(&config_map.vendor_extension, "x-kubernetes-group-version-kind")?,
        json!([{"group": "", "version": "v1", "kind": "ConfigMap"}])
    );
    for field in ["apiVersion", "kind", "data", "binaryData", "immutable"] {
        assert!(config_map.property(field).is_some(), "ConfigMap.{field}");
    }
    assert_eq!(
        config_map.property("metadata").map(|m| m.r#ref.as_str()),
        Some("#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")
    );
    assert!(
        doc.definition("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")
            .is_some()
    );

    let deployment_spec = doc
        .definition("io.k8s.api.apps.v1.DeploymentSpec")
        .ok_or("no DeploymentSpec")?;
    assert_eq!(
        deployment_spec.property("replicas").map(Schema::types),
        Some(vec!["integer".to_string()])
    );
    assert_eq!(
        deployment_spec.property("template").map(|t| t.r#ref.as_str()),
        Some("#/definitions/io.k8s.api.core.v1.PodTemplateSpec"),
        "a core message keeps its package when only apps reaches it"
    );

    let patch = doc
        .patch("/api/v1/namespaces/{namespace}/configmaps/{name}")
        .ok_or("no ConfigMap PATCH")?;
    assert_eq!(
        extension(&patch.vendor_extension, "x-kubernetes-group-version-kind")?,
        json!({"group": "", "version": "v1", "kind": "ConfigMap"})
    );
    let query: Vec<&str> = patch
        .parameters
        .iter()
        .filter_map(|p| {
            p.parameter
                .as_ref()?
                .non_body_parameter
                .as_ref()?
                .query_parameter_sub_schema
                .as_ref()
        })
        .filter(|q| q.r#in == "query")
        .map(|q| q.name.as_str())
        .collect();
    assert!(query.contains(&"fieldValidation"), "{query:?}");
    assert!(
        doc.patch("/apis/apps/v1/namespaces/{namespace}/deployments/{name}")
            .is_some()
    );
    Ok(())
}

/// Follows apiextensions-apiserver `pkg/controller/openapi/builder/builder.go` (`buildKubeNative`
/// with `V2`: named `com.example.v1.Widget`, `metadata`/`apiVersion`/`kind` added, a root that
/// preserves unknown fields published as a bare object) and `pkg/controller/openapi/v2/
/// conversion.go` (`ToStructuralOpenAPIV2`: nullable values and values preserving unknown fields
/// lose their type and properties, nullable fields are not required).
#[tokio::test]
async fn openapi_v2_carries_crd_schemas_converted_as_the_real_server_converts_them() -> TestResult {
    let server = ApiServer::start().await?;
    let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
                 "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                 "versions": [{"name": "v1", "served": true, "storage": true,
                     "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                         "spec": {"type": "object", "required": ["size", "color"], "properties": {
                             "size": {"type": "integer", "minimum": 1},
                             "color": {"type": "string", "nullable": true},
                             "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                                       "properties": {"a": {"type": "string"}}}}}}}}}]}});
    let created = post(
        server.addr(),
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        &crd,
    )
    .await?;
    assert_eq!(created.status, 201, "{}", created.text());
    let mut open = crd.clone();
    open["metadata"]["name"] = json!("gadgets.example.com");
    open["spec"]["names"] = json!({"plural": "gadgets", "singular": "gadget", "kind": "Gadget"});
    open["spec"]["versions"][0]["schema"]["openAPIV3Schema"] =
        json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true});
    let created = post(
        server.addr(),
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        &open,
    )
    .await?;
    assert_eq!(created.status, 201, "{}", created.text());

    let doc = openapi_v2(&server, "application/json").await?.json()?;
    let widget = &doc["definitions"]["com.example.v1.Widget"];
    assert_eq!(
        widget["x-kubernetes-group-version-kind"],
        json!([{"group": "example.com", "version": "v1", "kind": "Widget"}])
    );
    assert_eq!(
        widget["properties"]["metadata"]["$ref"],
        "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
    );
    assert_eq!(widget["properties"]["kind"]["type"], "string");
    let spec = &widget["properties"]["spec"];
    assert_eq!(
        spec["required"],
        json!(["size"]),
        "a nullable field is not required"
    );
    assert_eq!(
        spec["properties"]["size"],
        json!({"type": "integer", "minimum": 1})
    );
    assert_eq!(spec["properties"]["color"], json!({}));
    assert_eq!(
        spec["properties"]["extra"],
        json!({"x-kubernetes-preserve-unknown-fields": true})
    );
    assert_eq!(
        doc["definitions"]["com.example.v1.Gadget"],
        json!({"type": "object",
               "x-kubernetes-group-version-kind": [{"group": "example.com", "version": "v1", "kind": "Gadget"}]})
    );
    assert_eq!(
        doc["paths"]["/apis/example.com/v1/namespaces/{namespace}/widgets/{name}"]["patch"]["operationId"],
        "patchExampleComV1NamespacedWidget"
    );
    Ok(())
}
