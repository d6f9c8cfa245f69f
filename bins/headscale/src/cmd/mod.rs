//! One module per command.

pub(crate) mod configtest;
pub(crate) mod generate;
pub(crate) mod serve;
pub(crate) mod version;
