//! Kernel modules for the guest, dependencies first, read from each module's `.modinfo`
//! (the package has no `modules.dep`) and decompressed on the host if needed.


use anyhow::{Context, Result, anyhow, bail, ensure};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{self};
use std::path::{Path, PathBuf};
use std::process::Command;

use super::KernelFiles;

/// The modules to insmod, dependencies first, each as (name, plain ELF bytes). Modules
/// built into the kernel are left out.
pub(super) fn resolve_modules(kernel: &KernelFiles, wanted: &[&str]) -> Result<Vec<(String, Vec<u8>)>> {
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let modules_dir = &kernel.modules_dir;
    let release = kernel.release.as_str();
    let mut index = HashMap::new();
    index_modules(&modules_dir.join("kernel"), &mut index)?;
    let builtin: BTreeSet<String> = fs::read_to_string(modules_dir.join("modules.builtin"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| module_name(l.rsplit('/').next()?))
        .collect();

    struct Resolver<'a> {
        release: &'a str,
        index: &'a HashMap<String, PathBuf>,
        builtin: &'a BTreeSet<String>,
        visiting: BTreeSet<String>,
        done: BTreeSet<String>,
        order: Vec<(String, Vec<u8>)>,
    }
    impl Resolver<'_> {
        fn visit(&mut self, name: &str) -> Result<()> {
            let name = name.replace('-', "_");
            if self.done.contains(&name) || self.builtin.contains(&name) {
                return Ok(());
            }
            ensure!(
                self.visiting.insert(name.clone()),
                "module dependency cycle through {name}"
            );
            let path = self.index.get(&name).ok_or_else(|| {
                anyhow!("kernel module {name} is neither built into {} nor shipped as a module", self.release)
            })?;
            let bytes = read_module(path)?;
            let info = modinfo(&bytes)
                .with_context(|| format!("reading .modinfo of {}", path.display()))?;
            if let Some(vermagic) = info.get("vermagic") {
                ensure!(
                    vermagic.starts_with(self.release),
                    "{} has vermagic {vermagic:?}, not {}",
                    path.display(),
                    self.release
                );
            }
            let deps = info.get("depends").cloned().unwrap_or_default();
            for dep in deps.split(',').map(str::trim).filter(|d| !d.is_empty()) {
                self.visit(dep)?;
            }
            self.visiting.remove(&name);
            self.done.insert(name.clone());
            self.order.push((name, bytes));
            Ok(())
        }
    }
    let mut r = Resolver {
        release,
        index: &index,
        builtin: &builtin,
        visiting: BTreeSet::new(),
        done: BTreeSet::new(),
        order: Vec::new(),
    };
    for name in wanted {
        r.visit(name)?;
    }
    Ok(r.order)
}

/// `foo-bar.ko[.xz|.zst|.gz]` -> `foo_bar`.
pub(super) fn module_name(file: &str) -> Option<String> {
    let stem = [".ko", ".ko.xz", ".ko.zst", ".ko.gz"]
        .iter()
        .find_map(|ext| file.strip_suffix(ext))?;
    Some(stem.replace('-', "_"))
}

pub(super) fn index_modules(dir: &Path, index: &mut HashMap<String, PathBuf>) -> Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            index_modules(&path, index)?;
        } else if let Some(name) = path
            .file_name()
            .and_then(|f| f.to_str())
            .and_then(module_name)
        {
            index.insert(name, path);
        }
    }
    Ok(())
}

/// A module as a plain ELF object (what busybox `insmod` loads), decompressed if needed.
pub(super) fn read_module(path: &Path) -> Result<Vec<u8>> {
    let s = path.to_string_lossy();
    let tool = if s.ends_with(".ko.xz") {
        "xz"
    } else if s.ends_with(".ko.zst") {
        "zstd"
    } else if s.ends_with(".ko.gz") {
        "gzip"
    } else {
        return fs::read(path).with_context(|| format!("reading {}", path.display()));
    };
    let out = Command::new(tool)
        .arg("-dc")
        .arg(path)
        .output()
        .with_context(|| format!("running {tool} -dc {}", path.display()))?;
    ensure!(out.status.success(), "{tool} -dc {} failed", path.display());
    Ok(out.stdout)
}

/// The key=value strings of an ELF64 module's `.modinfo` section.
pub(super) fn modinfo(elf: &[u8]) -> Result<BTreeMap<String, String>> {
    let u16_at = |o: usize| -> Result<usize> {
        Ok(u16::from_le_bytes(
            elf.get(o..o + 2)
                .ok_or_else(|| anyhow!("truncated ELF"))?
                .try_into()?,
        ) as usize)
    };
    let u32_at = |o: usize| -> Result<usize> {
        Ok(u32::from_le_bytes(
            elf.get(o..o + 4)
                .ok_or_else(|| anyhow!("truncated ELF"))?
                .try_into()?,
        ) as usize)
    };
    let u64_at = |o: usize| -> Result<usize> {
        Ok(u64::from_le_bytes(
            elf.get(o..o + 8)
                .ok_or_else(|| anyhow!("truncated ELF"))?
                .try_into()?,
        ) as usize)
    };
    ensure!(
        elf.starts_with(b"\x7fELF\x02\x01"),
        "not a little-endian ELF64 object"
    );
    let (shoff, shentsize, shnum, shstrndx) =
        (u64_at(0x28)?, u16_at(0x3a)?, u16_at(0x3c)?, u16_at(0x3e)?);
    let section = |i: usize| -> Result<(usize, usize, usize)> {
        let h = shoff + i * shentsize;
        Ok((u32_at(h)?, u64_at(h + 24)?, u64_at(h + 32)?))
    };
    let (_, stroff, strsize) = section(shstrndx)?;
    let strtab = elf
        .get(stroff..stroff + strsize)
        .ok_or_else(|| anyhow!("bad section string table"))?;
    for i in 0..shnum {
        let (name_off, off, size) = section(i)?;
        let name = strtab.get(name_off..).unwrap_or_default();
        if name.starts_with(b".modinfo\0") {
            let data = elf
                .get(off..off + size)
                .ok_or_else(|| anyhow!("bad .modinfo bounds"))?;
            return Ok(data
                .split(|&b| b == 0)
                .filter_map(|kv| {
                    let kv = std::str::from_utf8(kv).ok()?;
                    let (k, v) = kv.split_once('=')?;
                    Some((k.to_string(), v.to_string()))
                })
                .collect());
        }
    }
    bail!("no .modinfo section")
}
