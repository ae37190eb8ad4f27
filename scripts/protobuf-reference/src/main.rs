//! Writes the golden protobuf request bodies of the decoder's tests
//! (`crates/kazan-apiserver/src/protobuf/testdata/reference-*.pb`), encoded by prost from the
//! `k8s-pb` messages, so that the tests compare kazan's own decoder with an independent encoder
//! without building `k8s-pb` in kazan's workspace. Run from the repository root:
//!
//!     cargo run --manifest-path scripts/protobuf-reference/Cargo.toml

use std::path::Path;

use k8s_pb::api::core::v1 as core;
use k8s_pb::apimachinery::pkg::api::resource::Quantity;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use prost::Message as _;

const OUT: &str = "crates/kazan-apiserver/src/protobuf/testdata";

/// `k8s\0` + `runtime.Unknown`, as kubectl sends a body.
fn envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some(api_version.into()),
            kind: Some(kind.into()),
        }),
        raw: Some(raw),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    let mut body = b"k8s\0".to_vec();
    body.extend(unknown.encode_to_vec());
    body
}

/// A pod using what the generators never send: embedded structs (volume sources, probe
/// handlers, `LocalObjectReference`), quantities, int-or-string, times, pointer zeros, negative
/// numbers, maps.
fn pod() -> core::Pod {
    core::Pod {
        metadata: Some(meta::ObjectMeta {
            name: Some("p".into()),
            namespace: Some("ns".into()),
            creation_timestamp: Some(meta::Time {
                seconds: Some(1_767_225_600),
                nanos: Some(0),
            }),
            labels: [("app".to_string(), "web".to_string())].into(),
            ..Default::default()
        }),
        spec: Some(core::PodSpec {
            termination_grace_period_seconds: Some(0),
            priority: Some(-5),
            host_network: Some(false),
            volumes: vec![core::Volume {
                name: Some("config".into()),
                volume_source: Some(core::VolumeSource {
                    config_map: Some(core::ConfigMapVolumeSource {
                        local_object_reference: Some(core::LocalObjectReference {
                            name: Some("cm".into()),
                        }),
                        default_mode: Some(420),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
            }],
            containers: vec![core::Container {
                name: Some("app".into()),
                image: Some("nginx".into()),
                args: vec!["-g".into(), String::new()],
                resources: Some(core::ResourceRequirements {
                    limits: [(
                        "cpu".to_string(),
                        Quantity {
                            string: Some("500m".into()),
                        },
                    )]
                    .into(),
                    ..Default::default()
                }),
                readiness_probe: Some(core::Probe {
                    handler: Some(core::ProbeHandler {
                        http_get: Some(core::HttpGetAction {
                            path: Some("/healthz".into()),
                            port: Some(IntOrString {
                                r#type: Some(1),
                                int_val: Some(0),
                                str_val: Some("http".into()),
                            }),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    period_seconds: Some(10),
                    ..Default::default()
                }),
                env: vec![core::EnvVar {
                    name: Some("PASSWORD".into()),
                    value_from: Some(core::EnvVarSource {
                        secret_key_ref: Some(core::SecretKeySelector {
                            local_object_reference: Some(core::LocalObjectReference {
                                name: Some("s".into()),
                            }),
                            key: Some("pw".into()),
                            optional: Some(false),
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                security_context: Some(core::SecurityContext {
                    run_as_user: Some(0),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: None,
    }
}

/// A secret whose data is binary (not UTF-8).
fn secret() -> core::Secret {
    core::Secret {
        metadata: Some(meta::ObjectMeta {
            name: Some("s".into()),
            ..Default::default()
        }),
        data: [("key".to_string(), vec![0u8, 159, 146, 150])].into(),
        r#type: Some("Opaque".into()),
        ..Default::default()
    }
}

/// A config map followed by field 99, a string: something a newer kubectl might send.
fn configmap_with_a_newer_field() -> Vec<u8> {
    let mut raw = core::ConfigMap {
        metadata: Some(meta::ObjectMeta {
            name: Some("c".into()),
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec();
    raw.extend([0x9a, 0x06, 0x03, b'n', b'e', b'w']);
    raw
}

fn main() -> std::io::Result<()> {
    let out = Path::new(OUT);
    let bodies = [
        ("reference-pod.pb", envelope("v1", "Pod", pod().encode_to_vec())),
        (
            "reference-secret.pb",
            envelope("v1", "Secret", secret().encode_to_vec()),
        ),
        (
            "reference-configmap-newer-field.pb",
            envelope("v1", "ConfigMap", configmap_with_a_newer_field()),
        ),
    ];
    for (name, body) in bodies {
        std::fs::write(out.join(name), body)?;
        println!("wrote {}", out.join(name).display());
    }
    Ok(())
}
