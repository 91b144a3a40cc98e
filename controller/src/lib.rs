//! Controller library.
