//! siemrelay's trunk: the security event every component shares, the traits that connect
//! receivers, processors and the pipeline runtime, attribute paths, and config value types.

pub mod admission;
pub mod atomic_file;
pub mod attributes;
pub mod cidr;
pub mod completion;
pub mod component;
pub mod config_read;
pub mod config_types;
pub mod event;
pub mod factory;
pub mod ingest;
pub mod kafka;
pub mod listener_tls;
pub mod path;
pub mod scrub;
pub mod severity;
pub mod time;

pub use attributes::Attributes;
pub use completion::Completion;
pub use component::{
    Accepted, Batch, EventSink, Processor, ProcessorContext, ReceiverContext, Refusal,
};
pub use config_types::ConfigIssue;
pub use event::{Event, EventFields, Map, Signature, Value, WrittenJson};
pub use severity::Severity;
pub use time::Timestamp;
