//! String interning: each distinct node id is stored once, in one arena, and named by a u32.
//! With millions of nodes this is what keeps the index small: a `HashMap<String, u32>`
//! plus a `Vec<String>` would hold every id twice with two allocations each.

use std::hash::BuildHasher;

use hashbrown::{DefaultHashBuilder, HashTable};

#[derive(Default)]
pub struct Interner {
    /// All strings, back to back.
    arena: String,
    /// `ends[i]` is where string `i` ends in `arena`; it starts where `i - 1` ends.
    ends: Vec<u32>,
    table: HashTable<u32>,
    hasher: DefaultHashBuilder,
}

impl Interner {
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    pub fn get(&self, index: u32) -> &str {
        let index = index as usize;
        let start = if index == 0 {
            0
        } else {
            self.ends[index - 1] as usize
        };
        &self.arena[start..self.ends[index] as usize]
    }

    pub fn lookup(&self, text: &str) -> Option<u32> {
        let hash = self.hasher.hash_one(text);
        self.table.find(hash, |&i| self.get(i) == text).copied()
    }

    /// Returns the string's number and whether it was new. `None` once the arena or the
    /// count would overflow u32 (about 4 GiB of ids): the caller reports it.
    pub fn intern(&mut self, text: &str) -> Option<(u32, bool)> {
        let hash = self.hasher.hash_one(text);
        if let Some(&found) = self
            .table
            .find(hash, |&i| get(&self.arena, &self.ends, i) == text)
        {
            return Some((found, false));
        }
        let index = u32::try_from(self.ends.len()).ok()?;
        let end = u32::try_from(self.arena.len() + text.len()).ok()?;
        self.arena.push_str(text);
        self.ends.push(end);
        let (arena, ends, hasher) = (&self.arena, &self.ends, &self.hasher);
        self.table
            .insert_unique(hash, index, |&i| hasher.hash_one(get(arena, ends, i)));
        Some((index, true))
    }

    pub fn heap_bytes(&self) -> usize {
        self.arena.capacity() + self.ends.capacity() * 4 + self.table.capacity() * 5
    }

    /// The same strings numbered in byte order, and for each old number its new one. The
    /// arena keeps its length, so every offset still fits the u32 it fitted before.
    pub fn sorted(self) -> (Interner, Vec<u32>) {
        let mut order: Vec<u32> = (0..self.ends.len() as u32).collect();
        order.sort_unstable_by(|&a, &b| self.get(a).cmp(self.get(b)));
        let mut sorted = Interner {
            arena: String::with_capacity(self.arena.len()),
            ends: Vec::with_capacity(self.ends.len()),
            table: HashTable::with_capacity(self.ends.len()),
            hasher: self.hasher.clone(),
        };
        let mut new_of_old = vec![0u32; self.ends.len()];
        for (new, &old) in order.iter().enumerate() {
            let text = self.get(old);
            sorted.arena.push_str(text);
            sorted.ends.push(sorted.arena.len() as u32);
            let hash = sorted.hasher.hash_one(text);
            let (arena, ends, hasher) = (&sorted.arena, &sorted.ends, &sorted.hasher);
            sorted
                .table
                .insert_unique(hash, new as u32, |&i| hasher.hash_one(get(arena, ends, i)));
            new_of_old[old as usize] = new as u32;
        }
        (sorted, new_of_old)
    }

    pub fn shrink_to_fit(&mut self) {
        self.arena.shrink_to_fit();
        self.ends.shrink_to_fit();
    }
}

fn get<'a>(arena: &'a str, ends: &[u32], index: u32) -> &'a str {
    let index = index as usize;
    let start = if index == 0 {
        0
    } else {
        ends[index - 1] as usize
    };
    &arena[start..ends[index] as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interns_each_string_once() {
        let mut interner = Interner::default();
        assert_eq!(interner.intern("file:a:1:2"), Some((0, true)));
        assert_eq!(interner.intern("proc:a:1:2"), Some((1, true)));
        assert_eq!(interner.intern("file:a:1:2"), Some((0, false)));
        assert_eq!(interner.get(1), "proc:a:1:2");
        assert_eq!(interner.lookup("proc:a:1:2"), Some(1));
        assert_eq!(interner.lookup("nope"), None);
        assert_eq!(interner.len(), 2);
    }

    #[test]
    fn sorting_renumbers_in_byte_order() {
        let mut interner = Interner::default();
        for id in ["proc:b", "file:z", "file:a"] {
            interner.intern(id);
        }
        let (sorted, new_of_old) = interner.sorted();
        assert_eq!(new_of_old, vec![2, 1, 0]);
        assert_eq!((sorted.get(0), sorted.get(1), sorted.get(2)), ("file:a", "file:z", "proc:b"));
        assert_eq!(sorted.lookup("file:z"), Some(1));
    }
}
