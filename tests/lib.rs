//! End-to-end tests live in `tests/tests/`; this library only hosts shared helpers.
