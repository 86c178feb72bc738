//! The `webhook` receiver.
