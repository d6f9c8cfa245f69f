//! The admin surface: gRPC `headscale.v1`, REST `/api/v1`, API-key authentication, and the
//! client the CLI uses to reach a running server.
