//! Harness self-check with a deliberately broken server: `headscale serve` started with
//! `HEADSCALE_RS_TEST_FAULT=omit-peer-disco-key` sends every peer without its DiscoKey. The
//! ping phase must then fail, and its message must name the missing DiscoKey, proving that
//! the scenarios can fail and that their failures point at the cause.

use anyhow::{bail, ensure};

use crate::scenarios::{Ctx, by_ip, two_users_with};
use crate::server::KeyOpts;

/// `TestHarnessSelfCheckBrokenServer`.
pub(crate) fn broken_server(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let (mut e, _) = two_users_with(ctx, name, 1, KeyOpts::default(), &[], true, &|e| {
        e.server.env.push((
            "HEADSCALE_RS_TEST_FAULT".to_owned(),
            "omit-peer-disco-key".to_owned(),
        ));
        Ok(())
    })?;
    match e.ping_all(&by_ip, None) {
        Ok(n) => bail!("ping-all passed ({n} pings) although the server omits peers' DiscoKey"),
        Err(err) => {
            let msg = format!("{err:#}");
            ensure!(
                msg.contains("no DiscoKey"),
                "the failure does not name the missing DiscoKey: {msg}"
            );
            println!("  {name}: failure message as expected: {msg}");
            Ok(())
        }
    }
}
