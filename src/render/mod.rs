//! Renderers: print a [`Report`](crate::diagnose::report::Report); decide nothing.

pub mod human;
pub mod json;
pub mod markdown;
pub mod npd;
pub mod prometheus;
