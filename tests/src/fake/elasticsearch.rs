//! Fake elasticsearch server.
