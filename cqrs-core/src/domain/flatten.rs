//! Compile-time helpers for `#[derive(DomainEvent)]` on an enum with `#[event(flatten)]`
//! variants. Not a public API: only generated code calls these.
//!
//! A flattened enum's `EVENT_TYPES` and `UPCASTERS` are the concatenation of its
//! variants' own lists, computed in a `const` so that the trait's associated constants
//! stay `&'static` slices with no allocation and no lazy initialisation. The same
//! constants let the derive refuse, at compile time, an event type name that two
//! variants share (decoding it would be ambiguous).

use serde_json::Value;

use super::EventTypeInfo;
use super::Upcaster;

/// `parts` one after the other, as an array of exactly `N` items (`N` must be the sum of
/// their lengths, which the generated code computes from the same slices).
const fn concat<T: Copy, const N: usize>(parts: &[&[T]], filler: T) -> [T; N] {
    let mut total = 0;
    let mut i = 0;
    while i < parts.len() {
        total += parts[i].len();
        i += 1;
    }
    assert!(
        total == N,
        "concatenated length differs from the declared length"
    );
    let mut out = [filler; N];
    let mut k = 0;
    let mut i = 0;
    while i < parts.len() {
        let mut j = 0;
        while j < parts[i].len() {
            out[k] = parts[i][j];
            k += 1;
            j += 1;
        }
        i += 1;
    }
    out
}

/// The event types of every variant, in order.
pub const fn concat_event_types<const N: usize>(parts: &[&[EventTypeInfo]]) -> [EventTypeInfo; N] {
    concat(
        parts,
        EventTypeInfo {
            name: "",
            version: 0,
        },
    )
}

/// The upcasters of every variant, in order.
pub const fn concat_upcasters<const N: usize>(parts: &[&[Upcaster]]) -> [Upcaster; N] {
    // Only fills the array before it is overwritten; never called.
    fn filler(data: Value) -> Result<Value, String> {
        Ok(data)
    }
    concat(parts, Upcaster::new("", 0, filler))
}

/// The event types contributed by one variant, with how the error message names it.
#[derive(Clone, Copy)]
pub struct Group {
    /// The variant, as the compile error should name it.
    pub label: &'static str,
    /// Its event types: its own, or those of the enum it flattens.
    pub types: &'static [EventTypeInfo],
}

/// An event type name found in two groups (`found` is false when there is none).
#[derive(Clone, Copy)]
pub struct Clash {
    /// Whether a name is shared.
    pub found: bool,
    /// The shared name.
    pub name: &'static str,
    /// The label of the first group that has it.
    pub first: &'static str,
    /// The label of the second group that has it.
    pub second: &'static str,
}

/// The first event type name that two different groups share.
pub const fn clash(groups: &[Group]) -> Clash {
    let mut a = 0;
    while a < groups.len() {
        let mut b = a + 1;
        while b < groups.len() {
            let mut i = 0;
            while i < groups[a].types.len() {
                let name = groups[a].types[i].name;
                let mut j = 0;
                while j < groups[b].types.len() {
                    if str_eq(name, groups[b].types[j].name) {
                        return Clash {
                            found: true,
                            name,
                            first: groups[a].label,
                            second: groups[b].label,
                        };
                    }
                    j += 1;
                }
                i += 1;
            }
            b += 1;
        }
        a += 1;
    }
    Clash {
        found: false,
        name: "",
        first: "",
        second: "",
    }
}

const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// The total length of `parts`, for [`Message`]'s length.
pub const fn message_len(parts: &[&str]) -> usize {
    let mut n = 0;
    let mut i = 0;
    while i < parts.len() {
        n += parts[i].len();
        i += 1;
    }
    n
}

/// A compile-time message joined from several strings, so that a `const` panic can name
/// the clashing event type: in a constant, `panic!` accepts only one `&str` argument and
/// no formatting.
pub struct Message<const N: usize>([u8; N]);

impl<const N: usize> Message<N> {
    /// Joins `parts`, whose total length must be `N`.
    pub const fn new(parts: &[&str]) -> Self {
        // All `N` bytes are then copied from whole `&str`s, so `as_str` cannot fail.
        assert!(
            message_len(parts) == N,
            "message length differs from the declared length"
        );
        let mut out = [0u8; N];
        let mut k = 0;
        let mut i = 0;
        while i < parts.len() {
            let bytes = parts[i].as_bytes();
            let mut j = 0;
            while j < bytes.len() {
                out[k] = bytes[j];
                k += 1;
                j += 1;
            }
            i += 1;
        }
        Self(out)
    }

    /// The joined text.
    pub const fn as_str(&self) -> &str {
        // `new` copies whole `&str`s one after another, so this never fails.
        match core::str::from_utf8(&self.0) {
            Ok(text) => text,
            Err(_) => panic!("a message joined from strings is UTF-8"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &[EventTypeInfo] = &[
        EventTypeInfo {
            name: "a.one",
            version: 1,
        },
        EventTypeInfo {
            name: "a.two",
            version: 2,
        },
    ];
    const B: &[EventTypeInfo] = &[EventTypeInfo {
        name: "b.one",
        version: 1,
    }];

    #[test]
    fn concatenates_in_order() {
        const ALL: [EventTypeInfo; 3] = concat_event_types(&[A, &[], B]);
        let names: Vec<_> = ALL.iter().map(|t| (t.name, t.version)).collect();
        assert_eq!(names, [("a.one", 1), ("a.two", 2), ("b.one", 1)]);
        const NONE: [Upcaster; 0] = concat_upcasters(&[&[], &[]]);
        assert!(NONE.is_empty());
    }

    #[test]
    #[should_panic(expected = "differs from the declared length")]
    fn a_wrong_length_is_refused() {
        let _ = concat_event_types::<2>(&[A, B]);
    }

    #[test]
    fn finds_a_name_in_two_groups() {
        let ga = Group {
            label: "A",
            types: A,
        };
        let gb = Group {
            label: "B",
            types: B,
        };
        assert!(!clash(&[ga, gb]).found);
        let again = Group {
            label: "C",
            types: &A[1..],
        };
        let c = clash(&[ga, gb, again]);
        assert!(c.found);
        assert_eq!((c.name, c.first, c.second), ("a.two", "A", "C"));
    }

    #[test]
    fn joins_a_message() {
        const PARTS: &[&str] = &["name \"", "é", "\" twice"];
        const MESSAGE: Message<{ message_len(PARTS) }> = Message::new(PARTS);
        assert_eq!(MESSAGE.as_str(), "name \"é\" twice");
    }
}
