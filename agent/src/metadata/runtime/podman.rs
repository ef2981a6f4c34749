//! podman's state: the container store (`containers.json`: names and the image the container
//! was created from, as `podman ps` shows them), the image store for an image's name when the
//! container's own record lacks it, and the OCI bundle for annotations (CRI identity set with
//! `--annotation`).

use serde::Deserialize;

use super::{Lookup, MAX_STORE_BYTES, Roots, fill, fill_image, oci, read_json};

/// One record of `overlay-containers/containers.json`.
#[derive(Debug, Deserialize)]
struct StoredContainer {
    id: String,
    #[serde(default)]
    names: Vec<String>,
    #[serde(default)]
    image: String,
    /// JSON text: `{"image-name": …, "name": …}`.
    #[serde(default)]
    metadata: String,
}

/// The part of a container record's `metadata` read here.
#[derive(Debug, Default, Deserialize)]
struct StoredMetadata {
    #[serde(default, rename = "image-name")]
    image_name: String,
    #[serde(default)]
    name: String,
}

/// One record of `overlay-images/images.json`.
#[derive(Debug, Deserialize)]
struct StoredImage {
    id: String,
    #[serde(default)]
    names: Vec<String>,
}

/// Fills `lookup` from podman's stores; `true` if podman knows the container.
pub(super) fn read(roots: &Roots, lookup: &mut Lookup) -> bool {
    let id = lookup.info.id.clone();
    let graph = roots.storage_graph();
    let run = roots.storage_run();
    let mut found = false;
    // The bundle: in the graph root (podman 4), or the run root.
    for store in [&graph, &run] {
        let path = store
            .join("overlay-containers")
            .join(&id)
            .join("userdata/config.json");
        if let Some(annotations) = oci::read_annotations(&path, lookup) {
            oci::apply_annotations(&mut lookup.info, &annotations);
            found = true;
            break;
        }
    }
    // The store's record: persistent containers, then the transient store.
    let stores = [
        graph.join("overlay-containers/containers.json"),
        run.join("overlay-containers/volatile-containers.json"),
        run.join("overlay-containers/containers.json"),
    ];
    let mut image_id = String::new();
    for path in stores {
        let records: Option<Vec<StoredContainer>> = lookup.note(read_json(&path, MAX_STORE_BYTES));
        let Some(record) = records.and_then(|r| r.into_iter().find(|c| c.id == id)) else {
            continue;
        };
        let metadata: StoredMetadata = serde_json::from_str(&record.metadata).unwrap_or_default();
        fill(
            &mut lookup.info.name,
            record.names.first().map(String::as_str),
        );
        fill(&mut lookup.info.name, Some(&metadata.name));
        fill_image(&mut lookup.info, Some(&metadata.image_name));
        image_id = record.image;
        found = true;
        break;
    }
    if lookup.info.image_name.is_empty() && !image_id.is_empty() {
        let path = graph.join("overlay-images/images.json");
        let images: Option<Vec<StoredImage>> = lookup.note(read_json(&path, MAX_STORE_BYTES));
        let name = images
            .and_then(|all| all.into_iter().find(|i| i.id == image_id))
            .and_then(|i| i.names.into_iter().next());
        fill_image(&mut lookup.info, name.as_deref());
    }
    if found {
        lookup.info.runtime = super::Runtime::Podman.name().to_string();
    }
    found
}
