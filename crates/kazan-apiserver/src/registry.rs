//! The resources the server knows: the common built-in kinds, and kinds registered at run time (as a
//! CustomResourceDefinition adds them). Discovery, OpenAPI, Table output and routing all read it.

use std::sync::{Arc, RwLock};

/// The verbs every resource here supports.
pub const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// One column of `kubectl get` output beyond NAME (and AGE, which every kind has).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrinterColumn {
    /// Column header, e.g. `Status`.
    pub name: String,
    /// OpenAPI type of the cells: `string`, `integer`, `date`...
    pub column_type: String,
    /// A simple JSONPath into the object, e.g. `.status.phase`.
    pub json_path: String,
    /// 0 shows in default output; higher shows with `-o wide`.
    pub priority: i32,
    /// What the column holds.
    pub description: String,
}

impl PrinterColumn {
    /// A string column at priority 0.
    pub fn new(name: &str, json_path: &str) -> Self {
        PrinterColumn {
            name: name.to_string(),
            column_type: "string".to_string(),
            json_path: json_path.to_string(),
            priority: 0,
            description: String::new(),
        }
    }

    /// The same column, shown only with `-o wide`.
    pub fn wide(mut self) -> Self {
        self.priority = 1;
        self
    }
}

/// Everything the server knows about one resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceDef {
    /// API group; empty for the core group.
    pub group: String,
    /// Version within the group.
    pub version: String,
    /// Kind of one object, e.g. `Pod`.
    pub kind: String,
    /// Plural name used in paths.
    pub plural: String,
    /// Singular name (`kubectl get pod`).
    pub singular: String,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// Short names (`po`, `ns`...).
    pub short_names: Vec<String>,
    /// Categories (`all`).
    pub categories: Vec<String>,
    /// Supported verbs.
    pub verbs: Vec<String>,
    /// Extra `kubectl get` columns.
    pub printer_columns: Vec<PrinterColumn>,
    /// Subresources served besides the object itself: `status` (only `/status` writes `status`;
    /// writes to the object keep it) and `scale`.
    pub subresources: Vec<String>,
    /// The OpenAPI v3 schema of the objects (a CRD version's `openAPIV3Schema`), served in
    /// `/openapi/v3`; None for the built-in kinds, whose schemas come from the generated tables.
    pub schema: Option<serde_json::Value>,
}

impl ResourceDef {
    /// A resource with every verb, no short names, no categories and no extra columns.
    pub fn new(group: &str, version: &str, kind: &str, plural: &str, namespaced: bool) -> Self {
        ResourceDef {
            group: group.to_string(),
            version: version.to_string(),
            kind: kind.to_string(),
            plural: plural.to_string(),
            singular: kind.to_ascii_lowercase(),
            namespaced,
            short_names: Vec::new(),
            categories: Vec::new(),
            verbs: ALL_VERBS.iter().map(|v| v.to_string()).collect(),
            printer_columns: Vec::new(),
            subresources: Vec::new(),
            schema: None,
        }
    }

    /// Adds subresources (`status`, `scale`).
    pub fn subresources(mut self, names: &[&str]) -> Self {
        self.subresources = names.iter().map(|s| s.to_string()).collect();
        self
    }

    /// Whether the kind has a `status` subresource: then `status` is reset on create, kept on
    /// writes to the object, and written only through `/status`.
    pub fn has_status(&self) -> bool {
        self.subresources.iter().any(|s| s == "status")
    }

    /// Adds short names.
    pub fn short_names(mut self, names: &[&str]) -> Self {
        self.short_names = names.iter().map(|s| s.to_string()).collect();
        self
    }

    /// Adds categories.
    pub fn categories(mut self, categories: &[&str]) -> Self {
        self.categories = categories.iter().map(|s| s.to_string()).collect();
        self
    }

    /// Adds a printer column.
    pub fn column(mut self, column: PrinterColumn) -> Self {
        self.printer_columns.push(column);
        self
    }

    /// `group/version`, or `version` for the core group: what objects carry as `apiVersion`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The kind of a list of these objects.
    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }
}

/// A column of another type than `string` (`integer`, `boolean`, `date`...).
fn typed_column(name: &str, column_type: &str, json_path: &str) -> PrinterColumn {
    PrinterColumn {
        column_type: column_type.to_string(),
        ..PrinterColumn::new(name, json_path)
    }
}

/// The same column with a description (shown by `kubectl explain`-like tools and kept in Tables).
fn described(mut column: PrinterColumn, description: &str) -> PrinterColumn {
    column.description = description.to_string();
    column
}

/// The built-in kinds the server starts with. Their columns follow what `kubectl get` shows
/// against a real cluster; `table` computes the cells that are not a plain JSONPath (a pod's
/// READY and STATUS, a deployment's READY...), the JSONPath here being the closest field.
pub fn builtin() -> Vec<ResourceDef> {
    builtin_kinds()
        .into_iter()
        .map(|def| {
            let subresources: &[&str] = match (def.group.as_str(), def.plural.as_str()) {
                ("apps", "deployments" | "replicasets" | "statefulsets") => &["status", "scale"],
                ("", "pods") => &["status", "binding", "eviction"],
                ("authorization.k8s.io", _) => &[],
                ("", "configmaps" | "secrets" | "events" | "serviceaccounts" | "endpoints")
                | ("coordination.k8s.io", _)
                | ("events.k8s.io", _)
                | ("rbac.authorization.k8s.io", _)
                | ("networking.k8s.io", "networkpolicies" | "ingressclasses") => &[],
                _ => &["status"],
            };
            def.subresources(subresources)
        })
        .collect()
}

/// The built-in kinds, before their subresources are added.
fn builtin_kinds() -> Vec<ResourceDef> {
    let all = &["all"][..];
    vec![
        ResourceDef::new("", "v1", "Namespace", "namespaces", false)
            .short_names(&["ns"])
            .column(described(
                PrinterColumn::new("Status", ".status.phase"),
                "The status of the namespace",
            )),
        ResourceDef::new("", "v1", "Pod", "pods", true)
            .short_names(&["po"])
            .categories(all)
            .column(described(
                PrinterColumn::new("Ready", ".status.containerStatuses[*].ready"),
                "The aggregate readiness state of this pod for accepting traffic.",
            ))
            .column(described(
                PrinterColumn::new("Status", ".status.phase"),
                "The aggregate status of the containers in this pod.",
            ))
            .column(described(
                PrinterColumn::new("Restarts", ".status.containerStatuses[*].restartCount"),
                "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
            ))
            .column(described(PrinterColumn::new("IP", ".status.podIP").wide(), "The IP address of the pod."))
            .column(described(
                PrinterColumn::new("Node", ".spec.nodeName").wide(),
                "The name of the node the pod is assigned to.",
            ))
            .column(described(
                PrinterColumn::new("Nominated Node", ".status.nominatedNodeName").wide(),
                "The node the pod is nominated to run on, when preempting others.",
            ))
            .column(described(
                PrinterColumn::new("Readiness Gates", ".spec.readinessGates[*].conditionType").wide(),
                "The readiness gates of the pod.",
            )),
        ResourceDef::new("", "v1", "Service", "services", true)
            .short_names(&["svc"])
            .categories(all)
            .column(PrinterColumn::new("Type", ".spec.type"))
            .column(PrinterColumn::new("Cluster-IP", ".spec.clusterIP"))
            .column(PrinterColumn::new("External-IP", ".spec.externalIPs[*]"))
            .column(PrinterColumn::new("Port(s)", ".spec.ports[*].port"))
            .column(PrinterColumn::new("Selector", ".spec.selector").wide()),
        ResourceDef::new("", "v1", "ConfigMap", "configmaps", true)
            .short_names(&["cm"])
            .column(typed_column("Data", "integer", ".data")),
        ResourceDef::new("", "v1", "Secret", "secrets", true)
            .column(PrinterColumn::new("Type", ".type"))
            .column(typed_column("Data", "integer", ".data")),
        ResourceDef::new("", "v1", "Event", "events", true)
            .short_names(&["ev"])
            .column(PrinterColumn::new("Type", ".type"))
            .column(PrinterColumn::new("Reason", ".reason"))
            .column(PrinterColumn::new("Object", ".involvedObject.name"))
            .column(PrinterColumn::new("Message", ".message")),
        ResourceDef::new("", "v1", "Node", "nodes", false)
            .short_names(&["no"])
            .column(PrinterColumn::new("Status", ".status.conditions[*].type"))
            .column(PrinterColumn::new("Roles", ".metadata.labels"))
            .column(PrinterColumn::new("Version", ".status.nodeInfo.kubeletVersion")),
        ResourceDef::new("", "v1", "ServiceAccount", "serviceaccounts", true)
            .short_names(&["sa"])
            .column(typed_column("Secrets", "integer", ".secrets")),
        ResourceDef::new("", "v1", "Endpoints", "endpoints", true)
            .short_names(&["ep"])
            .column(PrinterColumn::new("Endpoints", ".subsets[*].addresses[*].ip")),
        ResourceDef::new("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", true)
            .short_names(&["pvc"])
            .column(PrinterColumn::new("Status", ".status.phase"))
            .column(PrinterColumn::new("Volume", ".spec.volumeName"))
            .column(PrinterColumn::new("Capacity", ".status.capacity.storage"))
            .column(PrinterColumn::new("StorageClass", ".spec.storageClassName")),
        ResourceDef::new("", "v1", "PersistentVolume", "persistentvolumes", false)
            .short_names(&["pv"])
            .column(PrinterColumn::new("Capacity", ".spec.capacity.storage"))
            .column(PrinterColumn::new("Reclaim Policy", ".spec.persistentVolumeReclaimPolicy"))
            .column(PrinterColumn::new("Status", ".status.phase"))
            .column(PrinterColumn::new("StorageClass", ".spec.storageClassName")),
        ResourceDef::new("apps", "v1", "Deployment", "deployments", true)
            .short_names(&["deploy"])
            .categories(all)
            .column(described(
                PrinterColumn::new("Ready", ".status.readyReplicas"),
                "Number of the pod with ready state",
            ))
            .column(described(
                typed_column("Up-to-date", "integer", ".status.updatedReplicas"),
                "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
            ))
            .column(described(
                typed_column("Available", "integer", ".status.availableReplicas"),
                "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
            ))
            .column(PrinterColumn::new("Containers", ".spec.template.spec.containers[*].name").wide())
            .column(PrinterColumn::new("Images", ".spec.template.spec.containers[*].image").wide())
            .column(PrinterColumn::new("Selector", ".spec.selector").wide()),
        ResourceDef::new("apps", "v1", "ReplicaSet", "replicasets", true)
            .short_names(&["rs"])
            .categories(all)
            .column(typed_column("Desired", "integer", ".spec.replicas"))
            .column(typed_column("Current", "integer", ".status.replicas"))
            .column(typed_column("Ready", "integer", ".status.readyReplicas"))
            .column(PrinterColumn::new("Containers", ".spec.template.spec.containers[*].name").wide())
            .column(PrinterColumn::new("Images", ".spec.template.spec.containers[*].image").wide())
            .column(PrinterColumn::new("Selector", ".spec.selector").wide()),
        ResourceDef::new("apps", "v1", "StatefulSet", "statefulsets", true)
            .short_names(&["sts"])
            .categories(all)
            .column(PrinterColumn::new("Ready", ".status.readyReplicas"))
            .column(PrinterColumn::new("Containers", ".spec.template.spec.containers[*].name").wide())
            .column(PrinterColumn::new("Images", ".spec.template.spec.containers[*].image").wide()),
        ResourceDef::new("apps", "v1", "DaemonSet", "daemonsets", true)
            .short_names(&["ds"])
            .categories(all)
            .column(typed_column("Desired", "integer", ".status.desiredNumberScheduled"))
            .column(typed_column("Current", "integer", ".status.currentNumberScheduled"))
            .column(typed_column("Ready", "integer", ".status.numberReady"))
            .column(typed_column("Up-to-date", "integer", ".status.updatedNumberScheduled"))
            .column(typed_column("Available", "integer", ".status.numberAvailable"))
            .column(PrinterColumn::new("Node Selector", ".spec.template.spec.nodeSelector")),
        ResourceDef::new("batch", "v1", "Job", "jobs", true)
            .categories(all)
            .column(PrinterColumn::new("Status", ".status.conditions[*].type"))
            .column(PrinterColumn::new("Completions", ".status.succeeded")),
        ResourceDef::new("batch", "v1", "CronJob", "cronjobs", true)
            .short_names(&["cj"])
            .categories(all)
            .column(PrinterColumn::new("Schedule", ".spec.schedule"))
            .column(PrinterColumn::new("Timezone", ".spec.timeZone"))
            .column(typed_column("Suspend", "boolean", ".spec.suspend"))
            .column(typed_column("Active", "integer", ".status.active"))
            .column(typed_column("Last Schedule", "date", ".status.lastScheduleTime")),
        ResourceDef::new("coordination.k8s.io", "v1", "Lease", "leases", true)
            .column(PrinterColumn::new("Holder", ".spec.holderIdentity")),
        ResourceDef::new(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
            false,
        )
        .short_names(&["crd", "crds"])
        .column(PrinterColumn::new("Created At", ".metadata.creationTimestamp")),
        ResourceDef::new("events.k8s.io", "v1", "Event", "events", true).short_names(&["ev"]),
        ResourceDef::new("rbac.authorization.k8s.io", "v1", "Role", "roles", true),
        ResourceDef::new("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", true),
        ResourceDef::new("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", false),
        ResourceDef::new(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRoleBinding",
            "clusterrolebindings",
            false,
        ),
        ResourceDef::new("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", true)
            .short_names(&["pdb"]),
        ResourceDef::new("networking.k8s.io", "v1", "Ingress", "ingresses", true).short_names(&["ing"]),
        ResourceDef::new("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", true)
            .short_names(&["netpol"]),
        ResourceDef::new("networking.k8s.io", "v1", "IngressClass", "ingressclasses", false),
        ResourceDef {
            verbs: vec!["create".into()],
            ..ResourceDef::new(
                "authorization.k8s.io",
                "v1",
                "SelfSubjectAccessReview",
                "selfsubjectaccessreviews",
                false,
            )
        },
    ]
}

/// The resources a running server knows; shared by every handler, extended at run time.
#[derive(Clone, Debug, Default)]
pub struct Registry {
    defs: Arc<RwLock<Vec<Arc<ResourceDef>>>>,
}

impl Registry {
    /// A registry holding the built-in kinds.
    pub fn with_builtins() -> Self {
        let registry = Registry::default();
        for def in builtin() {
            registry.register(def);
        }
        registry
    }

    /// Adds (or replaces, by group, version and plural) a resource.
    pub fn register(&self, def: ResourceDef) -> Arc<ResourceDef> {
        let def = Arc::new(def);
        let mut defs = self.defs.write().unwrap_or_else(|e| e.into_inner());
        defs.retain(|d| !(d.group == def.group && d.version == def.version && d.plural == def.plural));
        defs.push(def.clone());
        def
    }

    /// Removes a resource; `true` if it was known.
    pub fn unregister(&self, group: &str, version: &str, plural: &str) -> bool {
        let mut defs = self.defs.write().unwrap_or_else(|e| e.into_inner());
        let before = defs.len();
        defs.retain(|d| !(d.group == group && d.version == version && d.plural == plural));
        defs.len() != before
    }

    /// Finds a resource by group, version and plural.
    pub fn get(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceDef>> {
        let defs = self.defs.read().unwrap_or_else(|e| e.into_inner());
        defs.iter()
            .find(|d| d.group == group && d.version == version && d.plural == plural)
            .cloned()
    }

    /// Finds a resource by `apiVersion` and kind (for objects loaded from files).
    pub fn by_kind(&self, api_version: &str, kind: &str) -> Option<Arc<ResourceDef>> {
        let defs = self.defs.read().unwrap_or_else(|e| e.into_inner());
        defs.iter()
            .find(|d| d.api_version() == api_version && d.kind == kind)
            .cloned()
    }

    /// Every resource, in registration order.
    pub fn all(&self) -> Vec<Arc<ResourceDef>> {
        self.defs.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_cover_the_common_kinds() {
        let registry = Registry::with_builtins();
        for (group, plural) in [
            ("", "namespaces"),
            ("", "pods"),
            ("", "services"),
            ("", "configmaps"),
            ("", "secrets"),
            ("", "events"),
            ("", "nodes"),
            ("", "serviceaccounts"),
            ("apps", "deployments"),
            ("apps", "replicasets"),
            ("apps", "statefulsets"),
            ("apps", "daemonsets"),
            ("batch", "jobs"),
            ("batch", "cronjobs"),
            ("coordination.k8s.io", "leases"),
            ("apiextensions.k8s.io", "customresourcedefinitions"),
        ] {
            let version = registry
                .all()
                .iter()
                .find(|d| d.group == group && d.plural == plural)
                .map(|d| d.version.clone());
            assert!(version.is_some(), "{group}/{plural} missing");
        }
        assert_eq!(
            registry
                .by_kind("apps/v1", "Deployment")
                .map(|d| d.plural.clone())
                .as_deref(),
            Some("deployments")
        );
    }

    #[test]
    fn registering_again_replaces() {
        let registry = Registry::default();
        registry.register(ResourceDef::new("example.com", "v1", "Widget", "widgets", true));
        registry.register(ResourceDef::new("example.com", "v1", "Widget", "widgets", false));
        assert_eq!(registry.all().len(), 1);
        assert_eq!(
            registry.get("example.com", "v1", "widgets").map(|d| d.namespaced),
            Some(false)
        );
        assert!(registry.unregister("example.com", "v1", "widgets"));
        assert!(registry.get("example.com", "v1", "widgets").is_none());
    }
}
