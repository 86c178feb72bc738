//! siemrelay receivers.
