//! siemrelay pipelines.
