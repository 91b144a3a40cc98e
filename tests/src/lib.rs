//! Local cloud for tests.
