//! A minimal reader of the kernel's BTF (`/sys/kernel/btf/vmlinux`): enough to find the byte
//! offset of a struct member, following anonymous structs and unions. The programs read a few
//! kernel structures (file tables, inodes, dentries) through these offsets.
use std::collections::HashMap;

use enforcer_common::KernelOffsets;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BtfError {
    #[error("BTF data is truncated or malformed ({0})")]
    Malformed(&'static str),
    #[error("BTF has no struct {0}")]
    NoStruct(String),
    #[error("struct {0} has no member {1}")]
    NoMember(String, String),
    #[error("struct {0} member {1} is a bitfield")]
    Bitfield(String, String),
}

const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_TYPE_TAG: u32 = 18;

#[derive(Clone, Copy)]
struct Type {
    name_off: u32,
    kind: u32,
    vlen: u32,
    kind_flag: bool,
    size_or_type: u32,
    /// Byte offset of the members (struct/union) in the type section.
    extra: usize,
}

/// Parsed BTF: types by id, names, and the struct/union ids by name.
pub struct Btf<'a> {
    types: Vec<Type>,
    type_data: &'a [u8],
    strings: &'a [u8],
    structs: HashMap<&'a str, Vec<u32>>,
}

fn u32_at(data: &[u8], at: usize) -> Result<u32, BtfError> {
    data.get(at..at + 4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or(BtfError::Malformed("read past end"))
}

impl<'a> Btf<'a> {
    pub fn parse(data: &'a [u8]) -> Result<Self, BtfError> {
        if data.get(0..2) != Some(&[0x9f, 0xeb]) {
            return Err(BtfError::Malformed("bad magic (not little-endian BTF)"));
        }
        let hdr_len = u32_at(data, 4)? as usize;
        let type_off = u32_at(data, 8)? as usize;
        let type_len = u32_at(data, 12)? as usize;
        let str_off = u32_at(data, 16)? as usize;
        let str_len = u32_at(data, 20)? as usize;
        let type_data = data
            .get(hdr_len + type_off..hdr_len + type_off + type_len)
            .ok_or(BtfError::Malformed("type section out of bounds"))?;
        let strings = data
            .get(hdr_len + str_off..hdr_len + str_off + str_len)
            .ok_or(BtfError::Malformed("string section out of bounds"))?;
        // Type id 0 is "void".
        let mut types = vec![Type {
            name_off: 0,
            kind: 0,
            vlen: 0,
            kind_flag: false,
            size_or_type: 0,
            extra: 0,
        }];
        let mut at = 0;
        while at < type_data.len() {
            let name_off = u32_at(type_data, at)?;
            let info = u32_at(type_data, at + 4)?;
            let size_or_type = u32_at(type_data, at + 8)?;
            let kind = (info >> 24) & 0x1f;
            let vlen = info & 0xffff;
            let extra = at + 12;
            let extra_len = match kind {
                1 | 14 | 17 => 4,              // int, var, decl_tag
                3 => 12,                       // array
                4 | 5 => 12 * vlen as usize,   // struct, union
                6 | 13 => 8 * vlen as usize,   // enum, func_proto
                15 | 19 => 12 * vlen as usize, // datasec, enum64
                2 | 7..=12 | 16 | 18 => 0,     // ptr, fwd, typedef, cv, func, float, tag
                _ => return Err(BtfError::Malformed("unknown type kind")),
            };
            types.push(Type {
                name_off,
                kind,
                vlen,
                kind_flag: info >> 31 == 1,
                size_or_type,
                extra,
            });
            at = extra + extra_len;
        }
        let mut btf = Self {
            types,
            type_data,
            strings,
            structs: HashMap::new(),
        };
        for id in 1..btf.types.len() as u32 {
            let t = btf.types[id as usize];
            if t.kind == KIND_STRUCT && t.name_off != 0 {
                let name = btf.name(t.name_off)?;
                btf.structs.entry(name).or_default().push(id);
            }
        }
        Ok(btf)
    }

    fn name(&self, off: u32) -> Result<&'a str, BtfError> {
        let rest = self
            .strings
            .get(off as usize..)
            .ok_or(BtfError::Malformed("name offset out of bounds"))?;
        let end = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
        std::str::from_utf8(&rest[..end]).map_err(|_| BtfError::Malformed("name not UTF-8"))
    }

    /// Follows typedefs and qualifiers.
    fn resolve(&self, mut id: u32) -> Option<Type> {
        for _ in 0..32 {
            let t = *self.types.get(id as usize)?;
            match t.kind {
                KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG => {
                    id = t.size_or_type;
                }
                _ => return Some(t),
            }
        }
        None
    }

    /// Bit offset of `member` in the struct/union `t`, searching anonymous members too.
    fn find_member(&self, t: Type, member: &str, depth: u32) -> Result<Option<u32>, BtfError> {
        if depth > 8 {
            return Ok(None);
        }
        for i in 0..t.vlen as usize {
            let at = t.extra + 12 * i;
            let name_off = u32_at(self.type_data, at)?;
            let ty = u32_at(self.type_data, at + 4)?;
            let raw = u32_at(self.type_data, at + 8)?;
            let bit_offset = if t.kind_flag { raw & 0x00ff_ffff } else { raw };
            if name_off == 0 {
                if let Some(inner) = self.resolve(ty)
                    && matches!(inner.kind, KIND_STRUCT | KIND_UNION)
                    && let Some(off) = self.find_member(inner, member, depth + 1)?
                {
                    return Ok(Some(bit_offset + off));
                }
            } else if self.name(name_off)? == member {
                if t.kind_flag && raw >> 24 != 0 {
                    return Err(BtfError::Bitfield(String::new(), member.to_owned()));
                }
                return Ok(Some(bit_offset));
            }
        }
        Ok(None)
    }

    /// The type id of the function `name` (a BTF FUNC), as an LSM program's attach target.
    pub fn func_id(&self, name: &str) -> Option<u32> {
        const KIND_FUNC: u32 = 12;
        (1..self.types.len() as u32).find(|id| {
            let t = self.types[*id as usize];
            t.kind == KIND_FUNC && self.name(t.name_off).is_ok_and(|n| n == name)
        })
    }

    /// Byte offset of `member` in `struct name`.
    pub fn member_offset(&self, name: &str, member: &str) -> Result<u32, BtfError> {
        let ids = self
            .structs
            .get(name)
            .ok_or_else(|| BtfError::NoStruct(name.to_owned()))?;
        for id in ids {
            let t = self.types[*id as usize];
            if let Some(bits) = self.find_member(t, member, 0)? {
                if bits % 8 != 0 {
                    return Err(BtfError::Bitfield(name.to_owned(), member.to_owned()));
                }
                return Ok(bits / 8);
            }
        }
        Err(BtfError::NoMember(name.to_owned(), member.to_owned()))
    }
}

/// Resolves every offset the programs use.
pub fn kernel_offsets(btf: &Btf<'_>) -> Result<KernelOffsets, BtfError> {
    let m = |s: &str, f: &str| btf.member_offset(s, f);
    Ok(KernelOffsets {
        task_files: m("task_struct", "files")?,
        files_fdt: m("files_struct", "fdt")?,
        fdt_fd: m("fdtable", "fd")?,
        fdt_max_fds: m("fdtable", "max_fds")?,
        file_inode: m("file", "f_inode")?,
        file_dentry: m("file", "f_path")? + m("path", "dentry")?,
        inode_ino: m("inode", "i_ino")?,
        inode_sb: m("inode", "i_sb")?,
        sb_dev: m("super_block", "s_dev")?,
        dentry_parent: m("dentry", "d_parent")?,
        dentry_inode: m("dentry", "d_inode")?,
        task_mm: m("task_struct", "mm")?,
        mm_exe_file: m("mm_struct", "exe_file")?,
        file_path: m("file", "f_path")?,
        file_mode: m("file", "f_mode")?,
        file_flags: m("file", "f_flags")?,
        bprm_file: m("linux_binprm", "file")?,
        inode_mode: m("inode", "i_mode")?,
        path_mnt: m("path", "mnt")?,
        path_dentry: m("path", "dentry")?,
        dentry_name: m("dentry", "d_name")?,
        mount_mnt: m("mount", "mnt")?,
        mount_parent: m("mount", "mnt_parent")?,
        mount_mountpoint: m("mount", "mnt_mountpoint")?,
        vfsmount_root: m("vfsmount", "mnt_root")?,
        vma_file: m("vm_area_struct", "vm_file")?,
        task_exit_code: m("task_struct", "exit_code")?,
        task_cgroups: m("task_struct", "cgroups")?,
        css_set_dfl_cgrp: m("css_set", "dfl_cgrp")?,
        cgroup_kn: m("cgroup", "kn")?,
        kernfs_node_id: m("kernfs_node", "id")?,
        task_tgid: m("task_struct", "tgid")?,
        inode_nlink: m("inode", "i_nlink")?,
        msghdr_name: m("msghdr", "msg_name")?,
        socket_sk: m("socket", "sk")?,
        sock_family: m("sock", "__sk_common")? + m("sock_common", "skc_family")?,
        sock_num: m("sock", "__sk_common")? + m("sock_common", "skc_num")?,
        sock_rcv_saddr: m("sock", "__sk_common")? + m("sock_common", "skc_rcv_saddr")?,
        sock_v6_rcv_saddr: m("sock", "__sk_common")? + m("sock_common", "skc_v6_rcv_saddr")?,
        sock_cgroup: m("sock", "sk_cgrp_data")? + m("sock_cgroup_data", "cgroup")?,
        unix_sock_addr: m("unix_sock", "addr")?,
        unix_address_name: m("unix_address", "name")?,
        unix_address_len: m("unix_address", "len")?,
        valid: 1,
    })
}

/// Reads the running kernel's BTF and resolves the offsets.
pub fn running_kernel_offsets() -> Result<KernelOffsets, String> {
    let path = "/sys/kernel/btf/vmlinux";
    let data = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
    let btf = Btf::parse(&data).map_err(|e| format!("{path}: {e}"))?;
    kernel_offsets(&btf).map_err(|e| format!("{path}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a BTF blob: `struct outer { int a; union { long pad; int target; }; int b; }`.
    fn blob() -> Vec<u8> {
        let strings = b"\0outer\0a\0b\0target\0int\0pad\0".to_vec();
        let s = |name: &str| {
            let hay = std::str::from_utf8(&strings).unwrap();
            hay.find(&format!("\0{name}\0")).unwrap() as u32 + 1
        };
        let mut types = Vec::new();
        let push = |t: &mut Vec<u8>, v: u32| t.extend_from_slice(&v.to_le_bytes());
        // 1: int
        push(&mut types, s("int"));
        push(&mut types, 1 << 24);
        push(&mut types, 4);
        push(&mut types, 32);
        // 2: anonymous union { pad @0, target @0 }
        push(&mut types, 0);
        push(&mut types, (5 << 24) | 2);
        push(&mut types, 8);
        for (name, off) in [("pad", 0), ("target", 0)] {
            push(&mut types, s(name));
            push(&mut types, 1);
            push(&mut types, off);
        }
        // 3: struct outer { a @0, <union> @64, b @128 }
        push(&mut types, s("outer"));
        push(&mut types, (4 << 24) | 3);
        push(&mut types, 24);
        for (name, ty, off) in [(s("a"), 1, 0), (0, 2, 64), (s("b"), 1, 128)] {
            push(&mut types, name);
            push(&mut types, ty);
            push(&mut types, off);
        }
        let mut out = Vec::new();
        out.extend_from_slice(&[0x9f, 0xeb, 1, 0]);
        push(&mut out, 24);
        push(&mut out, 0);
        push(&mut out, types.len() as u32);
        push(&mut out, types.len() as u32);
        push(&mut out, strings.len() as u32);
        out.extend_from_slice(&types);
        out.extend_from_slice(&strings);
        out
    }

    #[test]
    fn finds_members_directly_and_through_anonymous_unions() {
        let data = blob();
        let btf = Btf::parse(&data).unwrap();
        assert_eq!(btf.member_offset("outer", "a"), Ok(0));
        assert_eq!(btf.member_offset("outer", "target"), Ok(8));
        assert_eq!(btf.member_offset("outer", "b"), Ok(16));
        assert_eq!(
            btf.member_offset("outer", "nope"),
            Err(BtfError::NoMember("outer".into(), "nope".into()))
        );
        assert_eq!(
            btf.member_offset("missing", "a"),
            Err(BtfError::NoStruct("missing".into()))
        );
    }

    #[test]
    fn rejects_garbage() {
        assert!(Btf::parse(b"not btf at all, definitely not").is_err());
        let mut data = blob();
        data.truncate(30);
        assert!(Btf::parse(&data).is_err());
    }

    #[test]
    fn the_running_kernel_has_every_offset_when_it_has_btf() {
        if !std::path::Path::new("/sys/kernel/btf/vmlinux").exists() {
            eprintln!("SKIP: /sys/kernel/btf/vmlinux is absent on this kernel");
            return;
        }
        let o = running_kernel_offsets().unwrap();
        assert_eq!(o.valid, 1);
        assert!(o.task_files > 0 && o.inode_sb > 0 && o.mm_exe_file > 0);
    }
}
