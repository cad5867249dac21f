//! The syncer: what must really run is copied from each virtual cluster down
//! to its parent (the parent virtual cluster, `root`, or the real host
//! cluster), and status flows back up.
//!
//! It owns the objects it creates in a parent (all labelled
//! [`names::MANAGED_BY_LABEL`]) and the status of virtual pods; it must never
//! touch a parent object that another virtual cluster owns.

pub mod names;
