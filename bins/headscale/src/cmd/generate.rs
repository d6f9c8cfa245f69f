//! `headscale generate private-key`: a new machine private key in its `privkey:` text form.

use hs_types::MachinePrivate;

use crate::cli::GlobalArgs;
use crate::output;

pub(crate) fn private_key(global: &GlobalArgs) -> anyhow::Result<()> {
    let key = MachinePrivate::generate(&mut rand::rngs::OsRng);
    let text = key.to_text();
    let value = crate::goformat::GoValue::Map(vec![("private_key".into(), text.clone())]);
    output::success(&value, &text, global.output)
}
