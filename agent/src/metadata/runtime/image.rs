//! An image reference (`registry:5000/repo/name:tag@sha256:…`) split into the name and tag that
//! `container.image.name` and `container.image.tags` carry.

/// The name (without tag or digest) and the tag, if the reference has one. A `:` before the
/// last `/` is a registry port, not a tag.
pub fn split_reference(reference: &str) -> (&str, Option<&str>) {
    let without_digest = reference.split_once('@').map_or(reference, |(r, _)| r);
    let last_slash = without_digest.rfind('/').map_or(0, |i| i + 1);
    match without_digest[last_slash..].rfind(':') {
        Some(colon) => {
            let at = last_slash + colon;
            let tag = &without_digest[at + 1..];
            (&without_digest[..at], (!tag.is_empty()).then_some(tag))
        }
        None => (without_digest, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        for (reference, name, tag) in [
            ("localhost/wltest:1.0", "localhost/wltest", Some("1.0")),
            ("nginx", "nginx", None),
            ("nginx:1.25-alpine", "nginx", Some("1.25-alpine")),
            (
                "docker.io/library/redis:7",
                "docker.io/library/redis",
                Some("7"),
            ),
            (
                "registry.local:5000/team/app",
                "registry.local:5000/team/app",
                None,
            ),
            (
                "registry.local:5000/team/app:v2",
                "registry.local:5000/team/app",
                Some("v2"),
            ),
            ("app@sha256:0123abcd", "app", None),
            ("app:3@sha256:0123abcd", "app", Some("3")),
            ("app:", "app", None),
            ("", "", None),
        ] {
            assert_eq!(split_reference(reference), (name, tag), "{reference}");
        }
    }
}
