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
        }
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

/// The built-in kinds the server starts with.
pub fn builtin() -> Vec<ResourceDef> {
    let all = &["all"][..];
    vec![
        ResourceDef::new("", "v1", "Namespace", "namespaces", false)
            .short_names(&["ns"])
            .column(PrinterColumn::new("Status", ".status.phase")),
        ResourceDef::new("", "v1", "Pod", "pods", true)
            .short_names(&["po"])
            .categories(all)
            .column(PrinterColumn::new("Status", ".status.phase"))
            .column(PrinterColumn::new("IP", ".status.podIP").wide())
            .column(PrinterColumn::new("Node", ".spec.nodeName").wide()),
        ResourceDef::new("", "v1", "Service", "services", true)
            .short_names(&["svc"])
            .categories(all)
            .column(PrinterColumn::new("Type", ".spec.type"))
            .column(PrinterColumn::new("Cluster-IP", ".spec.clusterIP")),
        ResourceDef::new("", "v1", "ConfigMap", "configmaps", true).short_names(&["cm"]),
        ResourceDef::new("", "v1", "Secret", "secrets", true).column(PrinterColumn::new("Type", ".type")),
        ResourceDef::new("", "v1", "Event", "events", true)
            .short_names(&["ev"])
            .column(PrinterColumn::new("Reason", ".reason"))
            .column(PrinterColumn::new("Message", ".message")),
        ResourceDef::new("", "v1", "Node", "nodes", false).short_names(&["no"]),
        ResourceDef::new("", "v1", "ServiceAccount", "serviceaccounts", true).short_names(&["sa"]),
        ResourceDef::new("", "v1", "Endpoints", "endpoints", true).short_names(&["ep"]),
        ResourceDef::new("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", true)
            .short_names(&["pvc"])
            .column(PrinterColumn::new("Status", ".status.phase")),
        ResourceDef::new("", "v1", "PersistentVolume", "persistentvolumes", false)
            .short_names(&["pv"])
            .column(PrinterColumn::new("Status", ".status.phase")),
        ResourceDef::new("apps", "v1", "Deployment", "deployments", true)
            .short_names(&["deploy"])
            .categories(all),
        ResourceDef::new("apps", "v1", "ReplicaSet", "replicasets", true)
            .short_names(&["rs"])
            .categories(all),
        ResourceDef::new("apps", "v1", "StatefulSet", "statefulsets", true)
            .short_names(&["sts"])
            .categories(all),
        ResourceDef::new("apps", "v1", "DaemonSet", "daemonsets", true)
            .short_names(&["ds"])
            .categories(all),
        ResourceDef::new("batch", "v1", "Job", "jobs", true).categories(all),
        ResourceDef::new("batch", "v1", "CronJob", "cronjobs", true)
            .short_names(&["cj"])
            .categories(all)
            .column(PrinterColumn::new("Schedule", ".spec.schedule")),
        ResourceDef::new("coordination.k8s.io", "v1", "Lease", "leases", true)
            .column(PrinterColumn::new("Holder", ".spec.holderIdentity")),
        ResourceDef::new(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
            false,
        )
        .short_names(&["crd", "crds"]),
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
