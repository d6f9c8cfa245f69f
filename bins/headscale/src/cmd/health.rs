//! `headscale health`: asks the running server whether it and its database are healthy;
//! exits 0 when they are, 1 otherwise.

use crate::goformat::GoValue;
use hs_api::proto;

use super::client::{self, block_on, status};
use crate::cli::GlobalArgs;
use crate::output::success;

pub(crate) fn run(global: &GlobalArgs) -> anyhow::Result<()> {
    block_on(async move {
        let mut c = client::connect(global).await?;
        let r = c
            .health(proto::HealthRequest {})
            .await
            .map_err(|s| status("checking health", s))?
            .into_inner();
        let v = GoValue::Struct(vec![(
            "database_connectivity",
            GoValue::Bool(r.database_connectivity),
        )]);
        if !r.database_connectivity {
            anyhow::bail!("unhealthy: the server cannot reach its database");
        }
        success(&v, "healthy", global.output)
    })
}
