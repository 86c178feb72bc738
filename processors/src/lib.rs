//! siemrelay processors: filter, enrich, batch and sign. One module per component type.

pub mod batch;
pub mod enrich;
pub mod filter;
pub mod sign;
