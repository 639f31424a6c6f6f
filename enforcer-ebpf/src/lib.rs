#![no_std]
// An empty library target so that `enforcer` can list this crate as a build dependency.
