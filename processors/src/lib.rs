//! siemrelay processors: filter, enrich, batch and sign. One module per component type.

pub mod batch;
pub mod enrich;
pub mod filter;
pub mod sign;

use siemrelay_core::factory::ProcessorFactory;

/// Every processor type, one line each: the pipelines crate looks config types up here.
pub fn processor_factories() -> &'static [&'static dyn ProcessorFactory] {
    &[
        &filter::factory::FilterFactory,
        &enrich::factory::EnrichFactory,
        &batch::factory::BatchFactory,
        &sign::factory::SignFactory,
    ]
}
