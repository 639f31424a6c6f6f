//! `cargo xtask deb`: the Debian package. The binary is the static build the VM stage makes
//! (no libc version to depend on); the unit, the default config and the policies come from
//! `packaging/` and `policies/`. Built with dpkg-deb, which every Debian machine has, and checked
//! after the build: its metadata, its file list, and the packaged binary run.
use std::{
    fs,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, ensure};

use crate::{cargo, step};

const TARGET: &str = "x86_64-unknown-linux-gnu";
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// What goes where: (source in the tree, path in the package, mode).
fn payload(root: &Path) -> anyhow::Result<Vec<(PathBuf, String, u32)>> {
    let mut files = vec![
        (
            root.join("target").join(TARGET).join("release/enforcer"),
            "usr/bin/enforcer".to_owned(),
            0o755,
        ),
        (
            root.join("target")
                .join(TARGET)
                .join("release/enforcer-run"),
            "usr/bin/enforcer-run".to_owned(),
            0o755,
        ),
        (
            root.join("packaging/enforcer.service"),
            "lib/systemd/system/enforcer.service".to_owned(),
            0o644,
        ),
        (
            root.join("packaging/enforcer.toml"),
            "etc/enforcer/enforcer.toml".to_owned(),
            0o644,
        ),
        (
            root.join("README.md"),
            "usr/share/doc/enforcer/README.md".to_owned(),
            0o644,
        ),
    ];
    let mut policies: Vec<PathBuf> = fs::read_dir(root.join("policies"))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    policies.sort();
    for p in policies {
        let name = p.file_name().context("policy name")?.to_string_lossy();
        files.push((p.clone(), format!("etc/enforcer/policies/{name}"), 0o644));
    }
    Ok(files)
}

const POSTINST: &str = r#"#!/bin/sh
set -e
# An upgrade restarts the daemon: the new one takes the running tasks over from the pinned
# programs (same map layout) or refuses to start while they run (the old programs keep
# enforcing). Agents are never in the unit's cgroup, so a restart does not kill them.
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    if [ "$1" = configure ]; then
        systemctl enable enforcer.service
        if [ -n "$2" ]; then
            systemctl try-restart enforcer.service
        else
            systemctl start enforcer.service || true
        fi
    fi
fi
"#;

const PRERM: &str = r#"#!/bin/sh
set -e
# Stopping leaves running tasks enforced by the pinned programs; the next start adopts them.
if [ -d /run/systemd/system ] && [ "$1" = remove ]; then
    systemctl stop enforcer.service || true
    systemctl disable enforcer.service || true
fi
"#;

const POSTRM: &str = r#"#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload || true
fi
"#;

fn control(arch: &str, installed_kib: u64) -> String {
    format!(
        "Package: enforcer\n\
         Version: {VERSION}\n\
         Architecture: {arch}\n\
         Maintainer: enforcer developers <enforcer@localhost>\n\
         Installed-Size: {installed_kib}\n\
         Section: admin\n\
         Priority: optional\n\
         Recommends: systemd\n\
         Homepage: https://github.com/enforcer/enforcer\n\
         Description: per-task envelopes for AI-agent processes, checked in the kernel\n \
         A daemon that loads eBPF programs (BPF LSM hooks, or Landlock with syscall\n \
         tracepoints where the BPF LSM is off) and enforces per-task allow-lists of\n \
         binaries, files and network endpoints, for a bounded time and budget, with\n \
         every decision logged.\n"
    )
}

/// Builds the package; returns its path.
pub fn build() -> anyhow::Result<PathBuf> {
    let root = std::env::current_dir()?;
    step(
        "build the static enforcer",
        cargo()
            .args(["build", "--release", "--target", TARGET, "-p", "enforcer"])
            .env("RUSTFLAGS", "-C target-feature=+crt-static"),
    )?;
    let arch = String::from_utf8(
        Command::new("dpkg")
            .arg("--print-architecture")
            .output()
            .context("dpkg --print-architecture")?
            .stdout,
    )?
    .trim()
    .to_owned();
    let stage = root.join(format!("target/deb/enforcer_{VERSION}_{arch}"));
    let _ = fs::remove_dir_all(&stage);
    let mut bytes = 0;
    for (src, dest, mode) in payload(&root)? {
        let to = stage.join(&dest);
        fs::create_dir_all(to.parent().context("parent")?)?;
        fs::copy(&src, &to).with_context(|| format!("{}", src.display()))?;
        fs::set_permissions(&to, fs::Permissions::from_mode(mode))?;
        bytes += fs::metadata(&to)?.len();
    }
    let debian = stage.join("DEBIAN");
    fs::create_dir_all(&debian)?;
    fs::write(debian.join("control"), control(&arch, bytes.div_ceil(1024)))?;
    // The config and the policies are the admin's once installed: dpkg asks before replacing.
    let conffiles: Vec<String> = payload(&root)?
        .into_iter()
        .filter(|(_, d, _)| d.starts_with("etc/"))
        .map(|(_, d, _)| format!("/{d}\n"))
        .collect();
    fs::write(debian.join("conffiles"), conffiles.concat())?;
    for (name, text) in [("postinst", POSTINST), ("prerm", PRERM), ("postrm", POSTRM)] {
        let path = debian.join(name);
        fs::write(&path, text)?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755))?;
    }
    let deb = root.join(format!("target/deb/enforcer_{VERSION}_{arch}.deb"));
    step(
        "dpkg-deb --build",
        Command::new("dpkg-deb")
            .args(["--root-owner-group", "-Zxz", "--build"])
            .arg(&stage)
            .arg(&deb),
    )?;
    Ok(deb)
}

/// Checks a built package: the metadata, every file in place, and the binary it carries runs.
pub fn check(deb: &Path) -> anyhow::Result<()> {
    let out = |args: &[&str]| -> anyhow::Result<String> {
        let o = Command::new("dpkg-deb").args(args).arg(deb).output()?;
        ensure!(o.status.success(), "dpkg-deb {args:?} failed");
        Ok(String::from_utf8_lossy(&o.stdout).into_owned())
    };
    let info = out(&["--info"])?;
    ensure!(
        info.contains("Package: enforcer") && info.contains(&format!("Version: {VERSION}")),
        "control fields: {info}"
    );
    let contents = out(&["--contents"])?;
    let root = std::env::current_dir()?;
    for (_, dest, _) in payload(&root)? {
        ensure!(
            contents.contains(&format!("./{dest}")),
            "{dest} is not in the package:\n{contents}"
        );
    }
    ensure!(
        contents
            .lines()
            .all(|l| l.contains("root/root") || l.starts_with('d')),
        "files not owned by root:\n{contents}"
    );
    let scratch = root.join("target/deb/extracted");
    let _ = fs::remove_dir_all(&scratch);
    step(
        "extract the package",
        Command::new("dpkg-deb").arg("-x").arg(deb).arg(&scratch),
    )?;
    let v = Command::new(scratch.join("usr/bin/enforcer"))
        .arg("--version")
        .output()
        .context("the packaged enforcer")?;
    let v = String::from_utf8_lossy(&v.stdout);
    ensure!(v.contains(VERSION), "the packaged enforcer says {v:?}");
    let help = Command::new(scratch.join("usr/bin/enforcer-run"))
        .arg("--help")
        .output()
        .context("the packaged enforcer-run")?;
    ensure!(
        help.status.success() && String::from_utf8_lossy(&help.stdout).contains("--task"),
        "the packaged enforcer-run: {help:?}"
    );
    let control = scratch.join("DEBIAN");
    step(
        "extract the control files",
        Command::new("dpkg-deb").arg("-e").arg(deb).arg(&control),
    )?;
    let conffiles = fs::read_to_string(control.join("conffiles"))?;
    ensure!(
        conffiles.contains("/etc/enforcer/enforcer.toml"),
        "the config is not a conffile: {conffiles}"
    );
    println!(
        "deb: {} checked ({} files)",
        deb.display(),
        contents.lines().count()
    );
    Ok(())
}
