//! The patch's text, written one operation at a time: the direct path's
//! output, byte for byte what serde_json writes for the same operations.

use super::super::patch_json::Out;

/// Room for a patch's text: an injection's is several kilobytes.
const PATCH_CAPACITY: usize = 12 * 1024;

/// Where an item of a merged list comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Slot {
    /// The template's item at this index.
    Added(usize),
    /// The pod's own item at this index.
    Kept(usize),
}

/// The patch's text, one operation at a time.
pub struct Ops {
    out: Out,
    count: usize,
}

impl Ops {
    pub fn new() -> Ops {
        let mut out = Out::with_capacity(PATCH_CAPACITY);
        out.put_slice(b"[");
        Ops { out, count: 0 }
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.out.put_slice(b"]");
        self.out.into_vec()
    }

    pub fn next(&mut self) {
        if self.count > 0 {
            self.out.put_slice(b",");
        }
        self.count += 1;
    }

    /// One operation, `add` or `replace`, at `path` (a JSON pointer),
    /// its value written by `value`.
    pub fn op(&mut self, kind: &str, path: &str, value: impl FnOnce(&mut Out)) {
        self.next();
        self.out.put_slice(b"{\"op\":\"");
        self.out.put_slice(kind.as_bytes());
        self.out.put_slice(b"\",\"path\":");
        self.out.string(path);
        self.out.put_slice(b",\"value\":");
        value(&mut self.out);
        self.out.put_slice(b"}");
    }

    pub fn values(&mut self, ops: &[json_patch::PatchOperation]) {
        for op in ops {
            self.next();
            self.out.operation(op);
        }
    }

    /// `add` of an item at index `j` of the list at `list_ptr`.
    pub fn add_item(&mut self, list_ptr: &str, j: usize, item: impl FnOnce(&mut Out)) {
        self.next();
        self.out.put_slice(b"{\"op\":\"add\",\"path\":");
        // The pointer has no character to escape: constant keys, an index.
        self.out.put_slice(b"\"");
        self.out.put_slice(list_ptr.as_bytes());
        self.out.put_slice(b"/");
        self.out.integer(j as i64);
        self.out.put_slice(b"\",\"value\":");
        item(&mut self.out);
        self.out.put_slice(b"}");
    }

    /// `add` of a whole list of added items, at `path`.
    pub fn add_list(&mut self, path: &str, slots: &[Slot], item: impl Fn(usize, &mut Out)) {
        self.next();
        self.out.put_slice(b"{\"op\":\"add\",\"path\":");
        self.out.string(path);
        self.out.put_slice(b",\"value\":[");
        for (n, slot) in slots.iter().enumerate() {
            if n > 0 {
                self.out.put_slice(b",");
            }
            if let Slot::Added(i) = *slot {
                item(i, &mut self.out);
            }
        }
        self.out.put_slice(b"]}");
    }
}
