//! Checkpoints: the store on disk (objects and the resourceVersion they reflect), so that a restart
//! watches from where it left off instead of listing everything again.
//!
//! The format is JSON lines, versioned and self-checking:
//!
//! ```text
//! {"kazanInformerCheckpoint":1,"server":"https://…","resource":"/api/v1/namespaces/x/configmaps","labelSelector":null,"fieldSelector":null,"resourceVersion":"4711","objects":2}
//! {…object…}
//! {…object…}
//! {"end":2,"fnv1a64":"9f…"}
//! ```
//!
//! The header names what was watched (server, path, selectors): a checkpoint of another resource
//! or server is refused. The trailer counts the objects and carries a checksum of their lines: a
//! truncated or altered file is refused. A file is written whole to a temporary file beside the
//! target, synced, then renamed over it, so a crash leaves the old checkpoint or the new one.

use std::{
    io::Write,
    path::{Path, PathBuf},
    sync::Arc,
};

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::Object;

/// The format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// Why a checkpoint could not be used (or written). The informer logs it and lists afresh.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// The file could not be read or written.
    #[error("checkpoint {path}: {source}")]
    Io {
        /// The checkpoint file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a kazan informer checkpoint (no header line of that format).
    #[error("{path} is not a kazan informer checkpoint")]
    NotACheckpoint {
        /// The checkpoint file.
        path: PathBuf,
    },
    /// Written by a build with another format version.
    #[error("checkpoint {path} has format version {found}; this build reads version {FORMAT_VERSION}")]
    UnsupportedVersion {
        /// The checkpoint file.
        path: PathBuf,
        /// The version the file carries.
        found: u64,
    },
    /// The checkpoint was written for another server or another resource.
    #[error("checkpoint {path} is for {what} {found:?}, not {expected:?}")]
    Foreign {
        /// The checkpoint file.
        path: PathBuf,
        /// What differs: `server`, `resource`, `labelSelector` or `fieldSelector`.
        what: &'static str,
        /// What this informer watches.
        expected: Option<String>,
        /// What the checkpoint was written for.
        found: Option<String>,
    },
    /// The file ends early: fewer objects than its header announces, or no trailer.
    #[error("checkpoint {path} is truncated: {detail}")]
    Truncated {
        /// The checkpoint file.
        path: PathBuf,
        /// What is missing.
        detail: String,
    },
    /// A line does not decode, or the checksum does not match: the file was altered.
    #[error("checkpoint {path} is corrupt at line {line}: {detail}")]
    Corrupt {
        /// The checkpoint file.
        path: PathBuf,
        /// The 1-based line.
        line: usize,
        /// What is wrong.
        detail: String,
    },
    /// An object could not be encoded.
    #[error("checkpoint {path}: an object could not be encoded: {source}")]
    Encode {
        /// The checkpoint file.
        path: PathBuf,
        /// The encoder's error.
        #[source]
        source: serde_json::Error,
    },
}

/// What a checkpoint was written for; a checkpoint is used only by an informer of the same.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Identity {
    pub(crate) server: String,
    pub(crate) resource: String,
    pub(crate) label_selector: Option<String>,
    pub(crate) field_selector: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Header {
    kazan_informer_checkpoint: u64,
    #[serde(flatten)]
    identity: Identity,
    resource_version: String,
    objects: usize,
}

#[derive(Serialize, Deserialize)]
struct Trailer {
    end: usize,
    fnv1a64: String,
}

/// A checkpoint read back.
pub(crate) struct Loaded<K> {
    pub(crate) resource_version: String,
    pub(crate) objects: Vec<K>,
}

/// FNV-1a, 64 bits: enough to notice an altered file, and no dependency.
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn hex(&self) -> String {
        format!("{:016x}", self.0)
    }
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes a checkpoint atomically: a temporary file beside `path`, synced, renamed over `path`,
/// then the directory synced (where the platform allows).
pub(crate) fn save<K: Serialize>(
    path: &Path,
    identity: &Identity,
    resource_version: &str,
    objects: &[Arc<K>],
) -> Result<(), CheckpointError> {
    let encode = |source| CheckpointError::Encode {
        path: path.to_path_buf(),
        source,
    };
    let header = Header {
        kazan_informer_checkpoint: u64::from(FORMAT_VERSION),
        identity: identity.clone(),
        resource_version: resource_version.to_string(),
        objects: objects.len(),
    };
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "checkpoint".into());
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let temp = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));
    let result = (|| {
        let file = std::fs::File::create(&temp).map_err(io_error(path))?;
        let mut out = std::io::BufWriter::new(file);
        let mut line = serde_json::to_vec(&header).map_err(encode)?;
        line.push(b'\n');
        out.write_all(&line).map_err(io_error(path))?;
        let mut sum = Fnv::new();
        for object in objects {
            let mut line = serde_json::to_vec(object.as_ref()).map_err(encode)?;
            line.push(b'\n');
            sum.write(&line);
            out.write_all(&line).map_err(io_error(path))?;
        }
        let trailer = Trailer {
            end: objects.len(),
            fnv1a64: sum.hex(),
        };
        let mut line = serde_json::to_vec(&trailer).map_err(encode)?;
        line.push(b'\n');
        out.write_all(&line).map_err(io_error(path))?;
        let file = out.into_inner().map_err(|e| io_error(path)(e.into_error()))?;
        file.sync_all().map_err(io_error(path))?;
        std::fs::rename(&temp, path).map_err(io_error(path))
    })();
    if result.is_err() {
        // Nothing to keep of a half-written temporary file; the old checkpoint stays.
        let _ = std::fs::remove_file(&temp);
        return result;
    }
    // The rename is durable once the directory is; not every platform can open one.
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Reads a checkpoint written for `identity`. `Ok(None)` when there is no file.
pub(crate) fn load<K: Object + DeserializeOwned>(
    path: &Path,
    identity: &Identity,
) -> Result<Option<Loaded<K>>, CheckpointError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error(path)(e)),
    };
    parse(path, identity, &bytes).map(Some)
}

fn parse<K: Object + DeserializeOwned>(
    path: &Path,
    identity: &Identity,
    bytes: &[u8],
) -> Result<Loaded<K>, CheckpointError> {
    let truncated = |detail: String| CheckpointError::Truncated {
        path: path.to_path_buf(),
        detail,
    };
    let corrupt = |line: usize, detail: String| CheckpointError::Corrupt {
        path: path.to_path_buf(),
        line,
        detail,
    };
    let mut lines = bytes.split_inclusive(|b| *b == b'\n');
    let first = lines.next().unwrap_or_default();
    let header_value: serde_json::Value =
        serde_json::from_slice(first).map_err(|_| CheckpointError::NotACheckpoint {
            path: path.to_path_buf(),
        })?;
    let version = header_value
        .get("kazanInformerCheckpoint")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| CheckpointError::NotACheckpoint {
            path: path.to_path_buf(),
        })?;
    if version != u64::from(FORMAT_VERSION) {
        return Err(CheckpointError::UnsupportedVersion {
            path: path.to_path_buf(),
            found: version,
        });
    }
    if !first.ends_with(b"\n") {
        return Err(truncated("the header line is cut".into()));
    }
    let header: Header =
        serde_json::from_value(header_value).map_err(|e| corrupt(1, format!("header: {e}")))?;
    let found = &header.identity;
    let fields: [(&'static str, &Option<String>, &Option<String>); 2] = [
        ("labelSelector", &identity.label_selector, &found.label_selector),
        ("fieldSelector", &identity.field_selector, &found.field_selector),
    ];
    for (what, expected, got) in [
        ("server", &identity.server, &found.server),
        ("resource", &identity.resource, &found.resource),
    ] {
        if expected != got {
            return Err(CheckpointError::Foreign {
                path: path.to_path_buf(),
                what,
                expected: Some(expected.clone()),
                found: Some(got.clone()),
            });
        }
    }
    for (what, expected, got) in fields {
        if expected != got {
            return Err(CheckpointError::Foreign {
                path: path.to_path_buf(),
                what,
                expected: expected.clone(),
                found: got.clone(),
            });
        }
    }
    let mut sum = Fnv::new();
    let mut objects = Vec::with_capacity(header.objects.min(1 << 20));
    for i in 0..header.objects {
        let line_no = i + 2;
        let line = lines.next().ok_or_else(|| {
            truncated(format!(
                "{i} of the {} objects the header announces",
                header.objects
            ))
        })?;
        if !line.ends_with(b"\n") {
            return Err(truncated(format!("line {line_no} is cut")));
        }
        sum.write(line);
        let object: K = serde_json::from_slice(line).map_err(|e| corrupt(line_no, e.to_string()))?;
        objects.push(object);
    }
    let trailer_no = header.objects + 2;
    let line = lines.next().ok_or_else(|| truncated("no trailer line".into()))?;
    if !line.ends_with(b"\n") {
        return Err(truncated("the trailer line is cut".into()));
    }
    let trailer: Trailer =
        serde_json::from_slice(line).map_err(|e| corrupt(trailer_no, format!("trailer: {e}")))?;
    if trailer.end != header.objects {
        return Err(corrupt(
            trailer_no,
            format!(
                "the trailer counts {} objects, the header {}",
                trailer.end, header.objects
            ),
        ));
    }
    if trailer.fnv1a64 != sum.hex() {
        return Err(corrupt(
            trailer_no,
            "the objects' checksum does not match: the file was altered".into(),
        ));
    }
    if lines.next().is_some() {
        return Err(corrupt(trailer_no + 1, "data after the trailer".into()));
    }
    Ok(Loaded {
        resource_version: header.resource_version,
        objects,
    })
}

/// What became of the checkpoint an informer was started with.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum CheckpointStatus {
    /// The informer has no checkpoint file.
    None,
    /// The informer has not looked at its checkpoint yet.
    Pending,
    /// There was no file: the informer listed.
    Missing,
    /// The checkpoint was loaded: the informer watched from its version, with no list.
    Loaded {
        /// The version the checkpoint reflected.
        resource_version: String,
        /// How many objects it held.
        objects: usize,
    },
    /// The checkpoint was refused (logged): the informer listed afresh.
    Rejected(Arc<CheckpointError>),
}
