//! Loading the programs for a mode, for the daemon and a standalone run alike: in auto mode,
//! LSM programs the verifier refuses (where the probe's trivial one loaded) demote to the
//! fallback mode, and the reason is said at start and carried in every event.
use crate::{bpf, kernel::probe::ModeRequest};

/// Why an attempt to load failed: in an LSM program (which the fallback mode avoids), or
/// anywhere else.
#[derive(Debug)]
pub struct Failure {
    pub in_lsm: bool,
    pub message: String,
}

impl Failure {
    pub fn other(message: impl std::fmt::Display) -> Self {
        Self {
            in_lsm: false,
            message: message.to_string(),
        }
    }

    pub fn lsm(message: impl std::fmt::Display) -> Self {
        Self {
            in_lsm: true,
            message: message.to_string(),
        }
    }
}

/// Runs `attempt(None)` (the mode the probe chose); when that fails in an LSM program and the
/// mode was left to auto, runs `attempt(Some(why))` for the fallback mode. Returns what the
/// attempt made and the reason for falling back, if it did.
pub fn load_with_fallback<T>(
    requested: ModeRequest,
    mut attempt: impl FnMut(Option<&str>) -> Result<T, Failure>,
) -> Result<(T, Option<String>), Failure> {
    match attempt(None) {
        Ok(t) => Ok((t, None)),
        Err(f) if f.in_lsm && requested == ModeRequest::Auto => {
            let why = format!(
                "the BPF LSM programs did not load on this kernel: {}",
                bpf::brief_load_error(&f.message)
            );
            eprintln!("enforcer: warning: {why}; using the fallback mode");
            let t = attempt(Some(&why)).map_err(|f| Failure::other(f.message))?;
            Ok((t, Some(why)))
        }
        Err(f) => Err(f),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_lsm_failure_in_auto_mode_falls_back() {
        let mut tries = Vec::new();
        let r = load_with_fallback(ModeRequest::Auto, |why| {
            tries.push(why.map(str::to_owned));
            match why {
                None => Err(Failure::lsm("the verifier said no")),
                Some(_) => Ok(7),
            }
        });
        let (v, why) = r.unwrap();
        assert_eq!(v, 7);
        assert!(why.unwrap().contains("did not load"));
        assert_eq!(tries.len(), 2);

        let r = load_with_fallback(ModeRequest::Lsm, |_| Err::<u8, _>(Failure::lsm("no")));
        assert!(r.unwrap_err().in_lsm);
        let r = load_with_fallback(ModeRequest::Auto, |_| Err::<u8, _>(Failure::other("x")));
        assert!(!r.unwrap_err().in_lsm);
    }
}
