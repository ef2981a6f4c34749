//! Container metadata from the container runtimes' own state on the node: the OCI bundle's
//! `config.json` every runtime writes (its annotations carry the CRI pod identity), podman's
//! container store and Docker's `config.v2.json`.
//!
//! Every file read is bounded in size; a missing file means "not this runtime", any other
//! failure (unreadable, too large, not JSON) is returned for counting and never stops the
//! lookup. Paths are the runtimes' defaults under a host root (`WIRELENS_HOST_ROOT`, default
//! `/`) so an agent in a container can read the node's state through a mount.

mod docker;
mod image;
mod oci;
mod podman;

use std::{
    io::Read,
    path::{Path, PathBuf},
};

use wirelens_otel::ContainerInfo;

use super::cgroup::{CgroupIdentity, Runtime};

pub use image::split_reference;

/// Largest OCI `config.json` or Docker `config.v2.json` read.
const MAX_CONFIG_BYTES: u64 = 1 << 20;
/// Largest podman container store (`containers.json`, one entry per container) read.
const MAX_STORE_BYTES: u64 = 16 << 20;

/// A failure to read one runtime file (a missing file is not one).
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    /// The file exists but could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is larger than the limit for its kind.
    #[error("{path} is larger than {limit} bytes")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit.
        limit: u64,
    },
    /// The file is not the JSON expected.
    #[error("cannot parse {path}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
}

/// Where the runtimes keep their state.
#[derive(Clone, Debug)]
pub struct Roots {
    /// Prefix of every path (the node's `/` as the agent sees it).
    pub host: PathBuf,
}

impl Default for Roots {
    fn default() -> Self {
        Self {
            host: PathBuf::from("/"),
        }
    }
}

impl Roots {
    /// The default paths under `WIRELENS_HOST_ROOT` if set, else `/`.
    pub fn from_env() -> Self {
        match std::env::var_os("WIRELENS_HOST_ROOT") {
            Some(root) if !root.is_empty() => Self {
                host: PathBuf::from(root),
            },
            _ => Self::default(),
        }
    }

    fn path(&self, absolute: &str) -> PathBuf {
        self.host.join(absolute.trim_start_matches('/'))
    }

    /// podman's (and CRI-O's) image and container store (`graphroot`).
    fn storage_graph(&self) -> PathBuf {
        self.path("/var/lib/containers/storage")
    }

    /// podman's (and CRI-O's) volatile state (`runroot`).
    fn storage_run(&self) -> PathBuf {
        self.path("/run/containers/storage")
    }

    /// containerd's task bundles, one folder per namespace.
    fn containerd_tasks(&self) -> PathBuf {
        self.path("/run/containerd/io.containerd.runtime.v2.task")
    }

    /// Docker's per-container folders.
    fn docker_containers(&self) -> PathBuf {
        self.path("/var/lib/docker/containers")
    }
}

/// What the runtimes' state says of one container.
#[derive(Debug, Default)]
pub struct Lookup {
    /// Everything known; `id` is always set, the rest may be empty.
    pub info: ContainerInfo,
    /// Whether some runtime's state for this container was found.
    pub found: bool,
    /// Files that exist but could not be used.
    pub errors: Vec<MetadataError>,
}

impl Lookup {
    fn note<T>(&mut self, result: Result<Option<T>, MetadataError>) -> Option<T> {
        match result {
            Ok(v) => v,
            Err(e) => {
                self.errors.push(e);
                None
            }
        }
    }
}

/// Look the container of `cgroup` up in the state of the runtime its cgroup names, or of every
/// runtime in turn when the path does not say (a bare id under `kubepods`).
pub fn lookup(roots: &Roots, cgroup: &CgroupIdentity) -> Lookup {
    let mut lookup = Lookup {
        info: ContainerInfo {
            id: cgroup.id.clone(),
            ..ContainerInfo::default()
        },
        ..Lookup::default()
    };
    let order: &[Runtime] = match cgroup.runtime {
        Some(Runtime::Podman) => &[Runtime::Podman],
        Some(Runtime::CriO) => &[Runtime::CriO],
        Some(Runtime::Containerd) => &[Runtime::Containerd],
        Some(Runtime::Docker) => &[Runtime::Docker],
        None => &[
            Runtime::Containerd,
            Runtime::CriO,
            Runtime::Docker,
            Runtime::Podman,
        ],
    };
    for &runtime in order {
        let found = match runtime {
            Runtime::Podman => podman::read(roots, &mut lookup),
            Runtime::CriO => oci::read_crio(roots, &mut lookup),
            Runtime::Containerd => oci::read_containerd(roots, &mut lookup),
            Runtime::Docker => docker::read(roots, &mut lookup),
        };
        if found {
            lookup.found = true;
            if lookup.info.runtime.is_empty() {
                lookup.info.runtime = runtime.name().to_string();
            }
            break;
        }
    }
    let info = &mut lookup.info;
    if info.runtime.is_empty()
        && let Some(runtime) = cgroup.runtime
    {
        info.runtime = runtime.name().to_string();
    }
    if info.k8s_pod_uid.is_empty()
        && let Some(uid) = &cgroup.pod_uid
    {
        info.k8s_pod_uid = uid.clone();
    }
    // A CRI container's name, as `crictl ps` shows it, is its Kubernetes container name.
    if info.name.is_empty() {
        info.name = info.k8s_container_name.clone();
    }
    lookup
}

/// Reads `path` if it exists, refusing files larger than `limit`.
fn read_bounded(path: &Path, limit: u64) -> Result<Option<Vec<u8>>, MetadataError> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(MetadataError::Read {
                path: path.to_owned(),
                source,
            });
        }
    };
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| MetadataError::Read {
            path: path.to_owned(),
            source,
        })?;
    if bytes.len() as u64 > limit {
        return Err(MetadataError::TooLarge {
            path: path.to_owned(),
            limit,
        });
    }
    Ok(Some(bytes))
}

/// Reads and parses the JSON file `path` if it exists.
fn read_json<T: serde::de::DeserializeOwned>(
    path: &Path,
    limit: u64,
) -> Result<Option<T>, MetadataError> {
    let Some(bytes) = read_bounded(path, limit)? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| MetadataError::Json {
            path: path.to_owned(),
            source,
        })
}

/// Sets `field` to `value` if it is still unknown and `value` is not empty.
fn fill(field: &mut String, value: Option<&str>) {
    if field.is_empty()
        && let Some(v) = value.filter(|v| !v.is_empty())
    {
        *field = v.to_string();
    }
}

/// Sets the image name and tag from a reference, if still unknown.
fn fill_image(info: &mut ContainerInfo, reference: Option<&str>) {
    let Some(reference) = reference.filter(|r| !r.is_empty()) else {
        return;
    };
    if !info.image_name.is_empty() {
        return;
    }
    let (name, tag) = split_reference(reference);
    info.image_name = name.to_string();
    info.image_tag = tag.unwrap_or_default().to_string();
}

#[cfg(test)]
mod tests;
