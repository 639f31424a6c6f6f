//! The enforcer's resolver for tasks (issue 15, in progress): names checked and matched
//! against a policy (`name`), and the wire format it reads and writes (`wire`).
pub mod decide;
pub mod name;
pub mod upstream;
pub mod wire;
