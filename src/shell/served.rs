//! What was served: a neutral record of the response a request actually got, written
//! by the response code at the moment it hands a response to Rocket, and read by the
//! observers (the extended access log's part list, the metrics' counts of range requests). The
//! response code knows no observer, and no observer knows how a response is built.
//!
//! The record is about ranges: a request without a `Range` field leaves none (there is
//! nothing to say beyond the status, which the response carries, and a request-local
//! value costs an allocation), and none is written when no observer asked for records
//! ([`Served::observed_by`] at ignition). It is written once per request, by whoever
//! returns the response that is sent: a response built and then discarded (the file
//! server's one-`stat` path when the file changed) is never recorded.

use std::sync::OnceLock;

use rocket::{Build, Request, Rocket};

use crate::semantics::decide::{Decision, Status};
use crate::semantics::range::{ByteRange, IgnoredBecause};

/// The record of one response to a request with a `Range` field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Served {
    /// The status sent.
    pub(crate) status: Status,
    /// The parts of a 206, in the order sent: one for a single range, several for
    /// `multipart/byteranges`; empty for every other status.
    pub(crate) parts: Vec<ByteRange>,
    /// Why the `Range` field was not applied, for a 200 (RFC 9110 §14.2, §13.1.5).
    pub(crate) range_ignored: Option<IgnoredBecause>,
}

/// Managed in Rocket's state when some fairing reads the records.
#[derive(Debug)]
struct Observed;

/// The request-local slot of the record.
#[derive(Debug, Default)]
struct ServedSlot(OnceLock<Served>);

impl Served {
    /// The record of the answer `decision`.
    pub(crate) fn of_decision(decision: &Decision) -> Served {
        let (parts, range_ignored) = match decision {
            Decision::Single(r) => (vec![*r], None),
            Decision::Multi(parts) => (parts.clone(), None),
            Decision::Full(why) => (Vec::new(), Some(*why)),
            Decision::NotModified | Decision::PreconditionFailed | Decision::Unsatisfiable => {
                (Vec::new(), None)
            }
        };
        Served {
            status: decision.status(),
            parts,
            range_ignored,
        }
    }

    /// Whether `req` gets a record: it has a `Range` field and an observer reads
    /// records. Cheap enough to ask before building one.
    pub(crate) fn wanted(req: &Request<'_>) -> bool {
        req.headers().contains("Range") && req.rocket().state::<Observed>().is_some()
    }

    /// Records `self` as what `req` was answered with, if [`Served::wanted`]; called
    /// once, with the response that is handed to Rocket.
    pub(crate) fn record(self, req: &Request<'_>) {
        if Served::wanted(req) {
            let _ = req.local_cache(ServedSlot::default).0.set(self);
        }
    }

    /// The record of `req`'s response: `None` for a request without `Range`, or
    /// answered by code that keeps no record (a route's own response, a catcher).
    pub(crate) fn read<'r>(req: &'r Request<'_>) -> Option<&'r Served> {
        if !req.headers().contains("Range") {
            return None;
        }
        req.local_cache(ServedSlot::default).0.get()
    }

    /// Asks for records from now on: for an observer's `on_ignite`.
    pub(crate) fn observed_by(rocket: Rocket<Build>) -> Rocket<Build> {
        if rocket.state::<Observed>().is_some() {
            rocket
        } else {
            rocket.manage(Observed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_per_decision() {
        let r = |first, last| ByteRange { first, last };
        let single = Served::of_decision(&Decision::Single(r(0, 99)));
        assert_eq!(
            (single.status, single.parts),
            (Status::PartialContent, vec![r(0, 99)])
        );
        let multi = Served::of_decision(&Decision::Multi(vec![r(500, 599), r(0, 9)]));
        assert_eq!(multi.parts, vec![r(500, 599), r(0, 9)]);
        let whole = Served::of_decision(&Decision::Full(IgnoredBecause::TooManyParts));
        assert_eq!(
            (whole.status, whole.parts.len(), whole.range_ignored),
            (Status::Ok, 0, Some(IgnoredBecause::TooManyParts))
        );
        let none = Served::of_decision(&Decision::Unsatisfiable);
        assert_eq!(
            (none.status, none.range_ignored),
            (Status::RangeNotSatisfiable, None)
        );
    }
}
