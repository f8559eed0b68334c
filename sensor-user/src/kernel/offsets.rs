//! Struct field offsets from the running kernel's BTF (`/sys/kernel/btf/vmlinux`), handed
//! to the programs so that one binary works on kernels whose structs differ.
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use btf_rs::{Btf, Type};
use sensor_common::offsets::{FIELDS, KernelOffsets, SYSCALL_ARG_REGS};

pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

pub fn from_running_kernel() -> Result<KernelOffsets> {
    from_btf_file(Path::new(VMLINUX_BTF))
}

pub fn from_btf_file(path: &Path) -> Result<KernelOffsets> {
    if !path.exists() {
        bail!(
            "{} does not exist: this kernel has no BTF (CONFIG_DEBUG_INFO_BTF); vtrail needs it \
             to find kernel struct offsets",
            path.display()
        );
    }
    let btf = Btf::from_file(path).with_context(|| format!("cannot parse BTF in {}", path.display()))?;
    // Resolved in FIELDS order, which is KernelOffsets' field order.
    let mut resolved = FIELDS.iter().map(|(strukt, field)| {
        field_offset(&btf, strukt, field).with_context(|| format!("kernel BTF: no usable {strukt}.{field}"))
    });
    let mut next = || resolved.next().unwrap_or_else(|| bail!("internal: FIELDS is shorter than KernelOffsets"));
    let mut offsets = KernelOffsets {
        task_tgid: next()?,
        task_start_boottime: next()?,
        task_files: next()?,
        task_mm: next()?,
        files_fdt: next()?,
        fdtable_max_fds: next()?,
        fdtable_fd: next()?,
        file_inode: next()?,
        file_mode: next()?,
        inode_ino: next()?,
        inode_sb: next()?,
        inode_generation: next()?,
        inode_mode: next()?,
        sb_dev: next()?,
        mm_exe_file: next()?,
        binprm_file: next()?,
        file_path: next()?,
        path_dentry: next()?,
        dentry_parent: next()?,
        dentry_inode: next()?,
        valid: 1,
        ..Default::default()
    };
    if resolved.next().is_some() {
        bail!("internal: FIELDS is longer than KernelOffsets");
    }
    // Optional: without them only the tracepoint strategy is offered (see `syscall_regs`).
    if let Some((regs, _)) = SYSCALL_ARG_REGS
        && let Ok(found) = regs.map(|r| field_offset(&btf, "pt_regs", r)).into_iter().collect::<Result<Vec<_>>>()
    {
        [offsets.syscall_arg0, offsets.syscall_arg1, offsets.syscall_arg2, offsets.syscall_arg3] =
            [found[0], found[1], found[2], found[3]];
    }
    Ok(offsets)
}

/// Can the kprobe/fentry strategies read syscall arguments here? Why not, if not.
pub fn syscall_regs(offsets: &KernelOffsets) -> Result<(), String> {
    match SYSCALL_ARG_REGS {
        None => Err(format!("syscall argument registers are not known for {}", std::env::consts::ARCH)),
        // di is never at offset 0 (r15 is), so 0 means unresolved.
        Some(_) if offsets.syscall_arg0 == 0 => Err("kernel BTF: struct pt_regs lacks the syscall argument registers".into()),
        Some(_) => Ok(()),
    }
}

/// Byte offset of `field` in `struct strukt`, looking inside anonymous unions and structs.
fn field_offset(btf: &Btf, strukt: &str, field: &str) -> Result<u32> {
    for ty in btf.resolve_types_by_name(strukt)? {
        if let Type::Struct(s) = ty
            && !s.members.is_empty()
            && let Some(bits) = find_member(btf, &s, field, 0)?
        {
            if bits % 8 != 0 {
                bail!("{strukt}.{field} is a bitfield");
            }
            return Ok(bits / 8);
        }
    }
    Err(anyhow!("struct {strukt} has no member {field}"))
}

fn find_member(btf: &Btf, s: &btf_rs::Struct, field: &str, base_bits: u32) -> Result<Option<u32>> {
    for member in &s.members {
        let name = btf.resolve_name(member).unwrap_or_default();
        let bits = base_bits + member.bit_offset();
        if name == field {
            return Ok(Some(bits));
        }
        if name.is_empty() {
            // Anonymous union/struct: its members sit at this member's offset.
            let mut inner = btf.resolve_chained_type(member)?;
            loop {
                match inner {
                    Type::Struct(ref t) | Type::Union(ref t) => {
                        if let Some(found) = find_member(btf, t, field, bits)? {
                            return Ok(Some(found));
                        }
                        break;
                    }
                    Type::Typedef(_) | Type::Const(_) | Type::Volatile(_) => {
                        inner = btf.resolve_chained_type(inner.as_btf_type().unwrap())?;
                    }
                    _ => break,
                }
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    #[test]
    fn running_kernel_offsets_resolve() {
        let o = super::from_running_kernel().expect("this machine has BTF");
        assert_eq!(o.valid, 1);
        assert!(o.task_files > 0 && o.file_inode > 0 && o.inode_sb > 0);
    }
}
