//! The exit statuses `enforcer run` uses for itself, as shells and `env(1)`, `timeout(1)` and
//! container runtimes do; any other status is the command's own.

/// The enforcer failed before the command started (a bad policy, no daemon, no privileges).
pub const SETUP_FAILED: i32 = 125;
/// The command exists but could not be run (the policy does not allow executing it).
pub const CANNOT_EXECUTE: i32 = 126;
/// The command does not exist.
pub const NOT_FOUND: i32 = 127;
/// The task was ended by the enforcer (128 + SIGKILL), also when its first process happened
/// to exit on its own before the rest was killed.
pub const KILLED: i32 = 128 + libc::SIGKILL;
