//! Integration tests for hs-types.

mod tailcfg;
