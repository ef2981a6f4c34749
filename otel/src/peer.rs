//! Who is at the other end of a connection, when the agent knows it (a pod or a Service of
//! the cluster): span attributes, never the Resource. The agent finds it; this crate only
//! names it, and knows nothing of Kubernetes.

use opentelemetry_proto::tonic::common::v1::KeyValue;
use wirelens_parsers::Role;

use crate::{kv, semconv};

/// The other end's identity, shared by every span to or from its address.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerIdentity {
    /// Its logical service: `server.service.name` on a client span, `client.service.name` on a
    /// server span (empty: not exported).
    pub service_name: String,
    /// Its service namespace: `server.service.namespace` / `client.service.namespace`.
    pub service_namespace: String,
    /// Further `(key, value)` pairs as the agent named them (`wirelens.peer.k8s.pod.name`...).
    pub attributes: Vec<(String, String)>,
}

impl PeerIdentity {
    /// Appends the identity to the attributes of a span whose traced process played `role`:
    /// the peer of a client is the server, the peer of a server is the client.
    pub(crate) fn push_attributes(&self, role: Role, attributes: &mut Vec<KeyValue>) {
        let (name, namespace) = match role {
            Role::Client => (
                semconv::SERVER_SERVICE_NAME,
                semconv::SERVER_SERVICE_NAMESPACE,
            ),
            Role::Server => (
                semconv::CLIENT_SERVICE_NAME,
                semconv::CLIENT_SERVICE_NAMESPACE,
            ),
        };
        if !self.service_name.is_empty() {
            attributes.push(kv::string(name, self.service_name.as_str()));
        }
        if !self.service_namespace.is_empty() {
            attributes.push(kv::string(namespace, self.service_namespace.as_str()));
        }
        for (key, value) in &self.attributes {
            if !value.is_empty() {
                attributes.push(kv::string(key, value.as_str()));
            }
        }
    }
}
