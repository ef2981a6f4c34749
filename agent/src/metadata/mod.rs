//! What the agent knows about processes and sockets beyond the kernel events.

pub mod cgroup;
pub mod container;
pub mod kubernetes;
pub mod process;
pub mod runtime;
pub mod sockets;
