//! What the agent knows about processes and sockets beyond the kernel events.

pub mod process;
pub mod sockets;
