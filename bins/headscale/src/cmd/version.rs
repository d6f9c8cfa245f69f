//! `headscale version [-o json]`.

use hs_control::VersionInfo;

use crate::cli::GlobalArgs;
use crate::output;

pub(crate) fn run(global: &GlobalArgs) -> anyhow::Result<()> {
    let info = VersionInfo::current();
    let human = info.to_string();
    output::success_serde(&info, human.trim_end(), global.output)
}
