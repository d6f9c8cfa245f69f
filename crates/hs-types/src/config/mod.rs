//! Configuration structs: Headscale's YAML config file as typed values, with its defaults
//! and validation.
