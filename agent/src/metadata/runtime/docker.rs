//! Docker's per-container `config.v2.json`: the name (`docker ps`), the image as given to
//! `docker run`, and the labels (cri-dockerd puts the kubelet's pod identity there).

use std::collections::HashMap;

use serde::Deserialize;

use super::{Lookup, MAX_CONFIG_BYTES, Roots, fill, fill_image, oci, read_json};

/// The part of `config.v2.json` read here.
#[derive(Debug, Deserialize)]
struct Container {
    #[serde(default, rename = "Name")]
    name: String,
    #[serde(default, rename = "Config")]
    config: Config,
}

#[derive(Debug, Default, Deserialize)]
struct Config {
    #[serde(default, rename = "Image")]
    image: String,
    #[serde(default, rename = "Labels")]
    labels: Option<HashMap<String, String>>,
}

/// Fills `lookup` from Docker's state; `true` if Docker knows the container.
pub(super) fn read(roots: &Roots, lookup: &mut Lookup) -> bool {
    let path = roots
        .docker_containers()
        .join(&lookup.info.id)
        .join("config.v2.json");
    let Some(container): Option<Container> = lookup.note(read_json(&path, MAX_CONFIG_BYTES)) else {
        return false;
    };
    fill(
        &mut lookup.info.name,
        Some(container.name.trim_start_matches('/')),
    );
    // `docker run <image id>` leaves no name to report.
    if !container.config.image.starts_with("sha256:") {
        fill_image(&mut lookup.info, Some(&container.config.image));
    }
    if let Some(labels) = &container.config.labels {
        oci::apply_kubernetes_labels(&mut lookup.info, labels);
    }
    lookup.info.runtime = super::Runtime::Docker.name().to_string();
    true
}
