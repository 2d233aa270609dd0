//! Values that carry their own rules, at the bottom of the crate's dependency order
//! (they depend only on `error`): identifiers parsed once at the edge, the coded
//! enumerations of the schema, days, GPS points, and the names of districts.

mod day;
mod districts;
mod enums;
mod geo;
mod ids;

pub use day::{china, day_in_china, in_china, parse_day};
pub use districts::{district_label, district_name, district_with_code, districts};
pub use enums::*;
pub use geo::GeoPoint;
pub use ids::{
    CaseId, ChecklistId, CreditCode, DistrictCode, FindingId, WritId, bound_id, is_sha256, made_by,
};
