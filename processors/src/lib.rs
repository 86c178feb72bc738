//! siemrelay processors.
