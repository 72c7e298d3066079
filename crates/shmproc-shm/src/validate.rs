//! Checks of what comes from outside: segment names, and headers another process wrote (every
//! field bounded before anything uses it).

use crate::header::{HeaderFields, MAGIC, PAYLOAD_OFFSET, VERSION};
use crate::{Kind, SegmentError, TypeInfo};

/// Largest element size a header may claim (elements live in one segment).
const MAX_ELEM_SIZE: u32 = 1 << 30;

/// Checks a user-given segment name: `[A-Za-z0-9._-]`, 1–40 characters.
pub fn validate_name(name: &str) -> Result<(), SegmentError> {
    let ok = (1..=40).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(SegmentError::InvalidName {
            name: name.to_owned(),
        })
    }
}

/// Checks that a validated header describes a `kind` segment of elements `elem`.
pub(crate) fn check_kind_and_type(
    name: &str,
    fields: &HeaderFields,
    kind: Kind,
    elem: TypeInfo,
) -> Result<(), SegmentError> {
    if fields.kind != kind as u32 {
        return Err(SegmentError::WrongKind {
            name: name.to_owned(),
            expected: kind,
            found: Kind::from_raw(fields.kind)
                .map_or_else(|| format!("kind #{}", fields.kind), |k| k.to_string()),
        });
    }
    // The fingerprint covers the full type name, size and alignment; the stored name is only
    // its first bytes, for messages.
    let found = (fields.type_hash, fields.elem_size, fields.elem_align);
    if found != (elem.fingerprint(), elem.size, elem.align) {
        let mut found_name = fields.type_name();
        if elem.stored_name() == fields.type_name {
            found_name.push_str(" (another type whose name starts the same)");
        }
        return Err(SegmentError::WrongType {
            name: name.to_owned(),
            expected: format!("{} (size {}, align {})", elem.name, elem.size, elem.align),
            found: format!(
                "{found_name} (size {}, align {})",
                fields.elem_size, fields.elem_align
            ),
        });
    }
    Ok(())
}

/// Checks a header read from a file of `size` bytes; returns its payload length, bounded by the
/// file (so every later access stays inside the mapping).
pub(crate) fn validate_fields(
    name: &str,
    f: &HeaderFields,
    size: u64,
) -> Result<usize, SegmentError> {
    if f.magic != MAGIC {
        return Err(corrupt(name, "not a shmproc segment (bad magic)"));
    }
    if f.version != VERSION {
        return Err(SegmentError::Version {
            name: name.to_owned(),
            found: f.version,
        });
    }
    if !f.elem_align.is_power_of_two() || f.elem_align > 64 {
        return Err(corrupt(name, "element alignment out of range"));
    }
    if f.elem_size > MAX_ELEM_SIZE {
        return Err(corrupt(name, "element size out of range"));
    }
    // Bounded before use: the payload must fit in the file (and so in the address space).
    let needed = (PAYLOAD_OFFSET as u64).saturating_add(f.payload_len);
    if needed > size {
        return Err(SegmentError::Truncated {
            name: name.to_owned(),
            size,
            needed,
        });
    }
    usize::try_from(f.payload_len)
        .ok()
        .filter(|len| {
            len.checked_add(PAYLOAD_OFFSET)
                .is_some_and(|n| n <= isize::MAX as usize)
        })
        .ok_or_else(|| corrupt(name, "payload length exceeds the address space"))
}

pub(crate) fn corrupt(name: &str, reason: &str) -> SegmentError {
    SegmentError::Corrupt {
        name: name.to_owned(),
        reason: reason.to_owned(),
    }
}
