//! siemrelay exporters.
