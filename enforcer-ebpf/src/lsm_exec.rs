//! lsm mode, exec: `bprm_check_security` runs for the program and again for each interpreter
//! (a script's `#!` line), so both must be allowed to execute. A program with no name (a
//! memfd, an unlinked file) is refused whatever the rules say.
use aya_ebpf::{macros::lsm, programs::LsmContext};
use enforcer_common::{access, event_kind};

use crate::{
    kernel,
    lsm::{self, Check},
    lsm_files::check_file,
    path,
};

#[lsm(hook = "bprm_check_security")]
pub fn lsm_bprm_check(ctx: LsmContext) -> i32 {
    let bprm: u64 = ctx.arg(0);
    let task = match lsm::enter(ctx.arg(1)) {
        Ok(task) => task,
        Err(ret) => return ret,
    };
    let Some(o) = kernel::resolved() else {
        return 0;
    };
    // A direct load, so the verifier knows it is a `struct file *` for bpf_d_path.
    let file = path::load_btf_ptr(bprm, o.bprm_file);
    if file == 0 {
        return 0;
    }
    let check = Check {
        kind: event_kind::EXEC,
        want: access::EXEC,
        op: 0,
        flags: 0,
        any_of: 0,
    };
    if let Some(ret) = lsm::refuse_nameless(&task, file, &check) {
        return ret;
    }
    check_file(&task, file, &check)
}
