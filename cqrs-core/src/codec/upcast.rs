//! Running the upcaster chain: old event data -> current event data, on read.

use serde_json::Value;

use super::DecodeErrorKind;
use crate::Upcaster;

/// Runs the upcasters of `event_type` from `stored` up to `current`.
pub(super) fn run_chain(
    upcasters: &[Upcaster],
    event_type: &str,
    stored: u32,
    current: u32,
    mut data: Value,
) -> Result<Value, DecodeErrorKind> {
    for from_version in stored..current {
        let step = upcasters
            .iter()
            .find(|u| u.event_type == event_type && u.from_version == from_version)
            .ok_or(DecodeErrorKind::MissingUpcaster {
                from_version,
                current,
            })?;
        data = (step.upcast)(data).map_err(|reason| DecodeErrorKind::UpcasterFailed {
            from_version,
            reason,
        })?;
    }
    Ok(data)
}
