//! `headscale generate private-key`: a new machine private key in its `privkey:` text form.

use std::collections::BTreeMap;

use hs_types::MachinePrivate;

use crate::cli::GlobalArgs;
use crate::output;

pub(crate) fn private_key(global: &GlobalArgs) -> anyhow::Result<()> {
    let key = MachinePrivate::generate(&mut rand::rngs::OsRng);
    let text = key.to_text();
    let value = BTreeMap::from([("private_key", text.as_str())]);
    output::success(&value, &text, global.output)
}
