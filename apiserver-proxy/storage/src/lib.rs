//! Revisioned key-value storage with watch. See the crate README in the module docs.
