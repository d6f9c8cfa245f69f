//! The domain model: users, nodes, pre-auth keys and API keys as the control plane, the
//! database and the NodeStore share them.
