//! Helpers for siemrelay's end-to-end tests.
